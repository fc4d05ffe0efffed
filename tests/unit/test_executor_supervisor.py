"""sandbox_executor supervision: the supervisor restarts a killed agent, forwards SIGTERM, gives up
after too many restarts; user code never outlives a killed agent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from sandbox_executor import linux
from tests.unit.executor_helpers import EXECUTOR_DIR, ExecutorProcess, FakeControlPlane, alive, children

needs_prctl = pytest.mark.skipif(not linux.available(), reason="prctl via ctypes is required")


def test_killed_agent_is_restarted_on_the_same_socket_and_announces_itself_again() -> None:
    with FakeControlPlane() as cp:
        ex = ExecutorProcess(cp)
        try:
            ex.wait_ready()
            first = ex.agent_pid()
            os.kill(first, signal.SIGKILL)
            second = ex.agent_pid(other_than=first)
            ex.wait_ready(count=2)
            assert not alive(first)
            assert ex.proc.poll() is None
            health = ex.get("/health")
            assert health.status == 200 and health.json()["status"] == "healthy"
            assert ex.run("def handler(event):\n    return 'again'\n")["return_value"] == "again"
            assert ex.agent_pid() == second
            log = ex.log_text()
            assert "supervisor_restarting_agent agent_exit=-9 signal=SIGKILL restart=1 backoff_s=0.2" in log
            assert not cp.calls_to("/container_exited")  # the sandbox did not exit
        finally:
            assert ex.terminate() == 0
        assert len(cp.calls_to("/container_exited")) == 1


def test_sigterm_to_the_supervisor_stops_the_agent_which_reports_container_exited() -> None:
    with FakeControlPlane() as cp:
        ex = ExecutorProcess(cp)
        try:
            ex.wait_ready()
            agent = ex.agent_pid()
            assert ex.terminate() == 0
            (exited,) = cp.calls_to("/container_exited")
            assert (exited.json["exit_code"], exited.json["exit_reason"]) == (143, "sigterm")
            assert not alive(agent)
            assert not alive(ex.proc.pid)
            assert not os.path.exists(ex.socket)
        finally:
            ex.close()


def test_configuration_errors_and_refusals_are_not_restarted() -> None:
    with FakeControlPlane() as cp:
        cp.ready_status = 404  # e.g. the session is unknown: final
        ex = ExecutorProcess(cp)
        try:
            assert ex.proc.wait(10) == 2
            assert len(cp.calls_to("/container_ready")) == 1
            assert "supervisor_restarting_agent" not in ex.log_text()
        finally:
            ex.close()


@needs_prctl
def test_user_code_dies_with_a_killed_bare_agent() -> None:
    """The death signal alone, without a supervisor to sweep up."""
    with FakeControlPlane() as cp:
        ex = ExecutorProcess(cp, module="sandbox_executor.app")
        try:
            ex.wait_ready()
            code = "import os, time\ndef handler(event):\n    open('user.pid', 'w').write(str(os.getpid()))\n"
            ex.submit(code + "    time.sleep(60)\n", timeout=120)
            user = int(ex.wait_file("user.pid"))
            assert alive(user, timeout=0.2)
            ex.proc.kill()
            ex.proc.wait(5)
            assert not alive(user, timeout=2.0)
        finally:
            ex.close()


@needs_prctl
def test_user_code_and_its_children_die_with_a_killed_agent_under_the_supervisor() -> None:
    with FakeControlPlane() as cp:
        ex = ExecutorProcess(cp)
        try:
            ex.wait_ready()
            first = ex.agent_pid()
            # bash is the agent's child (death signal); the background sleep is not (swept up).
            ex.submit("sleep 60 & echo $! > bg.pid; echo $$ > user.pid; wait", "shell", timeout=120)
            user, background = int(ex.wait_file("user.pid")), int(ex.wait_file("bg.pid"))
            os.kill(first, signal.SIGKILL)
            assert not alive(user, timeout=2.0)
            assert not alive(background, timeout=2.0)
            ex.agent_pid(other_than=first)
            ex.wait_ready(count=2)
            assert ex.get("/health").status == 200
        finally:
            assert ex.terminate() == 0


def _supervise(agent_code: str, **limits: float) -> subprocess.CompletedProcess[str]:
    """Run a Supervisor over ``python -c agent_code`` with small limits; its stderr is the log."""
    settings = "".join(f"supervisor.{name} = {value!r}\n" for name, value in limits.items())
    script = textwrap.dedent(
        """
        import sys
        from sandbox_executor import supervisor
        {settings}
        raise SystemExit(supervisor.Supervisor([sys.executable, "-c", {agent_code!r}]).run())
        """
    ).format(settings=settings, agent_code=agent_code)
    env = {**os.environ, "PYTHONPATH": str(EXECUTOR_DIR)}
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=20, check=False
    )


def test_restarts_back_off_and_stop_at_the_limit() -> None:
    started = time.monotonic()
    done = _supervise(
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
        BACKOFF_FIRST_S=0.01,
        BACKOFF_MAX_S=0.04,
        MAX_RESTARTS=5,
    )
    assert done.returncode == 1, done.stderr
    restarts = [line for line in done.stderr.splitlines() if "supervisor_restarting_agent" in line]
    backoffs = [float(line.rsplit("backoff_s=", 1)[1]) for line in restarts]
    assert backoffs == [0.01, 0.02, 0.04, 0.04, 0.04]
    assert "supervisor_giving_up agent_exit=-9 restarts=5" in done.stderr
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(("agent_exit", "restarted"), [(0, False), (2, False), (1, True), (3, True)])
def test_which_exits_are_restarted(agent_exit: int, restarted: bool) -> None:
    done = _supervise(f"raise SystemExit({agent_exit})", BACKOFF_FIRST_S=0.01, MAX_RESTARTS=2)
    assert done.returncode == (1 if restarted else agent_exit), done.stderr
    assert ("supervisor_restarting_agent" in done.stderr) is restarted


def test_sigterm_during_the_backoff_exits_without_an_agent() -> None:
    env = {**os.environ, "PYTHONPATH": str(EXECUTOR_DIR)}
    script = (
        "import sys\nfrom sandbox_executor import supervisor\nsupervisor.BACKOFF_FIRST_S = 30\n"
        "raise SystemExit(supervisor.Supervisor([sys.executable, '-c', 'raise SystemExit(1)']).run())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "supervisor_restarting_agent" in line:
                break
        assert not children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
