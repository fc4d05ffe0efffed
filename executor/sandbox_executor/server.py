"""The executor's HTTP API (executor-api.yaml): ``GET /health`` and ``POST /execute``, plus
``POST /bind`` for a warm-pool executor (see identity.py).

HTTP/1.1 is served by ``HTTPHandler`` below, over ``socketserver``: what the executor used of
``http.server.BaseHTTPRequestHandler`` (request line, headers, keep-alive, ``Expect: 100-continue``, the
same limits), without ``http.server``, which brings ``http.client``, ``email``, ``html``, ``mimetypes`` and
``shutil`` into every idle sandbox (about 1.5 MB with what they import, docs/capacity.md). Malformed
requests get the same statuses as from http.server, with a plain-text body instead of its HTML page.

Deviation from the contract, on purpose: ``/execute`` answers **202** ``{"execution_id",
"status": "accepted"}`` at once instead of a synchronous 200 with the result, so the control plane
never blocks on long runs; the result arrives through the ``/internal/.../result`` callback. With
``wait_ms`` (the control plane's execute-sync), a run that ends within it answers 200 ``{"execution_id",
"status": "completed", "result": <the callback's body>}`` instead, and no callback is posted.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import stat
import time
from collections.abc import Callable

from sandbox_executor import __version__
from sandbox_executor.config import ListenSpec
from sandbox_executor.errors import ValidationError
from sandbox_executor.identity import AlreadyBound, Binding, Identity, parse_bind_request
from sandbox_executor.logs import log
from sandbox_executor.worker import ExecutionQueue, Handoff, QueueFull

TYPE_CHECKING = False  # not typing's: an idle agent does not import typing (docs/capacity.md)
if TYPE_CHECKING:
    from typing import Any

    from sandbox_executor.interactive_api import Interactive

# A 1 MiB program can grow up to 6x as JSON (\uXXXX escapes), plus its event.
MAX_BODY_BYTES = 8 << 20
# The routes of interactive_api.py (its PREFIXES, kept equal by a unit test): matched here so that an
# agent imports that module, and the contexts and processes behind it, only when one is asked for.
INTERACTIVE_PREFIXES = ("/contexts", "/processes")


def _interactive_route(route: str) -> bool:
    return any(route == p or route.startswith(p + "/") for p in INTERACTIVE_PREFIXES)


class Service:
    """What the request handler needs: the queue, the workspace, the start time and the identity.

    ``persist`` saves a binding made by ``POST /bind`` (before it takes effect). ``interactive`` is the
    contexts-and-processes service, or a function that makes it on first use.
    """

    def __init__(
        self,
        executions: ExecutionQueue,
        workspace: str,
        identity: Identity | None = None,
        pool_id: str | None = None,
        persist: Callable[[Binding], None] | None = None,
        interactive: Interactive | Callable[[], Interactive] | None = None,
    ) -> None:
        self.executions = executions
        self.interactive = interactive
        self.workspace = workspace
        self.identity = identity or Identity(Binding("", ""))
        self.pool_id = pool_id
        self.persist = persist
        self.started = time.monotonic()

    def unhealthy_reason(self) -> str | None:
        # User code runs with the workspace as its cwd: without it every execution would fail.
        if not os.path.isdir(self.workspace) or not os.access(self.workspace, os.W_OK | os.X_OK):
            return f"Workspace {self.workspace} is not an accessible directory"
        return None


def _error(code: str, description: str, detail: str, solution: str) -> dict[str, str]:
    return {"error_code": code, "description": description, "error_detail": detail, "solution": solution}


_MAX_LINE = 65536  # request line and header lines, as http.server
_MAX_HEADERS = 100
# Reason phrases of the statuses the executor answers; others are looked up in http.HTTPStatus.
_REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
    403: "Forbidden", 404: "Not Found", 409: "Conflict", 410: "Gone", 411: "Length Required",
    413: "Request Entity Too Large", 414: "Request-URI Too Long", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable", 505: "HTTP Version Not Supported",
}  # fmt: skip
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _reason(status: int) -> str:
    if status in _REASONS:
        return _REASONS[status]
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _http_date() -> str:
    t = time.gmtime()
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class Headers:
    """A request's headers: ``get`` by name in any case, the first of repeated ones (as http.server's)."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def add(self, name: str, value: str) -> None:
        self._values.setdefault(name.lower(), value)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name.lower(), default)


class HTTPHandler(socketserver.StreamRequestHandler):
    """HTTP/1.1 requests on one connection (keep-alive) to ``do_<METHOD>``, as
    ``http.server.BaseHTTPRequestHandler`` dispatches them, with its limits and error statuses."""

    protocol_version = "HTTP/1.1"
    server_version = ""

    def handle(self) -> None:
        self.close_connection = True
        self._handle_one()
        while not self.close_connection:
            self._handle_one()

    def _handle_one(self) -> None:
        self.command, self.path, self.request_version = "", "", "HTTP/0.9"
        self.headers = Headers()
        try:
            line = self.rfile.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                self.request_version = ""
                self.send_error(414)
                return
            if not line:
                self.close_connection = True
                return
            if not self._parse_request(line):
                return
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.send_error(501, f"Unsupported method ({self.command!r})")
                return
            method()
            self.wfile.flush()
        except TimeoutError:  # a read or a write timed out: the connection goes
            self.close_connection = True

    def _parse_request(self, raw: bytes) -> bool:
        """http.server's parse_request: the request line, the headers, Connection and Expect."""
        self.close_connection = True
        words = str(raw, "iso-8859-1").rstrip("\r\n").split()
        if not words:
            return False
        if len(words) >= 3:
            version = words[-1]
            numbers = version[5:].split(".") if version.startswith("HTTP/") else []
            if len(numbers) != 2 or not all(n.isdigit() and len(n) <= 10 for n in numbers):
                self.send_error(400, f"Bad request version ({version!r})")
                return False
            number = int(numbers[0]), int(numbers[1])
            if number >= (1, 1):
                self.close_connection = False
            if number >= (2, 0):
                self.send_error(505, f"Invalid HTTP version ({version[5:]})")
                return False
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(400, f"Bad request syntax ({' '.join(words)!r})")
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(400, f"Bad HTTP/0.9 request type ({command!r})")
                return False
        self.command, self.path = command, path
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        problem = self._read_headers()
        if problem:
            self.send_error(431, problem)
            return False
        connection = (self.headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        expect = (self.headers.get("Expect") or "").lower()
        if expect == "100-continue" and self.request_version >= "HTTP/1.1":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def _read_headers(self) -> str | None:
        """Into ``self.headers``; what is wrong with them, or None."""
        name = ""
        for _ in range(_MAX_HEADERS + 1):
            line = self.rfile.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                return "Line too long"
            if line in (b"\r\n", b"\n", b""):
                return None
            text = str(line, "iso-8859-1").rstrip("\r\n")
            if text[:1] in (" ", "\t"):
                continue  # a folded continuation line (obsolete): not one the executor reads
            name, sep, value = text.partition(":")
            if sep and name and not name[0].isspace():
                self.headers.add(name.strip(), value.strip())
        return f"Too many headers: got more than {_MAX_HEADERS}"

    def send_response(self, status: int) -> None:
        self._head = []
        if self.request_version == "HTTP/0.9":  # no status line, no headers: as http.server
            return
        self._head.append(f"{self.protocol_version} {status} {_reason(status)}")
        if self.server_version:
            self._head.append(f"Server: {self.server_version}")
        self._head.append(f"Date: {_http_date()}")

    def send_header(self, name: str, value: str) -> None:
        if self.request_version != "HTTP/0.9":
            self._head.append(f"{name}: {value}")
        if name.lower() == "connection":
            if value.lower() == "close":
                self.close_connection = True
            elif value.lower() == "keep-alive":
                self.close_connection = False

    def end_headers(self) -> None:
        if self._head:
            self.wfile.write(("\r\n".join(self._head) + "\r\n\r\n").encode("latin-1", "strict"))
        self._head = []

    def send_error(self, status: int, message: str | None = None) -> None:
        """A plain-text error answer that closes the connection (http.server sends an HTML page)."""
        body = f"{status} {message or _reason(status)}\n".encode("utf-8", "replace")
        self.send_response(status)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status >= 200 and status not in (204, 304):
            self.wfile.write(body)


class Handler(HTTPHandler):
    server_version = f"sandbox-executor/{__version__}"
    timeout = 60  # idle keep-alive connections release their thread

    @property
    def service(self) -> Service:
        assert isinstance(self.server, _WithService)
        return self.server.service

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if _interactive_route(self.path.split("?", 1)[0]):
            self._interactive("GET")
            return
        if self.path.split("?", 1)[0] != "/health":
            self._send(
                404, _error("Executor.NotFound", "Not found", f"No route for GET {self.path}", "Use /health")
            )
            return
        reason = self.service.unhealthy_reason()
        if reason:
            self._send(503, {"status": "unhealthy", "reason": reason})
            return
        running, queued = self.service.executions.counts()
        payload: dict[str, Any] = {
            "status": "healthy",
            "version": __version__,
            "uptime_seconds": round(time.monotonic() - self.service.started, 3),
            "active_executions": running + queued,
            "bound": self.service.identity.bound.is_set(),
        }
        if self.service.pool_id:
            payload["pool_id"] = self.service.pool_id
        self._send(200, payload)

    def do_DELETE(self) -> None:
        self._interactive("DELETE")

    def _interactive(self, method: str) -> None:
        """Contexts and background processes (interactive_api.py): bound and keyed like /execute."""
        route = self.path.split("?", 1)[0]
        interactive = self.service.interactive
        if interactive is None or not _interactive_route(route):
            self.close_connection = True
            detail = f"No route for {method} {self.path}"
            self._send(404, _error("Executor.NotFound", "Not found", detail, "See executor-api.yaml"))
            return
        body = self._read_body() if method == "POST" else None
        if method == "POST" and body is None:
            return
        if not self._bound_and_authorized():
            return
        from sandbox_executor import interactive_api

        if callable(interactive):
            interactive = interactive()
        status, payload = interactive_api.handle(interactive, method, route, body)
        self._send(status, payload)

    def do_POST(self) -> None:
        route = self.path.split("?", 1)[0]
        if _interactive_route(route):
            self._interactive("POST")
            return
        if route not in ("/execute", "/bind"):
            self.close_connection = True  # we did not read the body
            self._send(
                404,
                _error("Executor.NotFound", "Not found", f"No route for POST {self.path}", "Use /execute"),
            )
            return
        body = self._read_body()
        if body is None:
            return
        if route == "/bind":
            self._bind(body)
        else:
            self._execute(body)

    def _validation_failed(self, exc: ValueError) -> None:
        detail = str(exc) if isinstance(exc, ValidationError) else f"Body is not valid JSON: {exc}"
        self._send(
            400,
            _error(
                "Executor.ValidationError",
                "Request validation failed",
                detail,
                "Correct the request and retry",
            ),
        )

    def _bind(self, body: bytes) -> None:
        service = self.service
        if not service.identity.pooled:
            self._send(409, _already_bound("Executor was started for its session; it is not a pool executor"))
            return
        try:
            binding = parse_bind_request(json.loads(body))
        except ValueError as exc:  # ValidationError, or malformed JSON
            self._validation_failed(exc)
            return
        try:
            fresh = service.identity.bind(binding, service.persist)
        except AlreadyBound as exc:
            log("bind_refused", session_id=binding.session_id, reason="already_bound")
            self._send(409, _already_bound(str(exc)))
            return
        if fresh:
            log("bound", session_id=binding.session_id, pool_id=service.pool_id, env_vars=len(binding.env))
        self._send(200, {"status": "bound", "session_id": binding.session_id})

    def _authorized(self) -> bool:
        """``POST /execute`` only from the control plane: it presents the SHA-256 of the session's
        callback token (what it stores), which user code never learns. Refused with 403 otherwise."""
        import hmac  # with the first execution, not in every idle agent (docs/capacity.md)

        key = self.service.identity.executor_key()
        given = self.headers.get("Authorization") or ""
        if key and hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            return True
        log("execute_refused", reason="bad_executor_key")
        self._send(
            403,
            _error(
                "Executor.Forbidden",
                "Not the control plane",
                "POST /execute needs the session's executor key",
                "Submit executions through the control plane's API",
            ),
        )
        return False

    def _bound_and_authorized(self) -> bool:
        if not self.service.identity.bound.is_set():
            self._send(
                409,
                _error(
                    "Executor.NotBound",
                    "Executor is not bound to a session",
                    "This warm-pool executor has not been bound yet",
                    "POST /bind first",
                ),
            )
            return False
        return self._authorized()

    def _execute(self, body: bytes) -> None:
        if not self._bound_and_authorized():
            return
        from sandbox_executor.validation import parse_execute_request  # with the first execution

        try:
            req = parse_execute_request(json.loads(body))
        except ValueError as exc:  # ValidationError, or malformed JSON
            self._validation_failed(exc)
            return
        handoff = Handoff() if req.wait_ms else None
        try:
            accepted = self.service.executions.submit(req, handoff)
        except QueueFull as exc:
            log("execution_rejected", execution_id=req.execution_id, reason="queue_full")
            self._send(
                503,
                _error(
                    "Executor.QueueFull",
                    "Maximum queued executions reached",
                    str(exc),
                    "Retry after current executions complete",
                ),
            )
            return
        if handoff is not None and accepted and req.wait_ms:
            report = handoff.wait(req.wait_ms / 1000)
            if report is not None:  # done in time: the answer carries the result (no callback then)
                delivered = False
                try:
                    self._send(
                        200, {"execution_id": req.execution_id, "status": "completed", "result": report}
                    )
                    delivered = True
                except OSError:
                    log("result_answer_failed", execution_id=req.execution_id)
                finally:
                    handoff.settle(delivered)
                return
        # Still running (it reports by callback), or a duplicate id: the same answer without running twice.
        self._send(202, {"execution_id": req.execution_id, "status": "accepted"})

    def _read_body(self) -> bytes | None:
        length_text = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length_text is None or not length_text.isdigit():
            self.close_connection = True
            self._send(
                411,
                _error(
                    "Executor.ValidationError",
                    "Content-Length required",
                    "Send a Content-Length body",
                    "Retry",
                ),
            )
            return None
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(
                413,
                _error(
                    "Executor.ValidationError",
                    "Request body too large",
                    f"Body is {length} bytes, the limit is {MAX_BODY_BYTES}",
                    "Send less code or a smaller event",
                ),
            )
            return None
        return self.rfile.read(length)


def _already_bound(detail: str) -> dict[str, str]:
    return _error("Executor.AlreadyBound", "Executor is already bound", detail, "Use another executor")


class _WithService:
    service: Service  # set by make_server; read by Handler
    # socketserver listens with a backlog of 5. On a unix socket a connect beyond the backlog fails at once
    # (EAGAIN), it does not wait: while a busy executor was slow to accept, the 6th of a burst of
    # execute-syncs failed as "executor unreachable". The process runtime's launcher listens with 64.
    request_queue_size = 128


class TCPServer(_WithService, socketserver.ThreadingMixIn, socketserver.TCPServer):
    # Not http.server.HTTPServer: its server_bind does a reverse DNS lookup (getfqdn), which can
    # hang for seconds in a sandbox without DNS.
    daemon_threads = True
    allow_reuse_address = True


class TCPServer6(TCPServer):
    address_family = socket.AF_INET6


class UnixServer(_WithService, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def server_bind(self) -> None:
        path = str(self.server_address)
        os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
        # A socket file left by a previous executor (crash, SIGKILL) would make bind fail.
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        super().server_bind()
        # The control plane side may run as another user (the sandbox runs as 1000:1000).
        os.chmod(path, 0o666)


def open_listener(listen: ListenSpec) -> socket.socket:
    """The listening socket, made once by the supervisor before any user code exists and handed to
    every agent it forks: a restarted agent never binds again, so nothing can take the address over
    in between. ``fd``: the socket the launcher made (kept out of user code: not inheritable)."""
    if listen.kind == "fd":
        sock = socket.socket(fileno=listen.fd)
        sock.set_inheritable(False)
        return sock
    probe = make_server(listen, None)
    return probe.socket


def make_server(
    listen: ListenSpec, service: Service | None, listener: socket.socket | None = None
) -> TCPServer | UnixServer:
    """A server on ``listener`` when given (inherited), else bound to ``listen`` now."""
    server: TCPServer | UnixServer
    if listener is not None:
        cls: type[TCPServer | UnixServer]
        if listener.family == socket.AF_UNIX:
            cls = UnixServer
        elif listener.family == socket.AF_INET6:
            cls = TCPServer6
        else:
            cls = TCPServer
        server = cls(listener.getsockname(), Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = listener
        server.server_address = listener.getsockname()
    elif listen.kind == "unix":
        server = UnixServer(listen.path, Handler)
    elif ":" in listen.host:
        server = TCPServer6((listen.host, listen.port), Handler)
    else:
        server = TCPServer((listen.host, listen.port), Handler)
    if service is not None:
        server.service = service
    return server


def bound_port(server: socketserver.BaseServer) -> int | None:
    """The TCP port actually bound (SANDBOXCP_LISTEN may say 0), None on a unix socket."""
    address = server.server_address
    return int(address[1]) if isinstance(address, tuple) else None
