"""A tiny HTTP client over ``http.client`` for ``http(s)://host:port[/prefix]`` and
``unix:///abs/path.sock`` bases (HTTP over a unix socket; the whole path is the socket).

One connection per request: callbacks are rare, and a fresh connection never trips over a
keep-alive socket the server already closed.

Presigned S3 requests (workspace sync) go either straight to their URL or, when the sandbox has
no network (``SANDBOXCP_S3_VIA``), through the control plane's socket as ``/_s3<path>?<query>``
with the URL's own ``Host``; their bodies and answers are streamed, never held whole in memory.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

_MAX_RESPONSE_BYTES = 1 << 20  # we only ever need small JSON answers; never buffer more


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTPConnection whose transport is an AF_UNIX stream socket."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True)
class Endpoint:
    """A parsed base URL; request paths are appended to ``prefix``."""

    scheme: str  # "http", "https" or "unix"
    host: str = ""
    port: int | None = None
    socket_path: str = ""
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            path = parts.netloc + parts.path if parts.netloc else parts.path
            if not path.startswith("/"):
                raise ValueError(f"unix base URL needs an absolute socket path: {url!r}")
            return cls(scheme="unix", socket_path=path)
        if parts.scheme in ("http", "https") and parts.hostname:
            return cls(
                scheme=parts.scheme,
                host=parts.hostname,
                port=parts.port,
                prefix=parts.path.rstrip("/"),
            )
        raise ValueError(f"unsupported base URL (want http://, https:// or unix://): {url!r}")

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "unix":
            return UnixHTTPConnection(self.socket_path, timeout)
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def request(
    endpoint: Endpoint,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    max_response_bytes: int = _MAX_RESPONSE_BYTES,
) -> Response:
    """Send one request; raises OSError / http.client.HTTPException on transport failures. At most
    `max_response_bytes` of the answer are read."""
    conn = endpoint.connection(timeout)
    try:
        all_headers = {"Connection": "close", **(headers or {})}
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        conn.request(method, endpoint.prefix + path, body=body, headers=all_headers)
        resp = conn.getresponse()
        data = resp.read(max_response_bytes)
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def request_json(
    endpoint: Endpoint,
    method: str,
    path: str,
    payload: Any = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Response:
    body = None if payload is None else json.dumps(payload, separators=(",", ":")).encode()
    return request(endpoint, method, path, body=body, headers=headers, timeout=timeout)


# -- presigned requests ---------------------------------------------------------------------------

S3_VIA_PREFIX = "/_s3"  # where the control plane's socket forwards to S3 (local mode)


@dataclass(frozen=True)
class PresignedTarget:
    """Where one presigned request goes: the connection, the request target and the Host header."""

    endpoint: Endpoint
    target: str  # path and query, as sent on the request line
    host: str  # the URL's host[:port]: SigV4 signs it, so it must reach S3 unchanged


def presigned_target(url: str, via: Endpoint | None = None) -> PresignedTarget:
    """``url`` as is, or through ``via`` (the control plane's socket) under ``/_s3``.

    The path and query are passed on verbatim (already percent-encoded, and signed).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("presigned URL must be http:// or https://")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.netloc.rpartition("@")[2]
    if via is not None:
        return PresignedTarget(via, via.prefix + S3_VIA_PREFIX + target, host)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("presigned URL has a bad port") from None
    return PresignedTarget(Endpoint(scheme=parts.scheme, host=parts.hostname, port=port), target, host)


@contextlib.contextmanager
def open_stream(
    where: PresignedTarget,
    method: str,
    *,
    body: Iterable[bytes] | bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[http.client.HTTPResponse]:
    """Send one request and yield the response unread (the caller streams it); closes on exit.

    An iterable ``body`` is sent chunk by chunk: give its ``Content-Length`` in ``headers``, or it
    goes out chunked. Raises OSError / http.client.HTTPException on transport failures.
    """
    conn = where.endpoint.connection(timeout)
    try:
        all_headers = {"Host": where.host, "Connection": "close", **(headers or {})}
        conn.request(method, where.target, body=body, headers=all_headers)
        yield conn.getresponse()
    finally:
        conn.close()
