"""What keeps an idle sandbox small (docs/capacity.md): the agent builds what runs code on first use, its
heartbeat threads start with the first execution, the supervisor freezes and trims its heap before it
forks an agent, and the executor runs without the site module (`python3 -S`, process runtime)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_executor import interactive_api, linux, server
from sandbox_executor.callbacks import Delivery, Outcome
from sandbox_executor.worker import Heartbeats
from tests.unit.executor_helpers import EXECUTOR_DIR, ExecutorProcess, FakeControlPlane


def test_the_servers_interactive_routes_are_interactive_apis() -> None:
    assert server.INTERACTIVE_PREFIXES == interactive_api.PREFIXES
    for route in ("/contexts", "/contexts/ctx_1/execute", "/processes/p_1/output"):
        assert server._interactive_route(route) and interactive_api.handles(route)
    for route in ("/execute", "/health", "/contextsx", "/bind"):
        assert not server._interactive_route(route) and not interactive_api.handles(route)


def test_an_idle_agent_imports_nothing_that_runs_code() -> None:
    """What the supervisor imports before it forks is what every idle agent holds: not the runner,
    the fork server's client, contexts or background processes (they come with the first use)."""
    probe = (
        "import sys\n"
        "import sandbox_executor.supervisor, sandbox_executor.app\n"
        "lazy = ['sandbox_executor.' + m for m in ('runner', 'forkserver', 'contexts', 'processes',"
        " 'interactive_api', 'workspace', 'process', 'kernel_python', 'spawner')]\n"
        "print(sorted(m for m in lazy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        env={"PYTHONPATH": str(EXECUTOR_DIR)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# What the process runtime gives every sandbox: the control plane and S3 (through it) on a unix socket.
_PROCESS_RUNTIME_ENV = {
    "SANDBOXCP_CALLBACK_URL": "unix:///run/controlplane.sock",
    "SANDBOXCP_S3_VIA": "unix:///run/controlplane.sock",
}
# Left out of every idle agent (docs/capacity.md): each was measured at 0.1-3 MB with what it imports.
_HEAVY = (
    "typing", "dataclasses", "inspect", "ast", "dis", "tokenize", "traceback", "linecache", "ssl", "_ssl",
    "http.client", "http.server", "email", "email.parser", "html", "mimetypes", "shutil", "bz2", "lzma",
    "hashlib", "hmac", "random", "subprocess", "sandbox_executor.validation",
)  # fmt: skip


def _probe(code: str, env: dict[str, str]) -> str:
    """What `code` prints in a fresh interpreter run as the runtimes run the executor (-S -P)."""
    out = subprocess.run(
        [sys.executable, "-S", "-P", "-c", code],
        env={"PYTHONPATH": str(EXECUTOR_DIR), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout + ("" if out.stdout.strip() else out.stderr)


def _idle_modules(env: dict[str, str]) -> set[str]:
    probe = (
        "import sys, sandbox_executor.supervisor, sandbox_executor.app\nprint(' '.join(sorted(sys.modules)))"
    )
    return set(_probe(probe, env).split())


def test_an_idle_agent_imports_none_of_the_heavy_standard_library_modules() -> None:
    """typing, dataclasses (inspect, ast...), http.server/http.client (email, html, mimetypes, shutil),
    ssl, hashlib: an idle agent on the process runtime holds none of them (issue #14's 12 MB)."""
    loaded = _idle_modules(_PROCESS_RUNTIME_ENV)
    assert "sandbox_executor.server" in loaded and "sandbox_executor.callbacks" in loaded
    assert sorted(loaded & set(_HEAVY)) == []


def test_an_executor_configured_for_https_imports_http_client_with_ssl_before_the_fork() -> None:
    """Deployed (https callbacks, presigned S3 URLs straight to S3): the supervisor imports http.client and
    ssl before it forks, so the agents share them and HTTPSConnection is there."""
    from sandbox_executor.http_client import tls_needed

    assert not tls_needed(_PROCESS_RUNTIME_ENV)
    assert tls_needed({"SANDBOXCP_CALLBACK_URL": "unix:///run/cp.sock"})  # presigned URLs go straight to S3
    assert tls_needed({**_PROCESS_RUNTIME_ENV, "SANDBOXCP_CALLBACK_URL": "https://cp.example/prod"})
    assert tls_needed({**_PROCESS_RUNTIME_ENV, "SANDBOXCP_S3_VIA": "HTTPS://cp.example"})
    probe = (
        "import os, sys\n"
        "from sandbox_executor.http_client import tls_needed\n"
        "if tls_needed(os.environ):\n"
        "    import http.client\n"  # as supervisor.main does
        "import http.client\n"
        "print(hasattr(http.client, 'HTTPSConnection'), 'ssl' in sys.modules)\n"
    )
    for env in ({"SANDBOXCP_CALLBACK_URL": "https://cp.example"}, _PROCESS_RUNTIME_ENV):
        printed = _probe(probe, env)
        assert printed.split() == ["True", "True"], printed  # https works either way


def test_the_callback_client_reads_chunked_and_interim_answers() -> None:
    """request() speaks HTTP/1.1 itself on http and unix sockets (no http.client in an idle agent)."""
    import socket as socket_module

    from sandbox_executor.http_client import Endpoint, Response, request

    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n"
        b'4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n'
    )
    listener = socket_module.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while not data.endswith(b"{}"):
                data += conn.recv(65536)
            got.append(data)
            conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        resp = request(Endpoint.parse(f"http://127.0.0.1:{port}/cp"), "POST", "/x", body=b"{}", timeout=5)
    finally:
        thread.join(5)
        listener.close()
    assert resp == Response(201, {"transfer-encoding": "chunked", "retry-after": "3"}, b'{"a":1}')
    assert resp.json() == {"a": 1}
    head = got[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"POST /cp/x HTTP/1.1" and f"Host: 127.0.0.1:{port}".encode() in head
    assert b"Content-Length: 2" in head and b"Connection: close" in head


class _Beats:
    def __init__(self) -> None:
        self.beats: list[str] = []

    def heartbeat(self, execution_id: str, timeout: float) -> Delivery:
        self.beats.append(execution_id)
        return Delivery(Outcome.DELIVERED, 200)


def _heartbeat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("heartbeat")]


def test_heartbeat_threads_start_with_the_first_held_execution() -> None:
    fake = _Beats()
    stop = threading.Event()
    before = len(_heartbeat_threads())
    beats = Heartbeats(fake, interval=0.1, stop=stop, senders=2)  # type: ignore[arg-type]
    beats.start()
    try:
        time.sleep(0.05)
        assert len(_heartbeat_threads()) == before  # an idle agent has none
        beats.hold("exec_20250106_00000001")
        assert len(_heartbeat_threads()) == before + 3  # the scheduler and its senders
        deadline = time.monotonic() + 5
        while not fake.beats and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fake.beats and set(fake.beats) == {"exec_20250106_00000001"}
        beats.hold("exec_20250106_00000002")
        assert len(_heartbeat_threads()) == before + 3  # started once
    finally:
        stop.set()


def test_held_before_start_beats_once_started() -> None:
    fake = _Beats()
    stop = threading.Event()
    beats = Heartbeats(fake, interval=0.1, stop=stop, senders=1)  # type: ignore[arg-type]
    beats.hold("exec_20250106_00000003")
    try:
        time.sleep(0.3)
        assert fake.beats == []  # not started yet
        beats.start()
        deadline = time.monotonic() + 5
        while not fake.beats and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fake.beats
    finally:
        stop.set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_heap_trim_and_arena_limit_are_available_on_glibc() -> None:
    assert linux.trim_heap()
    # Set in a child: the limit is process-wide and must not change the test process.
    code = "from sandbox_executor import linux; raise SystemExit(0 if linux.limit_malloc_arenas(2) else 1)"
    done = subprocess.run([sys.executable, "-S", "-c", code], env={"PYTHONPATH": str(EXECUTOR_DIR)})
    assert done.returncode == 0


@pytest.fixture
def cp() -> Iterator[FakeControlPlane]:
    """One control plane per executor: wait_ready counts its container_ready calls."""
    with FakeControlPlane() as plane:
        yield plane


def test_the_agent_builds_its_runner_on_the_first_execution_and_keeps_it(cp: FakeControlPlane) -> None:
    ex = ExecutorProcess(cp)
    try:
        ex.wait_ready()
        time.sleep(0.2)
        assert "machinery_loaded" not in ex.log_text()  # ready, and nothing to run code with yet
        for n in range(2):
            result = ex.run(f"def handler(event):\n    return {n}\n")
            assert result["status"] == "success" and result["return_value"] == n
        assert ex.log_text().count("machinery_loaded") == 1
    finally:
        ex.terminate()


def test_contexts_are_served_by_an_agent_that_never_ran_an_execution(cp: FakeControlPlane) -> None:
    """The interactive routes build the same machinery on first use (from an HTTP thread)."""
    from sandbox_executor.http_client import request_json
    from tests.unit.executor_helpers import executor_key_header

    ex = ExecutorProcess(cp)
    try:
        ex.wait_ready()
        created = request_json(
            ex.endpoint,
            "POST",
            "/contexts",
            {"context_id": "ctx-memory", "language": "python"},
            headers=executor_key_header(ex.token),
            timeout=20.0,
        )
        assert created.status in (200, 201), created.json()
        assert ex.log_text().count("machinery_loaded") == 1
        result = ex.run("def handler(event):\n    return 7\n")
        assert result["return_value"] == 7
        assert ex.log_text().count("machinery_loaded") == 1
    finally:
        ex.terminate()


def test_the_process_runtime_compiles_the_executor_before_any_sandbox_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sandboxes import the executor read-only and write no bytecode: the runtime writes it first, or
    every sandbox compiles every module it imports at every start."""
    import importlib.util
    import shutil as sh

    from sandboxcp.adapters.runtimes import process

    source = tmp_path / "executor"
    sh.copytree(
        EXECUTOR_DIR / "sandbox_executor",
        source / "sandbox_executor",
        ignore=sh.ignore_patterns("__pycache__"),
    )
    monkeypatch.setattr(process, "_executor_source_dir", lambda: source)
    process._compile_executor.cache_clear()
    try:
        process.ProcessRuntime(str(tmp_path / "state"), "unix:///nowhere.sock")
        for module in ("supervisor", "app", "server", "http_client"):
            compiled = importlib.util.cache_from_source(str(source / "sandbox_executor" / f"{module}.py"))
            assert Path(compiled).is_file(), module
    finally:
        process._compile_executor.cache_clear()
