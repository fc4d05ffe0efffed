"""Request bodies in the local API Gateway emulator. API Gateway runs a REQUEST authorizer on headers, path
and query alone and caps payloads at 10 MB; the emulator does the same, so an unauthenticated or oversized
upload costs the stack neither memory nor the time to receive it:

- `read_body` is called only once the authorizer allowed the request, and refuses a body as soon as it
  exceeds the limit (a declared Content-Length before reading a byte; a chunked one while reading);
- the server's request handler (handler.py) closes the connection after such an answer instead of
  draining what the client still sends (beyond a small DRAIN_BUDGET)."""

from __future__ import annotations

import io

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request

MAX_PAYLOAD = 10 * 1024 * 1024  # API Gateway's request payload limit
_READ_SIZE = 64 * 1024
# After answering, werkzeug reads what the client still sends (up to 10 GB) so that the client sees the
# answer rather than a reset. A little of that lets a client whose small body went unread (a 401 on a
# JSON POST) read the answer cleanly; a refused upload is cut off here and the connection closed.
DRAIN_BUDGET = 64 * 1024


class BodyRefused(Exception):
    """The gateway answers `status` without passing the request on (see gateway._gateway_error)."""

    def __init__(self, status: int, description: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.description, self.detail = status, description, detail


def too_large() -> BodyRefused:
    return BodyRefused(413, "Payload too large", f"API requests are limited to {MAX_PAYLOAD // 2**20} MB")


def read_body(request: Request, limit: int = MAX_PAYLOAD) -> bytes:
    """The whole body, or BodyRefused(413) once more than `limit` bytes arrived.

    `request.stream` is bounded by Content-Length when there is one; for `Transfer-Encoding: chunked`
    werkzeug's server de-chunks and marks the input terminated, so the stream ends with the body and its
    size is known only by reading. (`Request.max_content_length` would not do: on a chunked stream werkzeug
    stops at the limit and returns the truncated body without an error.)"""
    if (request.content_length or 0) > limit:
        raise too_large()
    stream = request.stream
    body = bytearray()
    try:
        while chunk := stream.read(min(_READ_SIZE, limit + 1 - len(body))):
            body += chunk
            if len(body) > limit:
                raise too_large()
    except (ClientDisconnected, OSError) as err:  # a truncated body, or a malformed chunk header
        raise BodyRefused(400, "Invalid request", "The request body could not be read") from err
    return bytes(body)


class DrainBudget(io.BufferedIOBase):
    """Stands in for the handler's `rfile` once the request line and headers are parsed (the app reads
    the body through `wsgi.input`, which keeps the real stream): werkzeug's after-answer drain reads this,
    which yields at most `budget` bytes, each read taking only what has already arrived. Closing it leaves
    the socket's reader open (the handler closes that, or reads the next request from it)."""

    def __init__(self, inner: io.BufferedIOBase, budget: int) -> None:
        super().__init__()
        self._inner, self._left = inner, budget

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self.read1(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        data = self._inner.read1(want) if want > 0 else b""
        self._left -= len(data)
        return data

    def stop(self) -> None:
        """Read nothing more: what follows is the next request's (a kept connection, handler.py)."""
        self._left = 0
