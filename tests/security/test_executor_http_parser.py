"""The executor's own HTTP/1.1 server (executor/sandbox_executor/server.py, written to keep idle sandboxes
small: docs/capacity.md) attacked with malformed HTTP from inside a real sandbox. On the docker runtime its
socket is bind-mounted into the sandbox (`/run/sandbox/executor.sock`), so hostile code can speak to the
parser directly; on the process runtime the socket is not inside at all.

Each malformed request is refused with its status and the connection closed, nothing is executed without
the executor key, a body is never read past its limit, and the executor still runs the control plane's
next execution afterwards."""

from __future__ import annotations

from tests.security.conftest import Tenants

RAW_ATTACKS = r"""
import re, socket

SOCK = "/run/sandbox/executor.sock"

def exchange(data, read_s=3.0):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(read_s)
    s.connect(SOCK)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return out, "open"  # the server kept the connection (and did not answer more)
            if not chunk:
                return out, "closed"
            out += chunk
    finally:
        s.close()

def statuses(answer):
    # A status line may follow the previous answer's body on the same line (pipelining).
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]

def handler(e):
    try:
        socket.socket(socket.AF_UNIX).connect(SOCK)
    except OSError as exc:
        return type(exc).__name__
    results = {}
    cases = {
        "long_request_line": b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
        "too_many_headers": (
            b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n"
        ),
        "long_header_line": b"GET /health HTTP/1.1\r\nX: " + b"b" * 70000 + b"\r\n\r\n",
        "http2_version": b"GET /health HTTP/2.0\r\n\r\n",
        "bad_version": b"GET /health HTTP/1.x\r\n\r\n",
        "bad_syntax": b"GET\r\n\r\n",
        "unknown_method": b"BREW /health HTTP/1.1\r\n\r\n",
        "huge_length": (
            b"POST /execute HTTP/1.1\r\nAuthorization: Bearer x\r\nContent-Length: 999999999999\r\n\r\n{}"
        ),
        "negative_length": b"POST /bind HTTP/1.1\r\nContent-Length: -5\r\n\r\n{}",
        "chunked_body": b"POST /bind HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        "execute_without_key": b'POST /execute HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}',
        "execute_guessed_key": (
            b"POST /execute HTTP/1.1\r\nAuthorization: Bearer guessed\r\nAuthorization: Bearer other\r\n"
            b'Content-Length: 2\r\nConnection: close\r\n\r\n{}'
        ),
        "folded_authorization": (
            b"POST /execute HTTP/1.1\r\nAuthorization: Bearer\r\n guessed\r\n"
            b'Content-Length: 2\r\nConnection: close\r\n\r\n{}'
        ),
        "pipelined": (
            b"GET /health HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\nConnection: close\r\n\r\n"
        ),
        "nul_and_crlf_in_path": b"GET /health\x00\r\nX: y HTTP/1.1\r\n\r\n",
    }
    for name, data in cases.items():
        answer, state = exchange(data)
        results[name] = [statuses(answer), state, answer[:3].decode("latin-1")]
    return results
"""


def test_malformed_http_to_the_executor_is_refused_and_the_executor_survives(tenants: Tenants) -> None:
    status, result = tenants.attack(RAW_ATTACKS, timeout=180)
    assert status == "completed", result
    found = result["return_value"]
    if tenants.runtime == "process":
        assert found == "FileNotFoundError"  # no executor socket inside the sandbox to attack
        return
    # [statuses answered, connection state, the answer's first bytes]. A request line that names no
    # HTTP/1.x version is answered as HTTP/0.9 (the error text alone, no status line), as http.server does.
    expected = {
        "long_request_line": [[414], "closed", "HTT"],
        "too_many_headers": [[431], "closed", "HTT"],
        "long_header_line": [[431], "closed", "HTT"],
        "http2_version": [[], "closed", "505"],
        "bad_version": [[], "closed", "400"],
        "bad_syntax": [[], "closed", "400"],
        "unknown_method": [[501], "closed", "HTT"],
        "huge_length": [[413], "closed", "HTT"],  # refused on its declared size: no byte of it is read
        "negative_length": [[411], "closed", "HTT"],
        "chunked_body": [[411], "closed", "HTT"],
        "execute_without_key": [[403], "closed", "HTT"],
        "execute_guessed_key": [[403], "closed", "HTT"],
        "folded_authorization": [[403], "closed", "HTT"],
        "pipelined": [[200, 200], "closed", "HTT"],
    }
    for name, want in expected.items():
        assert found[name] == want, (name, found[name])
    statuses, state, _ = found["nul_and_crlf_in_path"]
    assert statuses in ([], [400], [404], [431]) and state == "closed", found["nul_and_crlf_in_path"]
    # The control plane's executions still run in that sandbox, through the same parser.
    after = tenants.attack("def handler(e):\n    return 6 * 7\n")
    assert after[0] == "completed" and after[1]["return_value"] == 42
