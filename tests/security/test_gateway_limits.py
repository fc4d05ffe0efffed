"""Adversarial tests of the local API Gateway emulator on a real local stack: a caller without a key, or
with a key but an oversized body, costs the stack neither the memory nor the time to receive the body
(on the public API over TCP and on the sandboxes' internal API over the unix socket); and GET /metrics
shows a tenant its own figures only.

The gateway is the same whatever the runtime; the attacks run on both local runtimes all the same.
Bodies are generated while sending, never held in memory; a refused upload is sent "blindly" (without
looking for an early answer, as most clients do): if the stack read it all, every byte would go through."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack
from tests.security.conftest import tenant_key

pytestmark = pytest.mark.e2e

MB = 1024 * 1024
LIMIT = 10 * MB  # API Gateway's payload limit, which the emulator enforces
ATTACK = 300 * MB
CHUNK = 256 * 1024
Connect = Callable[[], socket.socket]


@pytest.fixture(scope="module")
def stack(runtime_stack: Stack) -> Stack:
    """The local stack on each local runtime (tests/security/conftest.py)."""
    return runtime_stack


@dataclass
class Answer:
    status: int
    body: bytes
    sent: int  # body bytes the client managed to send before the connection was closed (or all of them)
    seconds: float

    def json(self) -> dict[str, object]:
        return dict(json.loads(self.body))


def _tcp(stack: Stack) -> Connect:
    host, port = stack.url.removeprefix("http://").split(":")
    return lambda: socket.create_connection((host, int(port)), timeout=30)


def _unix(stack: Stack) -> Connect:
    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(str(stack.state_dir / "internal.sock"))
        return s

    return connect


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """The status and body of the response (the emulator closes every connection after its answer)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass  # a reset after the answer: what was received before it is still read above
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    assert match, f"no HTTP answer: {data[:200]!r}"
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return int(match.group(1)), body[: int(length.group(1))] if length else body


def send_chunked(
    connect: Connect, path: str, total: int, headers: dict[str, str] | None = None, method: str = "POST"
) -> Answer:
    """POST `total` bytes with Transfer-Encoding: chunked, generated chunk by chunk, until all are sent
    or the server closes the connection; then read the answer."""
    chunk = b"%x\r\n" % CHUNK + b"{" * CHUNK + b"\r\n"  # not even JSON: it must never reach a handler
    head = {"Content-Type": "application/json", "Transfer-Encoding": "chunked", **(headers or {})}
    started = time.monotonic()
    sent = 0
    with connect() as sock:
        sock.sendall(_head(method, path, head))
        try:
            while sent < total:
                sock.sendall(chunk)
                sent += CHUNK
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection instead of reading on
        status, body = _read_answer(sock)
    return Answer(status, body, sent, time.monotonic() - started)


def send_declared(connect: Connect, path: str, length: int, headers: dict[str, str]) -> Answer:
    """Declare a Content-Length of `length` and send none of it: only an answer that reads nothing comes."""
    started = time.monotonic()
    with connect() as sock:
        sock.settimeout(10)
        head = {"Content-Type": "application/json", "Content-Length": str(length), **headers}
        sock.sendall(_head("POST", path, head))
        status, body = _read_answer(sock)
    return Answer(status, body, 0, time.monotonic() - started)


def _status_kb(pid: int, field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert match, field
    return int(match.group(1))


class Memory:
    """The stack process's resident memory: now, and its peak since `reset()` (clear_refs 5 resets the
    high-water mark, so a spike that is freed again still shows)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def reset(self) -> int:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        return _status_kb(self.pid, "VmRSS") * 1024

    def now(self) -> int:
        return _status_kb(self.pid, "VmRSS") * 1024

    def peak(self) -> int:
        return _status_kb(self.pid, "VmHWM") * 1024


def _assert_contract_error(answer: Answer, status: int, code: str) -> dict[str, object]:
    assert answer.status == status, answer
    body = answer.json()
    assert set(body) == {"error_code", "description", "error_detail", "solution", "request_id"}
    assert body["error_code"] == code and body["request_id"]
    return body


def _assert_stack_answers(stack: Stack, key: str) -> None:
    with stack.client(key) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/sessions").status_code == 200


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> str:
    return tenant_key(stack, "gw-tenant")


# -- no key: the body is never read --------------------------------------------------------------------------
def test_an_unauthenticated_chunked_upload_is_refused_without_reading_it(stack: Stack, tenant: str) -> None:
    memory = Memory(stack.process.pid)
    before = memory.reset()
    answer = send_chunked(_tcp(stack), "/api/v1/sessions", ATTACK)
    _assert_contract_error(answer, 401, "Sandbox.Unauthorized")
    assert answer.seconds < 10, answer
    # The connection was closed rather than drained: most of the 300 MB never left the client.
    assert answer.sent < 50 * MB, f"{answer.sent / MB:.0f} MB went through"
    assert memory.peak() - before < 50 * MB, f"peak grew {(memory.peak() - before) / MB:.0f} MB"
    assert memory.now() - before < 50 * MB
    _assert_stack_answers(stack, tenant)


def test_an_unauthenticated_declared_upload_is_refused_at_once(stack: Stack, tenant: str) -> None:
    answer = send_declared(_tcp(stack), "/api/v1/sessions", ATTACK, {})
    assert answer.status in (401, 413), answer  # either refusal reads nothing
    assert answer.seconds < 5
    answer = send_declared(_tcp(stack), "/api/v1/sessions", 1024, {})  # a small one: the key decides
    _assert_contract_error(answer, 401, "Sandbox.Unauthorized")
    _assert_stack_answers(stack, tenant)


def test_the_internal_api_refuses_an_unauthenticated_upload_without_reading_it(
    stack: Stack, tenant: str
) -> None:
    memory = Memory(stack.process.pid)
    before = memory.reset()
    path = "/internal/sessions/sess_0000000000000001/container_ready"
    answer = send_chunked(_unix(stack), path, ATTACK)
    _assert_contract_error(answer, 401, "Sandbox.Unauthorized")
    assert answer.seconds < 10, answer
    assert answer.sent < 50 * MB, f"{answer.sent / MB:.0f} MB went through"
    assert memory.peak() - before < 50 * MB, f"peak grew {(memory.peak() - before) / MB:.0f} MB"
    # A wrong token is no better than none.
    answer = send_chunked(_unix(stack), path, ATTACK, {"Authorization": "Bearer cb_not-a-token"})
    _assert_contract_error(answer, 401, "Sandbox.Unauthorized")
    assert answer.sent < 50 * MB
    # The socket still serves: a small request is answered by the authorizer, as before.
    answer = send_chunked(_unix(stack), path, 1024)
    _assert_contract_error(answer, 401, "Sandbox.Unauthorized")
    _assert_stack_answers(stack, tenant)


# -- a valid key: at most 10 MB is read ----------------------------------------------------------------------
def test_a_chunked_body_over_10_mb_is_refused_while_reading(stack: Stack, tenant: str) -> None:
    memory = Memory(stack.process.pid)
    before = memory.reset()
    auth = {"Authorization": f"Bearer {tenant}"}
    answer = send_chunked(_tcp(stack), "/api/v1/sessions", 64 * MB, auth)
    body = _assert_contract_error(answer, 413, "Sandbox.InvalidParameter")
    assert body["description"] == "Payload too large"
    assert "10 MB" in str(body["error_detail"])
    # Read up to the limit, then closed: the rest of the 64 MB never went through.
    assert answer.sent < 40 * MB, f"{answer.sent / MB:.0f} MB went through"
    assert memory.peak() - before < 50 * MB, f"peak grew {(memory.peak() - before) / MB:.0f} MB"
    _assert_stack_answers(stack, tenant)


def test_a_declared_content_length_over_10_mb_is_refused_before_reading(stack: Stack, tenant: str) -> None:
    auth = {"Authorization": f"Bearer {tenant}"}
    answer = send_declared(_tcp(stack), "/api/v1/sessions", LIMIT + 1, auth)
    body = _assert_contract_error(answer, 413, "Sandbox.InvalidParameter")
    assert body["description"] == "Payload too large"
    assert answer.seconds < 5  # answered although not one byte of the body was sent
    _assert_stack_answers(stack, tenant)


def test_bodies_within_the_limit_still_reach_the_handler(stack: Stack, tenant: str) -> None:
    auth = {"Authorization": f"Bearer {tenant}"}
    payload = json.dumps({"template_id": "no-such-template", "pad": "x" * (2 * MB)}).encode()
    # Chunked: the handler parsed it (its validation names the padding field, which the contract forbids).
    with _tcp(stack)() as sock:
        head = _head(
            "POST",
            "/api/v1/sessions",
            {**auth, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        )
        sock.sendall(head)
        for i in range(0, len(payload), CHUNK):
            part = payload[i : i + CHUNK]
            sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        status, body = _read_answer(sock)
    assert status == 400 and "'pad'" in json.loads(body)["error_detail"], body[:300]
    # With a Content-Length, as any client sends it.
    with stack.client(tenant) as client:
        resp = client.post("/sessions", content=payload, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and "'pad'" in resp.json()["error_detail"], resp.text[:300]


# -- /metrics: a tenant's own figures only -------------------------------------------------------------------
def _series_tenants(text: str) -> set[str]:
    return set(re.findall(r'tenant="([^"]*)"', text))


def test_metrics_show_a_tenant_only_its_own_figures(stack: Stack) -> None:
    keys = {t: tenant_key(stack, t) for t in ("metrics-t1", "metrics-t2")}
    sids: dict[str, str] = {}
    for name, key in keys.items():
        with stack.client(key) as client:
            created = client.post("/sessions", json={"template_id": "python-basic", "timeout": 60})
            assert created.status_code == 201, created.text
            sids[name] = str(created.json()["session_id"])
    try:
        with stack.client(keys["metrics-t1"]) as client:
            resp = client.get("/metrics")
        assert resp.status_code == 200
        t1 = resp.text
        assert "metrics-t2" not in t1 and sids["metrics-t2"] not in t1
        assert _series_tenants(t1) == {"metrics-t1"}
        samples = [line for line in t1.splitlines() if line and not line.startswith("#")]
        assert samples and all('tenant="metrics-t1"' in line for line in samples), samples
        assert 'sandboxcp_sessions_created_total{template="python-basic",tenant="metrics-t1"} 1' in samples
        active = [int(s.rsplit(" ", 1)[1]) for s in samples if s.startswith("sandboxcp_sessions_active{")]
        assert len(active) == 2 and sum(active) <= 1  # its one session (unless it ended already)

        with stack.client() as admin:
            everything = admin.get("/metrics").text
        assert {"metrics-t1", "metrics-t2"} <= _series_tenants(everything)
        assert 'sandboxcp_sessions_created_total{template="python-basic",tenant="metrics-t2"} 1' in everything
        assert re.search(r'^sandboxcp_sessions_active\{status="creating"\} \d+$', everything, re.M)
    finally:
        for name, key in keys.items():
            with stack.client(key) as client:
                client.delete(f"/sessions/{sids[name]}")
