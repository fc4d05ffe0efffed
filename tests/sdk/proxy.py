"""A tiny HTTP proxy in front of the local stack that injects faults: an error answer (503 with Retry-After,
429...) before or after forwarding the request, or a dropped connection. It records every request."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


@dataclass
class Fault:
    method: str
    path: str  # prefix of the request path
    status: int = 503
    headers: dict[str, str] = field(default_factory=lambda: {"Retry-After": "0"})
    times: int = 1
    after_forward: bool = False  # forward first (the upstream acts), then answer the fault: a lost answer
    drop: bool = False  # close the connection without answering


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    answered: int | None = None


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=60, follow_redirects=False)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
                with proxy._lock:
                    proxy.seen.append(seen)
                    fault = proxy._take(self.command, self.path)
                if fault is not None and fault.drop:
                    self.close_connection = True
                    return
                if fault is not None and fault.after_forward:
                    proxy._forward(self.command, self.path, self.headers, body)
                if fault is not None:
                    payload = json.dumps(
                        {
                            "error_code": "Sandbox.TooManyRequestsExection",
                            "description": "No available sandbox",
                            "error_detail": "injected by the test proxy",
                            "solution": "Please retry later",
                            "request_id": f"proxy-{len(proxy.seen)}",
                        }
                    ).encode()
                    seen.answered = fault.status
                    self.send_response(fault.status)
                    for k, v in fault.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                resp = proxy._forward(self.command, self.path, self.headers, body)
                seen.answered = resp.status_code
                self.send_response(resp.status_code)
                for k, v in resp.headers.multi_items():
                    if k.lower() not in HOP_BY_HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _take(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and path.startswith(fault.path):
                fault.times -= 1
                return fault
        return None

    def _forward(self, method: str, path: str, headers: object, body: bytes) -> httpx.Response:
        keep = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}  # type: ignore[attr-defined]
        return self._http.request(method, self.upstream + path, headers=keep, content=body)

    def inject(self, method: str, path: str, **kwargs: object) -> Fault:
        fault = Fault(method, path, **kwargs)  # type: ignore[arg-type]
        with self._lock:
            self.faults.append(fault)
        return fault

    def requests_to(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path.split("?")[0] == path]

    def reset(self) -> None:
        with self._lock:
            self.faults.clear()
            self.seen.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._http.close()
