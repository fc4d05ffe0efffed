"""Test helpers for sandbox_executor: a fake control plane and a real executor subprocess.

The fake control plane is a stdlib HTTP server (TCP on 127.0.0.1, or a unix socket) that records
every callback and can be told to answer 503 to the first N result posts of an execution.
``FakeTaskMetadata`` stands in for the ECS task metadata endpoint, ``FakeS3`` for S3's presigned
GETs and POST-policy uploads (the workspace sync).
"""

from __future__ import annotations

import base64
import email
import email.message
import hashlib
import json
import os
import secrets
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from sandbox_executor.http_client import Endpoint, Response, request_json
from sandbox_executor.supervisor import AGENT_NAME

REPO_ROOT = Path(__file__).resolve().parents[2]
EXECUTOR_DIR = REPO_ROOT / "executor"
SESSION_ID = "sess_abcdef0123456789"
TOKEN = "tok-" + "s3cr3t" * 4


def new_execution_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "exec_20250106_" + "".join(secrets.choice(alphabet) for _ in range(8))


@dataclass
class Call:
    path: str
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    at: float
    status: int  # what the fake control plane answered

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class FakeControlPlane:
    """Records callbacks; ``fail_results[eid] = n`` answers 503 to that result's first n posts."""

    def __init__(self, unix_path: str | None = None) -> None:
        self.calls: list[Call] = []
        self.fail_results: dict[str, int] = {}
        # The workspace plan .../workspace-urls answers from, when set: its files' URLs are left out of
        # a listing asked with `urls: false`, and are the answer to one asked with `paths`.
        self.listing: dict[str, Any] | None = None
        self.ready_status = 200
        self._cond = threading.Condition()
        handler = self._handler_class()
        self._server: socketserver.BaseServer
        if unix_path:
            self._server = _UnixHTTPServer(unix_path, handler)
            self.url = f"unix://{unix_path}"
        else:
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            self.url = f"http://127.0.0.1:{self._server.server_address[1]}/cp"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeControlPlane:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        cp = self

        class Handler(BaseHTTPRequestHandler):
            def address_string(self) -> str:
                return "test"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = cp._status_for(self.path)
                with cp._cond:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    cp.calls.append(Call(self.path, headers, raw, time.monotonic(), status))
                    cp._cond.notify_all()
                body = b'{"message":"ok"}'
                if self.path.endswith("/workspace-urls") and cp.listing is not None:
                    body = json.dumps(cp.workspace_urls(json.loads(raw or b"{}"))).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _status_for(self, path: str) -> int:
        if path.endswith("/container_ready"):
            return self.ready_status
        if path.endswith("/result"):
            eid = path.rsplit("/", 2)[-2]
            with self._cond:
                left = self.fail_results.get(eid, 0)
                if left > 0:
                    self.fail_results[eid] = left - 1
                    return 503
        return 200

    def snapshot(self) -> list[Call]:
        with self._cond:
            return list(self.calls)

    def wait_for(self, predicate: Callable[[list[Call]], bool], timeout: float = 10.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.calls):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out; callbacks so far: {[c.path for c in self.calls]}")
                self._cond.wait(remaining)
            return list(self.calls)

    def workspace_urls(self, request: dict[str, Any]) -> dict[str, Any]:
        """As the control plane's `workspace_urls` answers ``request`` from ``listing``."""
        assert self.listing is not None
        downloads = self.listing.get("downloads") or []
        if request.get("paths") is not None:
            urls = {d["path"]: d["url"] for d in downloads}
            return {"urls": {path: urls[path] for path in request["paths"] if path in urls}}
        if request.get("urls", True) or self.listing.get("downloads") is None:
            return self.listing
        return {**self.listing, "downloads": [{k: v for k, v in d.items() if k != "url"} for d in downloads]}

    def workspace_requests(self) -> list[dict[str, Any]]:
        """The bodies of the workspace-urls calls made, in order."""
        return [json.loads(c.raw or b"{}") for c in self.calls_to("/workspace-urls")]

    def calls_to(self, suffix: str) -> list[Call]:
        return [c for c in self.snapshot() if c.path.endswith(suffix)]

    def result(self, eid: str, timeout: float = 15.0) -> dict[str, Any]:
        """The result of ``eid`` that the fake control plane accepted (waits for it)."""
        want = f"/executions/{eid}/result"

        def accepted(calls: list[Call]) -> list[Call]:
            return [c for c in calls if c.path.endswith(want) and c.status < 300]

        return accepted(self.wait_for(lambda cs: bool(accepted(cs)), timeout))[0].json


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class FakeTaskMetadata:
    """``GET {url}/task`` answers ``task`` as JSON (or ``status`` with no body), like ECS metadata v4."""

    def __init__(self, task: Any, status: int = 200) -> None:
        self.task = task
        self.status = status
        self.requests: list[str] = []
        meta = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                meta.requests.append(self.path)
                ok = self.path == "/v4/task-abc/task" and meta.status == 200
                body = json.dumps(meta.task).encode() if ok else b""
                self.send_response(meta.status if self.path == "/v4/task-abc/task" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v4/task-abc"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeTaskMetadata:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class S3Request:
    method: str
    path: str  # as received (with /_s3 when it came through the unix socket)
    host: str
    transport: str  # "tcp" or "unix"
    status: int = 0
    connection: int = 0  # which client connection it came on (numbered from 1 as they are accepted)


@dataclass
class S3Upload:
    key: str
    data: bytes
    fields: list[tuple[str, str]]  # the form fields before the file, in order
    filename: str | None
    content_type: str | None  # the file part's own Content-Type
    boundary: str | None = None  # the form's multipart boundary


class FakeS3:
    """S3 as the executor sees it through presigned requests, with S3's checks that matter here.

    ``objects`` maps keys of bucket ``bkt`` to bytes. ``GET /bkt/<key>?...X-Amz-Signature=...``
    serves one (404 NoSuchKey, or 403 without a signature); ``POST /bkt`` takes a multipart upload
    (parsed with ``email``) checked like S3 checks a POST policy: key prefix, size range, every form
    field named by a policy condition ("Extra input fields"), ``file`` last, a Content-Length. It
    answers 204 with the ETag (the MD5), unless ``etag_header`` is off (moto does not send one).

    Reachable over TCP at ``url`` and, with ``unix_path``, over a unix socket under ``/_s3`` (the
    way the control plane forwards sandboxes' presigned requests in local mode), where URLs name
    ``virtual_host`` instead. ``fail_posts`` / ``fail_gets`` are statuses answered (SlowDown for
    503) to the next POSTs / GETs of a key. Connections are kept between requests (HTTP/1.1), unless
    ``drop_connections`` is set: then each is closed after its answer without a word (as a server does
    with a kept connection it times out), which the client learns only by using it again.
    """

    BUCKET = "bkt"

    def __init__(self, unix_path: str | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.requests: list[S3Request] = []
        self.uploads: list[S3Upload] = []
        self.fail_posts: list[int] = []
        self.fail_gets: dict[str, list[int]] = {}
        self.etag_header = True
        self.drop_connections = False
        self._connections = 0
        self.virtual_host = "s3.sandbox.test:9000"
        self._lock = threading.Lock()
        tcp = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class("tcp"))
        self._servers: list[socketserver.BaseServer] = [tcp]
        self.url = f"http://127.0.0.1:{tcp.server_address[1]}"
        if unix_path:
            self._servers.append(_UnixHTTPServer(unix_path, self._handler_class("unix")))
        self.unix_path = unix_path
        self._threads = [
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for srv in self._servers
        ]

    def __enter__(self) -> FakeS3:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()

    # -- what tests look at ----------------------------------------------------------------------

    def gets(self, key: str | None = None) -> list[S3Request]:
        with self._lock:
            found = [r for r in self.requests if r.method == "GET"]
        return [r for r in found if key is None or unquote(urlsplit(r.path).path).endswith("/" + key)]

    def uploaded(self, key: str) -> list[S3Upload]:
        with self._lock:
            return [u for u in self.uploads if u.key == key]

    @staticmethod
    def etag(data: bytes) -> str:
        return hashlib.md5(data).hexdigest()

    def plan(
        self,
        prefix: str,
        *,
        quota_bytes: int = 1 << 30,
        max_bytes: int = 100 << 20,
        via_unix: bool = False,
        allow_content_type: bool = True,
        downloads: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A plan like the control plane's ``workspace_plan`` for the objects under ``prefix``."""
        base = f"http://{self.virtual_host}" if via_unix else self.url
        with self._lock:
            objects = {k: v for k, v in self.objects.items() if k.startswith(prefix)}
        planned = [
            {
                "path": key[len(prefix) :],
                "size": len(data),
                "etag": self.etag(data),
                "last_modified": "2025-01-06T10:00:00+00:00",
                "url": self.presigned_get(key, base),
            }
            for key, data in sorted(objects.items())
        ]
        conditions: list[Any] = [
            {"bucket": self.BUCKET},
            ["starts-with", "$key", prefix],
            ["content-length-range", 0, max_bytes],
            {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
            {"x-amz-credential": "AKIDEXAMPLE/20250106/us-east-1/s3/aws4_request"},
            {"x-amz-date": "20250106T100000Z"},
        ]
        if allow_content_type:
            conditions.append(["starts-with", "$Content-Type", ""])
        policy = {"expiration": "2099-01-01T00:00:00Z", "conditions": conditions}
        return {
            "downloads": planned if downloads is None else downloads,
            "upload": {
                "url": f"{base}/{self.BUCKET}",
                "fields": {
                    "key": prefix + "${filename}",
                    "x-amz-algorithm": "AWS4-HMAC-SHA256",
                    "x-amz-credential": "AKIDEXAMPLE/20250106/us-east-1/s3/aws4_request",
                    "x-amz-date": "20250106T100000Z",
                    "policy": base64.b64encode(json.dumps(policy).encode()).decode(),
                    "x-amz-signature": "f" * 64,
                },
                "key_prefix": prefix,
                "max_bytes": max_bytes,
            },
            "quota_bytes": quota_bytes,
        }

    def presigned_get(self, key: str, base: str | None = None) -> str:
        query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-Signature=" + "e" * 64
        return f"{base or self.url}/{self.BUCKET}/{quote(key)}?{query}"

    # -- the server side -------------------------------------------------------------------------

    def _handler_class(self, transport: str) -> type[BaseHTTPRequestHandler]:
        s3 = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def address_string(self) -> str:
                return transport

            def setup(self) -> None:
                super().setup()
                with s3._lock:
                    s3._connections += 1
                    self.number = s3._connections

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _route(self) -> tuple[str, dict[str, list[str]]] | None:
                path = self.path
                if transport == "unix":
                    if not path.startswith("/_s3/"):
                        return None
                    path = path[len("/_s3") :]
                parts = urlsplit(path)
                return unquote(parts.path), parse_qs(parts.query)

            def _answer(self, req: S3Request, status: int, body: bytes = b"", **headers: str) -> None:
                req.status, req.connection = status, self.number
                if s3.drop_connections:
                    self.close_connection = True  # after the answer, which does not say so
                with s3._lock:
                    s3.requests.append(req)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, req: S3Request, status: int, code: str) -> None:
                body = f"<Error><Code>{code}</Code><Message>{code}</Message></Error>".encode()
                self._answer(req, status, body, Content_Type="application/xml")

            def do_GET(self) -> None:
                req = S3Request("GET", self.path, self.headers.get("Host", ""), transport)
                route = self._route()
                if route is None or not route[0].startswith(f"/{s3.BUCKET}/"):
                    return self._error(req, 404, "NoSuchBucket")
                key = route[0][len(s3.BUCKET) + 2 :]
                if "X-Amz-Signature" not in route[1]:
                    return self._error(req, 403, "AccessDenied")
                with s3._lock:
                    failures = s3.fail_gets.get(key) or []
                    status = failures.pop(0) if failures else 0
                    data = s3.objects.get(key)
                if status:
                    return self._error(req, status, _s3_code(status))
                if data is None:
                    return self._error(req, 404, "NoSuchKey")
                self._answer(req, 200, data, ETag=f'"{s3.etag(data)}"', Content_Type="binary/octet-stream")

            def do_POST(self) -> None:
                req = S3Request("POST", self.path, self.headers.get("Host", ""), transport)
                length = self.headers.get("Content-Length")
                if length is None:
                    self.close_connection = True
                    return self._error(req, 411, "MissingContentLength")
                raw = self.rfile.read(int(length))
                route = self._route()
                if route is None or route[0].rstrip("/") != f"/{s3.BUCKET}":
                    return self._error(req, 404, "NoSuchBucket")
                with s3._lock:
                    status = s3.fail_posts.pop(0) if s3.fail_posts else 0
                if status:
                    return self._error(req, status, _s3_code(status))
                upload, problem = s3._parse_upload(self.headers.get("Content-Type", ""), raw)
                if upload is None:
                    return self._error(req, 400 if problem != "AccessDenied" else 403, problem)
                with s3._lock:
                    s3.objects[upload.key] = upload.data
                    s3.uploads.append(upload)
                headers = {"ETag": f'"{s3.etag(upload.data)}"'} if s3.etag_header else {}
                self._answer(req, 204, b"", **headers)

        return Handler

    def _parse_upload(self, content_type: str, raw: bytes) -> tuple[S3Upload | None, str]:
        msg = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        if not msg.is_multipart():
            return None, "MalformedPOSTRequest"
        fields: list[tuple[str, str]] = []
        file_part: email.message.Message | None = None
        for part in msg.get_payload():
            assert isinstance(part, email.message.Message)
            name = part.get_param("name", header="content-disposition")
            if file_part is not None:
                return None, "MalformedPOSTRequest"  # the file must be the last part
            if name == "file":
                file_part = part
            else:
                fields.append((str(name), _part_bytes(part).decode()))
        values = {k.lower(): v for k, v in fields}
        if file_part is None or "policy" not in values or "x-amz-signature" not in values:
            return None, "InvalidArgument"
        policy = json.loads(base64.b64decode(values["policy"]))
        named: set[str] = set()
        for condition in policy["conditions"]:
            if isinstance(condition, dict):
                named.update(k.lower() for k in condition)
            elif condition[0] == "starts-with":
                named.add(condition[1].lstrip("$").lower())
                if not values.get(condition[1].lstrip("$").lower(), "").startswith(condition[2]):
                    return None, "AccessDenied"
            elif condition[0] == "content-length-range":
                size = len(_part_bytes(file_part))
                if not condition[1] <= size <= condition[2]:
                    return None, "EntityTooLarge"
        extra = set(values) - named - {"policy", "x-amz-signature", "bucket"}
        if extra:
            return None, "AccessDenied"  # "Invalid according to Policy: Extra input fields"
        data = _part_bytes(file_part)
        upload = S3Upload(
            key=values["key"],
            data=data,
            fields=fields,
            filename=file_part.get_filename(),
            content_type=file_part.get("Content-Type"),
            boundary=msg.get_boundary(),
        )
        return upload, ""


def _s3_code(status: int) -> str:
    named = {503: "SlowDown", 403: "AccessDenied"}
    return named.get(status, "InternalError" if status >= 500 else "InvalidRequest")


def _part_bytes(part: email.message.Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


# Inherited variables that would change what the executor does (advertised URL sources).
_HOST_ONLY_ENV = ("POD_IP", "ECS_CONTAINER_METADATA_URI_V4")


class ExecutorProcess:
    """``python -m sandbox_executor`` (the supervisor, or ``module`` instead, e.g. the bare agent
    ``sandbox_executor.app``) listening on a unix socket, pointed at a fake control plane."""

    def __init__(
        self, cp: FakeControlPlane, module: str = "sandbox_executor", pool_id: str | None = None, **env: str
    ) -> None:
        """``pool_id``: a warm-pool executor, started without session id and token (POST /bind)."""
        # A short directory: unix socket paths are limited to 107 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="sbx-"))
        self.socket = str(self.dir / "executor.sock")
        self.workspace = self.dir / "workspace"
        self.log_path = self.dir / "executor.log"
        self.cp = cp
        full_env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith("SANDBOXCP_") and k not in _HOST_ONLY_ENV
            },
            "PYTHONPATH": os.pathsep.join(filter(None, [str(EXECUTOR_DIR), os.environ.get("PYTHONPATH")])),
            "SANDBOXCP_SESSION_ID": SESSION_ID,
            "SANDBOXCP_CALLBACK_URL": cp.url,
            "SANDBOXCP_CALLBACK_TOKEN": TOKEN,
            "SANDBOXCP_LISTEN": f"unix:{self.socket}",
            "SANDBOXCP_CONTAINER_ID": "ctr-test",
            "SANDBOXCP_WORKSPACE": str(self.workspace),
            "SANDBOXCP_HEARTBEAT_S": "0.3",
            "SANDBOXCP_RETRY_BASE_S": "0.05",
            **env,
        }
        self.token = full_env.get("SANDBOXCP_CALLBACK_TOKEN", "")
        if pool_id is not None:
            del full_env["SANDBOXCP_SESSION_ID"], full_env["SANDBOXCP_CALLBACK_TOKEN"]
            full_env["SANDBOXCP_POOL_ID"] = pool_id
            self.token = ""
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module], env=full_env, stderr=self._log, stdout=self._log
        )
        self.endpoint = Endpoint.parse(f"unix://{self.socket}")

    def wait_ready(self, timeout: float = 10.0, count: int = 1) -> None:
        """Wait for the ``count``-th container_ready (a restarted agent sends another one)."""
        self.cp.wait_for(lambda cs: sum(c.path.endswith("/container_ready") for c in cs) >= count, timeout)

    def agent_pid(self, timeout: float = 10.0, other_than: int | None = None) -> int:
        """The pid of the agent the supervisor runs (a new one, when ``other_than`` is given)."""
        deadline = time.monotonic() + timeout
        while True:
            agents = [p for p in children(self.proc.pid) if comm(p) == AGENT_NAME]
            agents = [p for p in agents if p != other_than]
            if agents:
                return agents[0]
            assert time.monotonic() < deadline, "no agent process under the supervisor"
            time.sleep(0.02)

    def wait_file(self, name: str, timeout: float = 10.0) -> str:
        """The content of workspace file ``name`` once it is non-empty (user code writes pids there)."""
        path = self.workspace / name
        deadline = time.monotonic() + timeout
        while not path.exists() or not path.read_text().strip():
            assert time.monotonic() < deadline, f"{name} never written"
            time.sleep(0.02)
        return path.read_text().strip()

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def post(self, payload: Any, token: str | None = None) -> Response:
        """POST /execute as the control plane does: with the session's executor key (the SHA-256 of
        the callback token in force, or of ``token``)."""
        return request_json(
            self.endpoint,
            "POST",
            "/execute",
            payload,
            headers=executor_key_header(token or self.token),
            timeout=10.0,
        )

    def bind(self, payload: Any) -> Response:
        resp = request_json(self.endpoint, "POST", "/bind", payload, timeout=10.0)
        if resp.status == 200 and isinstance(payload, dict):
            self.token = str(payload.get("callback_token"))
        return resp

    def get(self, path: str) -> Response:
        return request_json(self.endpoint, "GET", path, timeout=10.0)

    def submit(self, code: str, language: str = "python", **fields: Any) -> str:
        eid = fields.pop("execution_id", None) or new_execution_id()
        resp = self.post({"execution_id": eid, "code": code, "language": language, **fields})
        assert resp.status == 202, (resp.status, resp.body)
        return eid

    def run(
        self, code: str, language: str = "python", timeout_s: float = 15.0, **fields: Any
    ) -> dict[str, Any]:
        eid = self.submit(code, language, **fields)
        return self.cp.result(eid, timeout_s)

    def terminate(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:  # say where it stood (its log), not only that it did not stop
            self._log.flush()
            tail = self.log_path.read_bytes()[-6000:].decode(errors="replace")
            raise AssertionError(f"no stop within {timeout} s of SIGTERM; log:\n{tail}") from None
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def children(pid: int) -> list[int]:
    """Live (non-zombie) child processes of ``pid``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in (b"Z", b"X"):
            found.append(int(name))
    return found


def executor_key_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {hashlib.sha256(token.encode()).hexdigest()}"}


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ")
    except OSError:
        return b""


def alive(pid: int, timeout: float = 2.0) -> bool:
    """False as soon as ``pid`` is gone (a zombie counts as gone); True if still there after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    return False
        except (FileNotFoundError, ProcessLookupError):
            return False
        time.sleep(0.05)
    return True
