"""sandbox_executor process lifecycle: readiness, refusal, TCP listening, unix callbacks, SIGTERM."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from sandbox_executor.http_client import Endpoint, request_json
from tests.unit.executor_helpers import (
    SESSION_ID,
    TOKEN,
    ExecutorProcess,
    FakeControlPlane,
    FakeTaskMetadata,
)


def test_container_ready_is_sent_with_the_bearer_token() -> None:
    with FakeControlPlane() as cp:
        ex = ExecutorProcess(cp)
        try:
            ex.wait_ready()
            (ready,) = cp.calls_to("/container_ready")
            assert ready.path == f"/cp/internal/sessions/{SESSION_ID}/container_ready"
            assert ready.headers["authorization"] == f"Bearer {TOKEN}"
            body = ready.json
            assert body["container_id"] == "ctr-test"
            assert body["executor_port"] is None  # unix socket
            assert "executor_url" not in body
            assert body["ready_at"].endswith("Z")
            assert body["features"] == ["workspace-presign-on-demand"]  # contract.EXECUTOR_FEATURES
            assert os.stat(ex.socket).st_mode & 0o777 == 0o666
        finally:
            assert ex.terminate() == 0


def test_refused_container_ready_exits_non_zero() -> None:
    with FakeControlPlane() as cp:
        cp.ready_status = 401
        ex = ExecutorProcess(cp)
        try:
            assert ex.proc.wait(10) != 0
            assert len(cp.calls_to("/container_ready")) == 1  # a 4xx is final, no retries
            assert not os.path.exists(ex.socket)
        finally:
            ex.close()


def test_tcp_listener_reports_its_port() -> None:
    with FakeControlPlane() as cp:
        ex = ExecutorProcess(cp, SANDBOXCP_LISTEN="tcp:127.0.0.1:0")
        try:
            ex.wait_ready()
            ready = cp.calls_to("/container_ready")[0].json
            port = ready["executor_port"]
            assert isinstance(port, int) and port > 0
            assert "executor_url" not in ready  # no advertised address source in the environment
            resp = request_json(Endpoint.parse(f"http://127.0.0.1:{port}"), "GET", "/health")
            assert resp.status == 200 and resp.json()["status"] == "healthy"
        finally:
            assert ex.terminate() == 0


def test_tcp_listener_advertises_its_url_from_the_task_metadata() -> None:
    task = {"Containers": [{"Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.2.106"]}]}]}
    with FakeControlPlane() as cp, FakeTaskMetadata(task) as meta:
        ex = ExecutorProcess(cp, SANDBOXCP_LISTEN="tcp:127.0.0.1:0", ECS_CONTAINER_METADATA_URI_V4=meta.url)
        try:
            ex.wait_ready()
            ready = cp.calls_to("/container_ready")[0].json
            assert ready["executor_url"] == f"http://10.0.2.106:{ready['executor_port']}"
            assert meta.requests == ["/v4/task-abc/task"]
        finally:
            assert ex.terminate() == 0


def test_unix_listener_never_advertises_a_url() -> None:
    with FakeControlPlane() as cp:
        ex = ExecutorProcess(cp, POD_IP="10.9.8.7", SANDBOXCP_ADVERTISE_URL="http://sbx:8080")
        try:
            ex.wait_ready()
            assert "executor_url" not in cp.calls_to("/container_ready")[0].json
        finally:
            assert ex.terminate() == 0


def test_unix_callback_base_and_ready_retried_until_the_control_plane_is_up() -> None:
    cp_dir = Path(tempfile.mkdtemp(prefix="sbx-cp-"))
    cp_socket = str(cp_dir / "cp.sock")
    cp = FakeControlPlane(unix_path=cp_socket)
    ex = ExecutorProcess(cp)  # the control plane socket does not exist yet
    try:
        time.sleep(0.6)
        assert ex.proc.poll() is None  # still retrying, not given up
        with cp:
            ex.wait_ready()
            assert (
                cp.calls_to("/container_ready")[0].path == f"/internal/sessions/{SESSION_ID}/container_ready"
            )
            result = ex.run("def handler(event):\n    return 'over unix'\n")
            assert result["return_value"] == "over unix"
            assert ex.terminate() == 0
    finally:
        ex.close()
        os.unlink(cp_socket)
        cp_dir.rmdir()


def test_sigterm_reports_exit_kills_children_and_removes_the_socket() -> None:
    with FakeControlPlane() as cp:
        ex = ExecutorProcess(cp)
        try:
            ex.wait_ready()
            eid = ex.submit("echo $$ > child.pid; exec sleep 30", "shell")
            cp.wait_for(lambda cs: any(c.path.endswith(f"{eid}/status") for c in cs))
            pid_file = ex.workspace / "child.pid"
            deadline = time.monotonic() + 5
            while not pid_file.exists() or not pid_file.read_text().strip():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            child = int(pid_file.read_text())
            started = time.monotonic()
            assert ex.terminate() == 0
            assert time.monotonic() - started < 5
            (exited,) = cp.calls_to("/container_exited")
            assert exited.json["exit_code"] == 143
            assert exited.json["exit_reason"] == "sigterm"
            assert exited.json["exited_at"].endswith("Z")
            assert exited.headers["authorization"] == f"Bearer {TOKEN}"
            assert not os.path.exists(ex.socket)
            assert not _alive(child)
            assert not cp.calls_to(f"/executions/{eid}/result")  # no misleading result on shutdown
        finally:
            ex.close()


def test_bad_configuration_exits_2() -> None:
    with FakeControlPlane() as cp:
        ex = ExecutorProcess(cp, SANDBOXCP_LISTEN="carrier-pigeon:1")
        try:
            assert ex.proc.wait(10) == 2
            assert "config_error" in ex.log_text()
            assert not cp.snapshot()
        finally:
            ex.close()


def test_unusable_workspace_is_unhealthy_and_fails_executions() -> None:
    with FakeControlPlane() as cp:
        ex = ExecutorProcess(cp, SANDBOXCP_WORKSPACE="/proc/version/workspace")
        try:
            ex.wait_ready()
            health = ex.get("/health")
            assert health.status == 503
            assert health.json()["status"] == "unhealthy"
            result = ex.run("echo hi", "shell")
            assert (result["status"], result["exit_code"]) == ("failed", -1)
            assert "failed to start the shell runtime" in result["stderr"]
        finally:
            assert ex.terminate() == 0


def _alive(pid: int) -> bool:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie of an already killed child counts as dead.
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return False
        except FileNotFoundError:
            return False
        time.sleep(0.05)
    return True


def test_a_stop_signal_landing_while_the_agent_holds_its_stop_events_lock_is_not_lost() -> None:
    # A handler runs in the main thread between two bytecodes: here, as that thread enters
    # `event.wait()` holding the event's condition lock. Setting the event in the handler would wait for
    # that lock forever (an agent that never stopped on SIGTERM, seen under load).
    import signal
    import threading

    from sandbox_executor.app import _Shutdown

    shutdown = _Shutdown()

    def signalled_inside_wait() -> None:
        with shutdown.event._cond:  # type: ignore[attr-defined]  # what Event.wait holds at its start
            shutdown.handle(signal.SIGTERM, None)

    main = threading.Thread(target=signalled_inside_wait, daemon=True)
    main.start()
    main.join(5)
    assert not main.is_alive(), "the handler blocked on the lock its own thread holds"
    assert shutdown.event.wait(5) and shutdown.signum == signal.SIGTERM
