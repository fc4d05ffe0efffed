"""A tiny HTTP client for ``http(s)://host:port[/prefix]`` and ``unix:///abs/path.sock`` bases (HTTP over
a unix socket; the whole path is the socket).

One connection per callback (``request``): callbacks are rare, and a fresh connection never trips over a
keep-alive socket the server already closed.

``request`` (the callbacks: small JSON bodies) speaks HTTP/1.1 itself over http and unix sockets: every idle
agent sends container_ready, and ``http.client`` would bring ``email`` (and ``ssl``) into every sandbox's
memory (about 1 MB, docs/capacity.md). https goes through ``http.client``, imported on first use; an executor
configured with an https URL imports it in the supervisor, before the fork (``tls_needed``, supervisor.py).

Presigned S3 requests (workspace sync) go either straight to their URL or, when the sandbox has
no network (``SANDBOXCP_S3_VIA``), through the control plane's socket as ``/_s3<path>?<query>``
with the URL's own ``Host``; their bodies and answers are streamed, never held whole in memory, over
connections kept open for the sync's many requests (``KeptConnections``: ``http.client``, with the
first execution that syncs).
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from urllib.parse import urlsplit

from sandbox_executor.records import Record

TYPE_CHECKING = False  # not typing's: an idle agent does not import typing (docs/capacity.md)
if TYPE_CHECKING:
    import http.client
    from typing import Any

_MAX_RESPONSE_BYTES = 1 << 20  # we only ever need small JSON answers; never buffer more
_MAX_LINE = 65536  # as http.client: a longer status or header line is refused
_MAX_HEADERS = 100
_BODY_METHODS = ("PATCH", "POST", "PUT")  # sent with Content-Length: 0 when they have no body


def tls_needed(env: Mapping[str, str]) -> bool:
    """Whether this executor may have to speak https: to the control plane (``SANDBOXCP_CALLBACK_URL``),
    to S3 through ``SANDBOXCP_S3_VIA``, to the ECS metadata endpoint, or straight to presigned S3 URLs,
    which it does whenever there is no ``SANDBOXCP_S3_VIA`` (deployed ECS/EKS, remote docker)."""
    urls = [env.get(name, "").strip().lower() for name in ("SANDBOXCP_CALLBACK_URL", "SANDBOXCP_S3_VIA")]
    urls.append(env.get("ECS_CONTAINER_METADATA_URI_V4", "").strip().lower())
    return not urls[1] or any(url.startswith("https:") for url in urls)


class BadResponse(ConnectionError):
    """The server's answer is not HTTP/1.x we can read (what ``http.client.HTTPException`` is for
    ``http.client``): an OSError, like every transport failure of ``request``."""


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection without answering (as ``http.client.RemoteDisconnected``)."""


def _unix_connection(socket_path: str, timeout: float) -> http.client.HTTPConnection:
    """An ``http.client.HTTPConnection`` whose transport is an AF_UNIX stream socket."""
    import http.client

    class UnixHTTPConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = _unix_socket(socket_path, self.timeout)

    return UnixHTTPConnection("localhost", timeout=timeout)


def _unix_socket(path: str, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


class Endpoint(Record):
    """A parsed base URL; request paths are appended to ``prefix``."""

    __slots__ = __match_args__ = ("scheme", "host", "port", "socket_path", "prefix")
    scheme: str  # "http", "https" or "unix"
    host: str
    port: int | None
    socket_path: str
    prefix: str

    def __init__(
        self, scheme: str, host: str = "", port: int | None = None, socket_path: str = "", prefix: str = ""
    ) -> None:
        self._init(scheme=scheme, host=host, port=port, socket_path=socket_path, prefix=prefix)

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
        """An ``http.client`` connection (imported now if it was not: the first https callback or
        presigned request pays for it)."""
        import http.client

        if self.scheme == "unix":
            return _unix_connection(self.socket_path, timeout)
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def host_header(self) -> str:
        """``Host`` as http.client sends it: ``localhost`` on a unix socket, the port unless 80."""
        if self.scheme == "unix":
            return "localhost"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port in (None, 80) else f"{host}:{self.port}"


class Response(Record):
    __slots__ = __match_args__ = ("status", "headers", "body")
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def __init__(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self._init(status=status, headers={} if headers is None else headers, body=body)

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
    """Send one request; raises OSError (``BadResponse`` for an answer that is not HTTP) on transport
    failures. At most `max_response_bytes` of the answer are read."""
    all_headers = {"Connection": "close", **(headers or {})}
    if body is not None:
        all_headers.setdefault("Content-Type", "application/json")
    if endpoint.scheme == "https":
        return _request_tls(endpoint, method, path, body, all_headers, timeout, max_response_bytes)
    lines = [f"{method} {endpoint.prefix + path} HTTP/1.1", f"Host: {endpoint.host_header()}"]
    lines.append("Accept-Encoding: identity")
    if not any(name.lower() == "content-length" for name in all_headers) and (
        body is not None or method.upper() in _BODY_METHODS
    ):
        lines.append(f"Content-Length: {len(body or b'')}")
    for name, value in all_headers.items():
        if not name or name[0].isspace() or any(c in name for c in ":\r\n") or "\r" in value or "\n" in value:
            raise ValueError(f"Invalid header {name!r}")  # as http.client's putheader
        lines.append(f"{name}: {value}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if endpoint.scheme == "unix":
        sock = _unix_socket(endpoint.socket_path, timeout)
    else:
        sock = socket.create_connection((endpoint.host, endpoint.port or 80), timeout)
    try:
        sock.sendall(head + body if body else head)
        with sock.makefile("rb") as stream:
            return _read_response(stream, method, max_response_bytes)
    finally:
        sock.close()


def _request_tls(
    endpoint: Endpoint,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    timeout: float,
    max_response_bytes: int,
) -> Response:
    import http.client

    conn = endpoint.connection(timeout)
    try:
        conn.request(method, endpoint.prefix + path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read(max_response_bytes)
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    except http.client.HTTPException as exc:
        raise BadResponse(f"{type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()


def _read_line(stream: Any) -> bytes:
    line: bytes = stream.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise BadResponse("line too long")
    return line


def _read_response(stream: Any, method: str, limit: int) -> Response:
    while True:
        line = _read_line(stream)
        if not line:
            raise RemoteDisconnected("Remote end closed connection without response")
        version, _, rest = line.decode("latin-1").strip().partition(" ")
        code = rest.partition(" ")[0]
        if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit() or int(code) < 100:
            raise BadResponse(f"bad status line {line[:100]!r}")
        status = int(code)
        headers = _read_headers(stream)
        if status != 100:  # an interim "100 Continue" is skipped, as http.client does
            break
    if status in (204, 304) or status < 200 or method.upper() == "HEAD":
        return Response(status, headers, b"")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Response(status, headers, _read_chunked(stream, limit))
    length_text = headers.get("content-length", "")
    length = int(length_text) if length_text.strip().isdigit() else None
    return Response(status, headers, stream.read(limit if length is None else min(limit, length)))


def _read_headers(stream: Any) -> dict[str, str]:
    """Lower-cased names; the last of repeated ones (as ``dict(resp.getheaders())``)."""
    headers: dict[str, str] = {}
    name = ""
    for _ in range(_MAX_HEADERS + 1):
        line = _read_line(stream)
        if line in (b"\r\n", b"\n", b""):
            return headers
        text = line.decode("latin-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and name:  # a folded continuation of the previous header
            headers[name] += " " + text.strip()
            continue
        name, sep, value = text.partition(":")
        name = name.strip().lower()
        if sep and name:
            headers[name] = value.strip()
    raise BadResponse(f"got more than {_MAX_HEADERS} headers")


def _read_chunked(stream: Any, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < limit:
        line = _read_line(stream)
        try:
            chunk = int(line.split(b";", 1)[0], 16)
        except ValueError:
            raise BadResponse("bad chunk size") from None
        if chunk == 0:
            break
        data = stream.read(min(chunk, limit - size))
        if len(data) < min(chunk, limit - size):
            raise BadResponse("incomplete chunked body")
        parts.append(data)
        size += len(data)
        if size < limit:
            stream.read(2)  # the CRLF after the chunk
    return b"".join(parts)


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


class PresignedTarget(Record):
    """Where one presigned request goes: the connection, the request target and the Host header."""

    __slots__ = __match_args__ = ("endpoint", "target", "host")
    endpoint: Endpoint
    target: str  # path and query, as sent on the request line
    host: str  # the URL's host[:port]: SigV4 signs it, so it must reach S3 unchanged

    def __init__(self, endpoint: Endpoint, target: str, host: str) -> None:
        self._init(endpoint=endpoint, target=target, host=host)


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


class KeptConnections:
    """Connections for a batch of presigned requests (one sync's downloads or uploads), kept open between
    requests: one per thread and endpoint, reused while the server keeps it (HTTP/1.1 keep-alive). A new
    connection for each of 1,000 small files costs a handshake each (TCP, and TLS to S3) on both sides.
    ``close()`` closes them all; use one instance per batch, from the threads of that batch."""

    def __init__(self) -> None:
        import threading

        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    @contextlib.contextmanager
    def open_stream(
        self,
        where: PresignedTarget,
        method: str,
        *,
        body: Callable[[], Iterable[bytes] | bytes | None] = lambda: None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Iterator[http.client.HTTPResponse]:
        """Send one request and yield the response unread (the caller streams it). ``body`` makes the
        request's body: an iterable is sent chunk by chunk (give its ``Content-Length`` in ``headers``,
        or it goes out chunked). A kept connection the server has closed meanwhile is replaced once, the
        body made again. The connection is kept after the response if the caller read it to its end and
        the server did not say close. Raises OSError / http.client.HTTPException on transport failures
        (``http.client`` is imported on first use)."""
        all_headers = {"Host": where.host, **(headers or {})}
        for _ in range(2):  # a kept connection, then (if the server had closed it) a new one
            conn, reused = self._take(where.endpoint, timeout)
            try:
                conn.request(method, where.target, body=body(), headers=all_headers)
                response = conn.getresponse()
                break
            except ConnectionError:
                self._drop(conn)
                if not reused:
                    raise
            except BaseException:
                self._drop(conn)
                raise
        try:
            yield response
        except BaseException:
            self._drop(conn)
            raise
        if response.will_close or not response.isclosed():  # said close, or the caller left some unread
            self._drop(conn)
        else:
            self._local.kept[where.endpoint] = conn

    def _take(self, endpoint: Endpoint, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's kept connection to `endpoint` (taken out until given back), or a new one."""
        kept: dict[Endpoint, http.client.HTTPConnection] = self._local.__dict__.setdefault("kept", {})
        conn = kept.pop(endpoint, None)
        if conn is not None:
            return conn, True
        conn = endpoint.connection(timeout)
        with self._lock:
            self._open.add(conn)
        return conn, False

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            self._open.discard(conn)

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, set()
        for conn in conns:
            conn.close()
