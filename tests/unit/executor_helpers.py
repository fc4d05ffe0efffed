"""Test helpers for sandbox_executor: a fake control plane and a real executor subprocess.

The fake control plane is a stdlib HTTP server (TCP on 127.0.0.1, or a unix socket) that records
every callback and can be told to answer 503 to the first N result posts of an execution.
``FakeTaskMetadata`` stands in for the ECS task metadata endpoint.
"""

from __future__ import annotations

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

from sandbox_executor.http_client import Endpoint, Response, request_json

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


# Inherited variables that would change what the executor does (advertised URL sources).
_HOST_ONLY_ENV = ("POD_IP", "ECS_CONTAINER_METADATA_URI_V4")


class ExecutorProcess:
    """``python -m sandbox_executor`` (the supervisor, or ``module`` instead, e.g. the bare agent
    ``sandbox_executor.app``) listening on a unix socket, pointed at a fake control plane."""

    def __init__(self, cp: FakeControlPlane, module: str = "sandbox_executor", **env: str) -> None:
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
            agents = [p for p in children(self.proc.pid) if b"sandbox_executor.app" in cmdline(p)]
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

    def post(self, payload: Any) -> Response:
        return request_json(self.endpoint, "POST", "/execute", payload, timeout=10.0)

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
