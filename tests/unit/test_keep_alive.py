"""The local servers keep a connection for the next request only where the end of a request and of its
answer is certain (sandboxcp/local/handler.py); everywhere else they close as werkzeug does. Real
sockets, a real server; the client is raw HTTP, as a hostile sandbox would send it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandboxcp.local import handler
from sandboxcp.local.handler import GatewayRequestHandler
from sandboxcp.local.serving import PooledWSGIServer


class _App:
    """Reads the body as told by the path (/read, /skip, /greedy), answers as told (/stream, /short)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []
        self.nodelay: list[int] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path, stream = environ["PATH_INFO"], environ["wsgi.input"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if path == "/skip":
            body = b""
        elif path == "/greedy":  # asks for more than the body: must get the body and no more
            body = stream.read(length + 4096)
        else:
            body = stream.read(length) if length else b""
        self.seen.append((environ["REQUEST_METHOD"], path, body))
        self.nodelay.append(environ["werkzeug.socket"].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        if path == "/stream":  # no Content-Length: werkzeug frames it chunked
            start_response("200 OK", [("Content-Type", "text/plain")])
            return iter([b"a", b"b"])
        if path == "/short":  # says 10 bytes, writes 2
            start_response("200 OK", [("Content-Length", "10")])
            return [b"ok"]
        if path == "/empty":
            start_response("204 No Content", [])
            return [b""]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, _App]]:
    monkeypatch.setattr(handler, "KEEP_ALIVE_IDLE_S", 1.0)
    app = _App()
    server = PooledWSGIServer("127.0.0.1", 0, app, GatewayRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.port, app
    server.shutdown()
    server.server_close()


def _request(method: str, path: str, body: bytes = b"", *headers: str, version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: x", *headers]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Conn:
    """One client connection, reading answers one at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.file = self.sock.makefile("rb")

    def answer(self) -> tuple[int, dict[str, str], bytes] | None:
        """The next answer (None: the server closed the connection)."""
        line = self.file.readline()
        if not line:
            return None
        headers = {}
        while (header := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = header.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self.file.readline(), 16):
                body += self.file.read(size + 2)[:-2]
            self.file.readline()
        else:
            body = self.file.read(int(headers.get("content-length", "0")))
        return int(line.split()[1]), headers, body

    def closed(self) -> bool:
        """Whether the server closed the connection (nothing more arrives, then EOF)."""
        return self.file.read(1) == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def conn(served: tuple[int, _App]) -> Iterator[_Conn]:
    c = _Conn(served[0])
    yield c
    c.close()


def test_requests_read_to_their_end_share_one_connection(served: tuple[int, _App], conn: _Conn) -> None:
    _, app = served
    for n in range(3):
        conn.sock.sendall(_request("POST", "/read", b"body %d" % n))
        answer = conn.answer()
        assert answer is not None and answer[0] == 200 and answer[2] == b"ok"
        assert "connection" not in answer[1]  # HTTP/1.1: the connection stays
    conn.sock.sendall(_request("GET", "/empty"))  # 204: an answer without a body is whole too
    answer = conn.answer()
    assert answer is not None and answer[0] == 204 and "connection" not in answer[1]
    conn.sock.sendall(_request("GET", "/read"))
    assert conn.answer() is not None
    assert [body for _, _, body in app.seen] == [b"body 0", b"body 1", b"body 2", b"", b""]
    # werkzeug writes an answer's head and body apart: with Nagle's algorithm on, a kept connection's
    # next answer would wait for the client's delayed ACK (40 ms a request).
    assert all(app.nodelay)


def test_an_unread_body_closes_the_connection_and_is_never_taken_for_a_request(
    served: tuple[int, _App], conn: _Conn
) -> None:
    _, app = served
    smuggled = _request("GET", "/smuggled")
    conn.sock.sendall(_request("POST", "/skip", smuggled))
    answer = conn.answer()
    assert answer is not None and answer[0] == 200 and answer[1].get("connection") == "close"
    assert conn.closed()
    assert [path for _, path, _ in app.seen] == ["/skip"]


def test_an_application_reading_on_gets_the_body_and_not_the_next_request(
    served: tuple[int, _App], conn: _Conn
) -> None:
    _, app = served
    conn.sock.sendall(_request("POST", "/greedy", b"mine") + _request("GET", "/next"))  # pipelined
    first, second = conn.answer(), conn.answer()
    assert first is not None and first[0] == 200 and second is not None and second[0] == 200
    assert app.seen == [("POST", "/greedy", b"mine"), ("GET", "/next", b"")]


def test_a_pipelined_request_is_a_request_of_its_own(served: tuple[int, _App], conn: _Conn) -> None:
    _, app = served
    conn.sock.sendall(_request("POST", "/read", b"one") + _request("POST", "/read", b"two"))
    assert [conn.answer() is not None for _ in range(2)] == [True, True]
    assert [body for _, _, body in app.seen] == [b"one", b"two"]


@pytest.mark.parametrize(
    ("request_bytes", "why"),
    [
        (_request("GET", "/read", b"", "Connection: close"), "the client said close"),
        (_request("GET", "/read", version="1.0"), "HTTP/1.0"),
        (_request("GET", "/stream"), "an answer without Content-Length"),
        (_request("GET", "/short"), "an answer shorter than its Content-Length"),
        (
            b"POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "a chunked request",
        ),
    ],
)
def test_the_connection_closes_when_an_end_is_not_certain(
    conn: _Conn, request_bytes: bytes, why: str
) -> None:
    conn.sock.sendall(request_bytes)
    answer = conn.answer()
    assert answer is not None and answer[0] == 200, why
    if why != "an answer shorter than its Content-Length":
        assert answer[1].get("connection") == "close", why
    assert conn.closed(), why


def test_an_idle_kept_connection_is_closed_after_a_while(conn: _Conn) -> None:
    conn.sock.sendall(_request("GET", "/read"))
    answer = conn.answer()
    assert answer is not None and "connection" not in answer[1]
    started = time.monotonic()
    assert conn.closed()  # KEEP_ALIVE_IDLE_S (1 s here) later
    assert 0.5 < time.monotonic() - started < 4
