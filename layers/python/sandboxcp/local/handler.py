"""The local servers' request handler: werkzeug's, with a bounded drain after a refused body (body.py) and
HTTP/1.1 keep-alive where it is safe.

werkzeug's server answers every request with `Connection: close`, because `http.server` cannot tell where
an unread body ends and the next request line starts. Here a connection is kept for the next request
only when that cannot happen: the client asked for nothing else (HTTP/1.1, no `Connection: close`), the
request had a `Content-Length` (or no body) and the application read all of it and not a byte more
(`wsgi.input` stops at its end), and the answer was complete as framed (a `Content-Length` that the bytes
written match, or 204/304). Anything else closes as before: a refused upload's unread body, a chunked
request or answer, an error half way through an answer.

Why: a sandbox that writes 1,000 small files uploads each through the sandbox-facing socket, and a new
connection costs the stack about 0.4 ms of CPU (accept, a thread's hand-off, the socket's set-up and
tear-down), a quarter of an upload (issue #14). In AWS the executor's kept connections to S3 save a TLS
handshake per file.

A kept connection waits at most KEEP_ALIVE_IDLE_S for its next request, then is closed, so an idle client
holds a thread no longer than that (a stalled one holds it as before: its own thread, see serving.py).
Each request on a kept connection is a request of its own: a new environ, its own authorization; nothing
of one request is carried to the next.
"""

from __future__ import annotations

import io
import logging
import socket
from typing import Any

from werkzeug.serving import WSGIRequestHandler

from sandboxcp.local.body import DRAIN_BUDGET, DrainBudget

KEEP_ALIVE_IDLE_S = 5.0  # how long a kept connection waits for its next request line
_access_log = logging.getLogger("werkzeug")


class _BodyReader(io.RawIOBase):
    """A request's body as `wsgi.input`: the socket's reader up to Content-Length and no further (the
    bytes after it are the next request's), counting what the application read."""

    def __init__(self, inner: io.BufferedIOBase, length: int) -> None:
        super().__init__()
        self._inner, self.left = inner, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)[: self.left]
        if not len(view):
            return 0
        got = self._inner.readinto(view) or 0
        self.left -= got
        return got


class _CountingWriter(io.BufferedIOBase):
    """The connection's `wfile`, counting the bytes written (to check an answer against its framing)."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self._inner, self.written = inner, 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._inner.write(data)
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        self._inner.flush()

    def close(self) -> None:
        try:
            super().close()  # flushes first
        finally:
            self._inner.close()


class _Exchange:
    """One request's facts that decide whether its connection may carry the next."""

    def __init__(self, client_keeps: bool, body: _BodyReader | None) -> None:
        self.client_keeps = client_keeps  # HTTP/1.1 without `Connection: close`
        self.body = body  # None: chunked (its end is the de-chunker's to find, not ours)
        self.status = 0
        self.framed_length: int | None = None  # the answer's Content-Length (0: an answer without a body)
        self.body_start = -1  # bytes written on the connection when the answer's headers were out
        self.kept = False  # told the client (by leaving out `Connection: close`) the connection stays


class GatewayRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler with a bounded drain after a refused body (DRAIN_BUDGET) and keep-alive
    where the request and its answer are known to have ended (module docstring)."""

    _exchange: _Exchange | None = None

    def setup(self) -> None:
        super().setup()
        if self.connection.family in (socket.AF_INET, socket.AF_INET6):
            # werkzeug writes the head and the body of an answer apart: on a kept TCP connection, Nagle's
            # algorithm would hold the body until the client's delayed ACK of the head (40 ms).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._written = _CountingWriter(self.wfile)
        self.wfile = self._written
        self._socket_reader: Any = self.rfile  # a BufferedReader over the socket
        self._answered = 0  # requests answered on this connection

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # werkzeug formats the access line (decoding the whole path) before the logger drops it; the
        # local stack logs werkzeug at WARNING, and a sandbox's 1,000 uploads are 1,000 requests.
        if _access_log.isEnabledFor(logging.INFO):
            super().log_request(code, size)

    def handle_one_request(self) -> None:
        if self._answered and not self._next_request_started():
            self.close_connection = True
            return
        self._exchange = None
        try:
            super().handle_one_request()
        finally:
            self._answered += 1
            self.close_connection = not self._may_carry_another()
            self.rfile = self._socket_reader  # werkzeug's drain read the capped stand-in; the next, this

    def _next_request_started(self) -> bool:
        """Whether a byte of another request arrives on the kept connection within KEEP_ALIVE_IDLE_S."""
        self.connection.settimeout(KEEP_ALIVE_IDLE_S)
        try:
            return bool(self._socket_reader.peek(1))
        except OSError:  # TimeoutError, or the client went away
            return False
        finally:
            self.connection.settimeout(self.timeout)

    def make_environ(self) -> Any:
        environ = super().make_environ()
        body: _BodyReader | None = None
        if not environ.get("wsgi.input_terminated"):  # not chunked (werkzeug de-chunks those)
            length = environ.get("CONTENT_LENGTH", "")
            body = _BodyReader(self._socket_reader, int(length) if length.isdigit() else 0)
            environ["wsgi.input"] = body
        # http.server's parse_request decided from the version and the Connection header.
        self._exchange = _Exchange(client_keeps=not self.close_connection, body=body)
        # Until the answer is known to be whole, the connection closes after it, and werkzeug's drain
        # after the answer reads at most DRAIN_BUDGET (a refused upload's body is not received).
        self.close_connection = True
        self.rfile = DrainBudget(self._socket_reader, DRAIN_BUDGET)
        return environ

    def send_response(self, code: int, message: str | None = None) -> None:
        if self._exchange is not None:
            # 204 and 304 carry no body: framed as empty whatever their headers say.
            self._exchange.status, self._exchange.framed_length = code, 0 if code in (204, 304) else None
            self._exchange.kept, self._exchange.body_start = False, -1
        super().send_response(code, message)

    def send_header(self, keyword: str, value: str) -> None:
        exchange, name = self._exchange, keyword.lower()
        if exchange is not None:
            if name == "content-length" and value.isdigit():
                exchange.framed_length = int(value)
            elif name == "transfer-encoding":
                exchange.framed_length = None  # chunked: not ours to check
            elif name == "connection" and value == "close" and self._request_complete(exchange):
                # werkzeug's last header: leave it out, and let the drain read nothing.
                exchange.kept = True
                if isinstance(self.rfile, DrainBudget):
                    self.rfile.stop()
                return
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        super().end_headers()
        if self._exchange is not None:
            self._exchange.body_start = self._written.written

    def _request_complete(self, exchange: _Exchange) -> bool:
        return (
            exchange.client_keeps
            and self.request_version == "HTTP/1.1"
            and self.command != "HEAD"
            and exchange.body is not None
            and exchange.body.left == 0
            and exchange.framed_length is not None
        )

    def _may_carry_another(self) -> bool:
        """The answer went out whole, exactly as framed, after a request read to its end."""
        exchange = self._exchange
        if exchange is None or not exchange.kept or exchange.body_start < 0:
            return False
        written = self._written.written - exchange.body_start
        return written == exchange.framed_length and self._request_complete(exchange)
