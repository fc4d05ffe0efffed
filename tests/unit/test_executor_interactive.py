"""Code contexts, background processes, live output and the fork server, end to end through a real
executor process (real python3 / node / bash children) and a fake control plane recording its callbacks."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox_executor.http_client import Response, request_json
from tests.unit.executor_helpers import (
    Call,
    ExecutorProcess,
    FakeControlPlane,
    executor_key_header,
)


@pytest.fixture(scope="module")
def cp() -> Iterator[FakeControlPlane]:
    with FakeControlPlane() as plane:
        yield plane


@pytest.fixture(scope="module")
def ex(cp: FakeControlPlane) -> Iterator[ExecutorProcess]:
    executor = ExecutorProcess(cp)
    try:
        executor.wait_ready()
        yield executor
    finally:
        executor.terminate()


def call(ex: ExecutorProcess, method: str, path: str, body: Any = None, token: str | None = None) -> Response:
    return request_json(
        ex.endpoint, method, path, body, headers=executor_key_header(token or ex.token), timeout=15.0
    )


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


CREATED: list[str] = []


def context(ex: ExecutorProcess, language: str = "python") -> str:
    cid = new_id("ctx")
    resp = call(ex, "POST", "/contexts", {"context_id": cid, "language": language})
    assert resp.status == 201, resp.body
    CREATED.append(cid)
    return cid


@pytest.fixture(autouse=True)
def _delete_contexts(ex: ExecutorProcess) -> Iterator[None]:
    """A sandbox holds at most 8 contexts: each test gives back the ones it made."""
    yield
    while CREATED:
        call(ex, "DELETE", f"/contexts/{CREATED.pop()}")


def chunks_of(cp: FakeControlPlane, path: str) -> list[dict[str, Any]]:
    return [chunk for c in cp.calls_to(path) for chunk in c.json["chunks"]]


# -- contexts -----------------------------------------------------------------------------------


def test_python_context_keeps_state_and_returns_the_last_expression(ex: ExecutorProcess) -> None:
    cid = context(ex)
    first = ex.run("import math\nx = 41\nprint('set')", context_id=cid)
    assert first["status"] == "success" and first["stdout"] == "set\n"
    second = ex.run("x += 1\nmath.sqrt(x * x)", context_id=cid)
    assert second["status"] == "success"
    assert second["return_value"] == "42.0"
    assert second["outputs"] == [{"type": "result", "data": {"text/plain": "42.0"}}]


def test_display_outputs_are_mime_bundles(ex: ExecutorProcess) -> None:
    cid = context(ex)
    code = (
        "class Table:\n"
        "    def _repr_html_(self):\n"
        "        return '<table></table>'\n"
        "display(Table(), {'a': 1})\n"
    )
    result = ex.run(code, context_id=cid)
    assert result["status"] == "success"
    kinds = [(o["type"], sorted(o["data"])) for o in result["outputs"]]
    assert kinds == [("display", ["text/html", "text/plain"]), ("display", ["text/plain"])]
    assert result["outputs"][0]["data"]["text/html"] == "<table></table>"


def test_an_error_fails_the_cell_but_keeps_the_context(ex: ExecutorProcess) -> None:
    cid = context(ex)
    ex.run("y = 7", context_id=cid)
    failed = ex.run("1 / 0", context_id=cid)
    assert failed["status"] == "failed" and failed["exit_code"] == 1
    assert "ZeroDivisionError" in failed["stderr"] and "<cell-" in failed["stderr"]
    assert ex.run("y", context_id=cid)["return_value"] == "7"


def test_timeout_interrupts_the_cell_and_keeps_the_context(ex: ExecutorProcess) -> None:
    cid = context(ex)
    ex.run("kept = 'yes'", context_id=cid)
    result = ex.run("import time\nwhile True:\n    time.sleep(0.05)", context_id=cid, timeout=1)
    assert result["status"] == "timeout"
    assert "keeps its state" in result["stderr"]
    assert ex.run("kept", context_id=cid)["return_value"] == "'yes'"


def test_a_cell_that_ignores_the_interrupt_gets_its_context_restarted(ex: ExecutorProcess) -> None:
    cid = context(ex)
    ex.run("kept = 1", context_id=cid)
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    result = ex.run(code, context_id=cid, timeout=1, timeout_s=20)
    assert result["status"] == "timeout" and "restarted" in result["stderr"]
    after = ex.run("kept", context_id=cid)
    assert after["status"] == "failed" and "NameError" in after["stderr"]
    assert call(ex, "GET", f"/contexts/{cid}").json()["restarts"] == 1


def test_a_crashed_context_reports_crashed_and_restarts(ex: ExecutorProcess) -> None:
    cid = context(ex)
    ex.run("state = 1", context_id=cid)
    crashed = ex.run("import ctypes\nctypes.string_at(0)", context_id=cid)
    assert crashed["status"] == "crashed"
    assert "SIGSEGV" in crashed["stderr"] and "Restart context" in crashed["stderr"]
    assert call(ex, "GET", f"/contexts/{cid}").json()["status"] == "dead"
    refused = ex.run("state", context_id=cid)
    assert refused["status"] == "failed" and "restart it" in refused["stderr"]
    assert call(ex, "POST", f"/contexts/{cid}/restart", {}).json()["status"] == "ready"
    assert ex.run("state = 2\nstate", context_id=cid)["return_value"] == "2"


def test_javascript_context_keeps_state(ex: ExecutorProcess) -> None:
    cid = context(ex, "javascript")
    assert ex.run("let n = 1; console.log('one')", "javascript", context_id=cid)["stdout"] == "one\n"
    result = ex.run("n += 41; Promise.resolve(n)", "javascript", context_id=cid)
    assert result["status"] == "success" and result["return_value"] == "42"
    failed = ex.run("null.x", "javascript", context_id=cid)
    assert failed["status"] == "failed" and "TypeError" in failed["stderr"]
    assert ex.run("n", "javascript", context_id=cid)["return_value"] == "42"


def test_context_language_must_match(ex: ExecutorProcess) -> None:
    cid = context(ex)
    result = ex.run("1", "javascript", context_id=cid)
    assert result["status"] == "failed" and "runs python" in result["stderr"]


def test_context_routes_need_the_executor_key_and_refuse_bad_input(ex: ExecutorProcess) -> None:
    forged = call(ex, "POST", "/contexts", {"context_id": "ctx-x", "language": "python"}, token="not-it")
    assert forged.status == 403
    assert call(ex, "GET", "/contexts/ctx-unknown").status == 404
    bad = call(ex, "POST", "/contexts", {"context_id": "../x", "language": "python"})
    assert bad.status == 400 and bad.json()["error_code"] == "Executor.ValidationError"
    assert call(ex, "POST", "/contexts", {"context_id": "ctx-y", "language": "ruby"}).status == 400
    cid = context(ex)
    assert call(ex, "POST", "/contexts", {"context_id": cid, "language": "python"}).status == 409
    assert call(ex, "DELETE", f"/contexts/{cid}").status == 200
    assert call(ex, "GET", f"/contexts/{cid}").status == 404


# -- live output --------------------------------------------------------------------------------


def test_output_streams_while_the_run_goes_on(ex: ExecutorProcess, cp: FakeControlPlane) -> None:
    code = "import time\ndef handler(e):\n    for i in range(3):\n"
    code += "        print(i, flush=True)\n        time.sleep(0.6)\n"
    eid = ex.submit(code)
    path = f"/executions/{eid}/output"
    first = cp.wait_for(lambda calls: any(c.path.endswith(path) for c in calls), timeout=10)
    first_at = next(c.at for c in first if c.path.endswith(path))
    result = cp.result(eid)
    result_at = next(c.at for c in cp.calls_to(f"/executions/{eid}/result"))
    assert result_at - first_at > 0.8, "the first chunk came only with the result"
    chunks = chunks_of(cp, path)
    assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert "".join(c["data"] for c in chunks if c["stream"] == "stdout") == result["stdout"] == "0\n1\n2\n"
    assert all(c.at < result_at for c in cp.calls_to(path)), "a live chunk came after the result"


def test_live_output_keeps_stream_order_and_is_bounded(ex: ExecutorProcess, cp: FakeControlPlane) -> None:
    code = "import sys\ndef handler(e):\n    print('a' * 1500000)\n    print('err', file=sys.stderr)\n"
    eid = ex.submit(code)
    ex.cp.result(eid)
    chunks = chunks_of(cp, f"/executions/{eid}/output")
    stdout = "".join(c["data"] for c in chunks if c["stream"] == "stdout")
    assert stdout.startswith("a" * 1000) and "live output truncated" in stdout
    assert len(stdout) < 1100000
    assert "".join(c["data"] for c in chunks if c["stream"] == "stderr") == "err\n"


# -- fork server --------------------------------------------------------------------------------


def test_handler_runs_do_not_share_state(ex: ExecutorProcess) -> None:
    code = "import sys\ndef handler(e):\n    seen = hasattr(sys, 'marked')\n"
    code += "    sys.marked = True\n    return seen"
    assert [ex.run(code)["return_value"] for _ in range(3)] == [False, False, False]


def test_a_killed_fork_server_is_replaced(ex: ExecutorProcess) -> None:
    killer = "import os, signal, time\ndef handler(e):\n"
    killer += "    os.kill(os.getppid(), signal.SIGKILL)\n    time.sleep(5)"
    killed = ex.run(killer)
    assert killed["status"] == "failed"
    assert ex.run("def handler(e):\n    return 'again'")["return_value"] == "again"


# -- background processes -----------------------------------------------------------------------


def process(ex: ExecutorProcess, cmd: str, **fields: Any) -> str:
    pid = new_id("proc")
    resp = call(ex, "POST", "/processes", {"process_id": pid, "cmd": cmd, **fields})
    assert resp.status == 201, resp.body
    return pid


def wait_exit(cp: FakeControlPlane, pid: str, timeout: float = 10.0) -> dict[str, Any]:
    path = f"/processes/{pid}/output"

    def exited(calls: list[Call]) -> bool:
        return any(c.path.endswith(path) and "exit" in c.json for c in calls)

    calls = cp.wait_for(exited, timeout)
    return next(c.json["exit"] for c in calls if c.path.endswith(path) and "exit" in c.json)


def test_process_reads_stdin_and_streams_output(ex: ExecutorProcess, cp: FakeControlPlane) -> None:
    pid = process(ex, 'while read line; do echo "got $line"; done; echo bye >&2', env={"GREETING": "x"})
    assert call(ex, "POST", f"/processes/{pid}/stdin", {"data": "one\ntwo\n"}).json()["written"] == 8
    assert call(ex, "POST", f"/processes/{pid}/stdin", {"data": "", "eof": True}).status == 200
    assert wait_exit(cp, pid)["exit_code"] == 0
    chunks = chunks_of(cp, f"/processes/{pid}/output")
    assert "".join(c["data"] for c in chunks if c["stream"] == "stdout") == "got one\ngot two\n"
    assert "".join(c["data"] for c in chunks if c["stream"] == "stderr") == "bye\n"
    late = call(ex, "POST", f"/processes/{pid}/stdin", {"data": "more"})
    assert late.status == 409 and late.json()["error_code"] == "Executor.ProcessExited"


def test_process_outlives_executions_until_signalled(ex: ExecutorProcess, cp: FakeControlPlane) -> None:
    pid = process(ex, "sleep 300")
    assert ex.run("def handler(e):\n    return 1")["status"] == "success"
    described = call(ex, "GET", f"/processes/{pid}").json()
    assert described["status"] == "running"
    os.kill(described["pid"], 0)  # still there
    assert call(ex, "POST", f"/processes/{pid}/signal", {"signal": "SIGTERM"}).status == 200
    assert wait_exit(cp, pid)["signal"] == 15
    deadline = time.monotonic() + 5
    while call(ex, "GET", f"/processes/{pid}").json()["status"] != "exited" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert call(ex, "GET", f"/processes/{pid}").json()["status"] == "exited"
    assert call(ex, "POST", f"/processes/{pid}/signal", {"signal": "SIGKILL"}).status == 409
    assert call(ex, "POST", f"/processes/{pid}/signal", {"signal": "SIGSTOP"}).status in (400, 409)


def test_process_env_may_not_set_reserved_names(ex: ExecutorProcess) -> None:
    resp = call(
        ex, "POST", "/processes", {"process_id": new_id("proc"), "cmd": "true", "env": {"AWS_X": "1"}}
    )
    assert resp.status == 400
    assert call(ex, "GET", "/processes/proc-nothere").status == 404


def test_processes_are_limited_and_die_with_the_executor() -> None:
    with FakeControlPlane() as own_cp:
        pids = _fill_with_processes(ExecutorProcess(own_cp))
    time.sleep(0.2)
    alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}") and _state(pid) not in ("Z", "X")]
    assert alive == []


def _fill_with_processes(executor: ExecutorProcess) -> list[int]:
    """Start as many processes as allowed, check the next is refused, then stop the executor."""
    try:
        executor.wait_ready()
        pids = []
        for _ in range(16):
            resp = call(executor, "POST", "/processes", {"process_id": new_id("proc"), "cmd": "sleep 300"})
            assert resp.status == 201
            pids.append(resp.json()["pid"])
        over = call(executor, "POST", "/processes", {"process_id": new_id("proc"), "cmd": "sleep 300"})
        assert over.status == 429 and over.json()["error_code"] == "Executor.TooManyProcesses"
        return pids
    finally:
        executor.terminate()


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except OSError:
        return "X"
