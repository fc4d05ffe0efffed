"""A fake Kubernetes API server: just enough of /api/v1 pods (+ log) and networking.k8s.io/v1 NetworkPolicies
for the eks runtime's tests.

Serves HTTPS with a throwaway self-signed certificate (made with `openssl`, for 127.0.0.1) so the client's CA
path is exercised, or plain HTTP with `tls=False`. Every request is recorded (method, path, query, headers,
JSON body). Requests without `Authorization: Bearer k8s-aws-v1.<...>` get 401. Tests set a pod's phase and
its log lines directly. A created pod is Running at once with an address of 10.1.0.0/16 (`run_pods`, as a
scheduler and kubelet would make it), unless the test turns that off to play a pod that never runs.

Nothing runs here: tests/integration/test_eks_standin.py drives the same adapter against
sandboxcp.local.kube_standin, whose pods are real containers.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandboxcp.local.kube_standin import self_signed_certificate, status_body

_POD = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?(/log)?$")
_NAMESPACE = re.compile(r"^/api/v1/namespaces/([^/]+)$")
_NETPOL = re.compile(r"^/apis/networking\.k8s\.io/v1/namespaces/([^/]+)/networkpolicies(?:/([^/]+))?$")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeKube:
    url: str = ""
    ca_pem: bytes = b""
    requests: list[Request] = field(default_factory=list)
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    policies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    logs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=lambda: {"default", "kube-system", "sandboxes"})
    run_pods: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next_ip: int = 1

    @property
    def ca_data(self) -> str:
        """The CA as EKS_CA_DATA carries it: base64 of the PEM."""
        return base64.b64encode(self.ca_pem).decode()

    def set_phase(self, namespace: str, name: str, phase: str) -> None:
        with self.lock:
            self.pods[(namespace, name)]["status"]["phase"] = phase

    def made(self, method: str, kind: str) -> list[Request]:
        """Recorded requests of one method whose path is about `kind` ('pods', 'log', 'networkpolicies')."""

        def about(r: Request) -> bool:
            if kind == "log":
                return r.path.endswith("/log")
            return f"/{kind}" in r.path and not r.path.endswith("/log")

        return [r for r in self.requests if r.method == method and about(r)]


def _handler(state: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        # -- plumbing -----------------------------------------------------------------------------
        def _send(self, code: int, payload: Any, content_type: str = "application/json") -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            request = Request(
                self.command,
                parts.path,
                parse_qs(parts.query),
                {k.lower(): v for k, v in self.headers.items()},
                body,
            )
            with state.lock:
                state.requests.append(request)
            auth = request.headers.get("authorization", "")
            if not re.fullmatch(r"Bearer k8s-aws-v1\.[A-Za-z0-9_-]+", auth):
                self._send(401, status_body(401, "Unauthorized", "Unauthorized"))
                return
            if m := _POD.match(parts.path):
                self._pods(request, m.group(1), m.group(2), bool(m.group(3)))
            elif m := _NETPOL.match(parts.path):
                self._policies(request, m.group(1), m.group(2))
            elif (m := _NAMESPACE.match(parts.path)) and request.method == "GET":
                if m.group(1) in state.namespaces:
                    self._send(
                        200, {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": m.group(1)}}
                    )
                else:
                    self._send(404, status_body(404, "NotFound", f'namespaces "{m.group(1)}" not found'))
            else:
                self._send(404, status_body(404, "NotFound", f"no route {parts.path}"))

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

        # -- resources ----------------------------------------------------------------------------
        def _create(
            self, store: dict[tuple[str, str], dict[str, Any]], ns: str, body: Any, kind: str
        ) -> None:
            name = body["metadata"]["name"]
            with state.lock:
                if (ns, name) in store:
                    self._send(409, status_body(409, "AlreadyExists", f'{kind} "{name}" already exists'))
                    return
                obj = json.loads(json.dumps(body))
                obj["metadata"].update(
                    namespace=ns,
                    uid=str(uuid.uuid4()),
                    creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    resourceVersion="1",
                )
                if kind == "pods" and state.run_pods:
                    state._next_ip += 1
                    ip = f"10.1.{state._next_ip // 250}.{state._next_ip % 250 + 2}"
                    obj["status"] = {"phase": "Running", "podIP": ip}
                elif kind == "pods":
                    obj["status"] = {"phase": "Pending"}
                store[(ns, name)] = obj
            self._send(201, obj)

        def _list(
            self, store: dict[tuple[str, str], dict[str, Any]], ns: str, request: Request, kind: str
        ) -> dict[str, Any]:
            """Equality label selectors only (`a=b,c=d`); no paging."""
            wanted = dict(
                term.split("=", 1) for term in request.query.get("labelSelector", [""])[0].split(",") if term
            )
            with state.lock:
                items = [
                    obj
                    for (namespace, _), obj in sorted(store.items())
                    if namespace == ns
                    and all(obj["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
                ]
            return {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}

        def _pods(self, request: Request, ns: str, name: str | None, log: bool) -> None:
            if request.method == "POST" and name is None:
                self._create(state.pods, ns, request.body, "pods")
                return
            if request.method == "GET" and name is None:
                self._send(200, self._list(state.pods, ns, request, "PodList"))
                return
            pod = state.pods.get((ns, name or ""))
            if pod is None:
                self._send(404, status_body(404, "NotFound", f'pods "{name}" not found'))
            elif log and request.method == "GET":
                lines = list(state.logs.get((ns, name or ""), []))
                if "tailLines" in request.query:
                    tail = int(request.query["tailLines"][0])
                    lines = lines[-tail:] if tail > 0 else []
                text = "".join(line + "\n" for line in lines)
                self._send(200, text.encode(), "text/plain")
            elif request.method == "GET":
                self._send(200, pod)
            elif request.method == "DELETE":
                with state.lock:
                    state.pods.pop((ns, name or ""), None)
                self._send(200, pod)
            else:
                self._send(405, status_body(405, "MethodNotAllowed", request.method))

        def _policies(self, request: Request, ns: str, name: str | None) -> None:
            if request.method == "POST" and name is None:
                self._create(state.policies, ns, request.body, "networkpolicies")
                return
            policy = state.policies.get((ns, name or ""))
            if policy is None:
                self._send(404, status_body(404, "NotFound", f'networkpolicies "{name}" not found'))
            elif request.method == "GET":
                self._send(200, policy)
            elif request.method == "DELETE":
                with state.lock:
                    state.policies.pop((ns, name or ""), None)
                self._send(200, status_body(200, "", "") | {"status": "Success"})
            else:
                self._send(405, status_body(405, "MethodNotAllowed", request.method))

    return Handler


class FakeKubeServer:
    """Context manager: `with FakeKubeServer() as kube: ... kube.url, kube.ca_data, kube.requests`."""

    def __init__(self, *, tls: bool = True) -> None:
        self.tls = tls
        self.state = FakeKube()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> FakeKube:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        httpd.daemon_threads = True
        scheme = "http"
        if self.tls:
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-kube-")
            cert, key = self_signed_certificate(Path(self._tmp.name), "fake-kube")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
            self.state.ca_pem = cert.read_bytes()
            scheme = "https"
        self._httpd = httpd
        self.state.url = f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-kube", daemon=True
        )
        self._thread.start()
        return self.state

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()
