"""sandbox_executor end to end: a real executor process, real python3 / node / bash children, and a
fake control plane recording the callbacks. One executor serves the whole module (it runs
executions one at a time anyway), so every test uses its own execution ids."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator

import pytest

from sandbox_executor.contract import MAX_CODE_BYTES
from sandbox_executor.http_client import request_json
from tests.unit.executor_helpers import (
    TOKEN,
    Call,
    ExecutorProcess,
    FakeControlPlane,
    executor_key_header,
    new_execution_id,
)

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is required")


@pytest.fixture(scope="module")
def cp() -> Iterator[FakeControlPlane]:
    with FakeControlPlane() as plane:
        yield plane


@pytest.fixture(scope="module")
def ex(cp: FakeControlPlane) -> Iterator[ExecutorProcess]:
    executor = ExecutorProcess(cp, MY_PASSTHROUGH="kept", AWS_SECRET_ACCESS_KEY="aws-secret-value")
    try:
        executor.wait_ready()
        yield executor
    finally:
        log = executor.log_text()
        executor.terminate()
        assert TOKEN not in log, "the callback token leaked into the executor's log"


# -- python ------------------------------------------------------------------------------------


def test_python_handler_return_value_and_stdout(ex: ExecutorProcess) -> None:
    result = ex.run("def handler(event):\n    print('hi')\n    return 42\n")
    assert result["status"] == "success"
    assert result["exit_code"] == 0
    assert result["stdout"] == "hi\n"
    assert result["stderr"] == ""
    assert result["return_value"] == 42
    assert result["artifacts"] == []
    assert result["stdout_truncated"] is False and result["stderr_truncated"] is False


def test_python_handler_receives_the_event(ex: ExecutorProcess) -> None:
    code = "def handler(event):\n    return {'greeting': 'hello ' + event['name']}\n"
    assert ex.run(code, event={"name": "Alice"})["return_value"] == {"greeting": "hello Alice"}
    # The contract's stdin string is accepted as the event when no event is given.
    assert ex.run(code, stdin='{"name": "Bob"}')["return_value"] == {"greeting": "hello Bob"}


def test_python_exception_is_a_failure_with_traceback(ex: ExecutorProcess) -> None:
    result = ex.run("def handler(event):\n    raise ValueError('boom')\n")
    assert result["status"] == "failed"
    assert result["exit_code"] == 1
    assert "Traceback (most recent call last)" in result["stderr"]
    assert 'File "<handler>", line 2, in handler' in result["stderr"]
    assert "ValueError: boom" in result["stderr"]
    assert result["return_value"] is None


def test_python_syntax_error(ex: ExecutorProcess) -> None:
    result = ex.run("def handler(event)\n    return 1\n")
    assert result["status"] == "failed"
    assert result["exit_code"] == 1
    assert "SyntaxError" in result["stderr"]
    assert "<handler>" in result["stderr"]


def test_python_non_json_return_value(ex: ExecutorProcess) -> None:
    result = ex.run("def handler(event):\n    return {1, 2}\n")
    assert result["status"] == "failed"
    assert result["exit_code"] == 1
    assert (
        "return value is not JSON serializable: Object of type set is not JSON serializable"
        in result["stderr"]
    )


def test_python_missing_handler(ex: ExecutorProcess) -> None:
    result = ex.run("print('no handler here')\n")
    assert result["status"] == "failed"
    assert result["stdout"] == "no handler here\n"
    assert "handler not found" in result["stderr"]


def test_timeout_keeps_partial_output(ex: ExecutorProcess) -> None:
    code = "import time\ndef handler(event):\n    print('before', flush=False)\n    time.sleep(30)\n"
    result = ex.run(code, timeout=1)
    assert result["status"] == "timeout"
    assert result["exit_code"] == -1
    assert result["stdout"] == "before\n"
    assert result["stderr"].endswith("Execution timeout after 1 seconds")
    assert 1000 <= result["metrics"]["duration_ms"] < 3000


def test_timeout_kills_the_whole_process_group(ex: ExecutorProcess) -> None:
    # The background sleep keeps stdout open; the result must not wait for it.
    result = ex.run("sleep 30 & echo started; wait", "shell", timeout=1, timeout_s=6)
    assert result["status"] == "timeout"
    assert result["stdout"] == "started\n"


def test_leftover_background_processes_do_not_hold_the_result(ex: ExecutorProcess) -> None:
    result = ex.run("(sleep 30 &); echo done", "shell", timeout=20, timeout_s=6)
    assert result["status"] == "success"
    assert result["stdout"] == "done\n"
    assert result["metrics"]["duration_ms"] < 5000


def test_stdout_over_one_mib_is_truncated(ex: ExecutorProcess) -> None:
    code = "import sys\ndef handler(event):\n    sys.stdout.write('x' * 3_000_000)\n    return 'ok'\n"
    result = ex.run(code)
    assert result["status"] == "success"
    assert result["return_value"] == "ok"
    assert len(result["stdout"]) == 1_048_576
    assert result["stdout_truncated"] is True
    assert result["stderr_truncated"] is False


def test_metrics_are_plausible(ex: ExecutorProcess) -> None:
    result = ex.run("import time\ndef handler(event):\n    time.sleep(0.2)\n")
    metrics = result["metrics"]
    assert metrics["duration_ms"] >= 200
    assert result["execution_time"] == pytest.approx(metrics["duration_ms"] / 1000, abs=0.01)
    assert metrics["cpu_time_ms"] >= 0
    assert metrics["peak_memory_mb"] > 0

    big = ex.run("def handler(event):\n    data = 'x' * (50 * 1024 * 1024)\n    return len(data)\n")
    assert big["return_value"] == 50 * 1024 * 1024
    assert big["metrics"]["peak_memory_mb"] >= 50
    assert big["metrics"]["cpu_time_ms"] > 0


def test_artifacts_are_the_files_the_run_wrote(ex: ExecutorProcess) -> None:
    for name in ("untouched.txt", "modified.txt"):
        (ex.workspace / name).write_text("old")
        os.utime(ex.workspace / name, (time.time() - 60, time.time() - 60))
    code = (
        "import os\n"
        "def handler(event):\n"
        "    os.makedirs('out/deep', exist_ok=True)\n"
        "    os.makedirs('.cache', exist_ok=True)\n"
        "    for name in ('out/deep/result.csv', 'b.txt', '.cache/skipped', '.dotfile'):\n"
        "        open(name, 'w').write('x')\n"
        "    open('modified.txt', 'a').write('more')\n"
        "    os.symlink('b.txt', 'link.txt')\n"
    )
    result = ex.run(code)
    assert result["status"] == "success", result["stderr"]
    assert result["artifacts"] == [
        {"path": ".dotfile", "size": 1, "mime_type": "application/octet-stream", "type": "artifact"},
        {"path": "b.txt", "size": 1, "mime_type": "text/plain", "type": "artifact"},
        {"path": "modified.txt", "size": 7, "mime_type": "text/plain", "type": "artifact"},
        {"path": "out/deep/result.csv", "size": 1, "mime_type": "text/csv", "type": "artifact"},
    ]
    # The next run wrote nothing: the files of the previous one are not its artifacts.
    assert ex.run("echo nothing", "shell")["artifacts"] == []


def test_a_run_never_takes_files_dated_ahead_of_its_start_by_the_last_run(ex: ExecutorProcess) -> None:
    # What fine-grained file times (ahead of the coarse clock) or a clock stepped back look like: the
    # last run's file is dated after the moment the next run would start.
    code = (
        "import os, time\n"
        "def handler(event):\n"
        "    open('ahead.txt', 'w').write('x')\n"
        "    ahead = time.time_ns() + 30_000_000\n"
        "    os.utime('ahead.txt', ns=(ahead, ahead))\n"
    )
    assert [a["path"] for a in ex.run(code)["artifacts"]] == ["ahead.txt"]
    assert ex.run("echo nothing", "shell")["artifacts"] == []


# -- javascript --------------------------------------------------------------------------------

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is required")


@needs_node
def test_javascript_handler_export(ex: ExecutorProcess) -> None:
    code = "exports.handler = async (event) => { console.log('js'); return { doubled: event.n * 2 }; };"
    result = ex.run(code, "javascript", event={"n": 21})
    assert result["status"] == "success", result["stderr"]
    assert result["stdout"] == "js\n"
    assert result["return_value"] == {"doubled": 42}


@needs_node
def test_javascript_module_exports_function(ex: ExecutorProcess) -> None:
    result = ex.run(
        "module.exports = (event) => event.items.length;", "javascript", event={"items": [1, 2, 3]}
    )
    assert result["return_value"] == 3


@needs_node
def test_javascript_plain_script(ex: ExecutorProcess) -> None:
    code = "console.log('Hello from Node.js'); setTimeout(() => console.log('later'), 20);"
    result = ex.run(code, "javascript")
    assert result["status"] == "success"
    assert result["stdout"] == "Hello from Node.js\nlater\n"
    assert result["return_value"] is None


@needs_node
def test_javascript_error(ex: ExecutorProcess) -> None:
    result = ex.run("exports.handler = () => { throw new TypeError('bad input'); };", "javascript")
    assert result["status"] == "failed"
    assert result["exit_code"] == 1
    assert "TypeError: bad input" in result["stderr"]
    assert "<handler>:1" in result["stderr"]


# -- shell -------------------------------------------------------------------------------------


def test_shell_event_on_stdin_and_in_env(ex: ExecutorProcess) -> None:
    code = 'read -r line; echo "stdin=$line"; echo "env=$SANDBOX_EVENT"; pwd'
    result = ex.run(code, "shell", event={"k": "v"})
    assert result["status"] == "success"
    assert result["stdout"] == f'stdin={{"k": "v"}}\nenv={{"k": "v"}}\n{ex.workspace}\n'
    assert result["return_value"] is None


def test_shell_exit_code(ex: ExecutorProcess) -> None:
    result = ex.run("echo oops >&2; exit 3", "shell")
    assert result["status"] == "failed"
    assert result["exit_code"] == 3
    assert result["stderr"] == "oops\n"


def test_shell_raw_stdin_and_oversized_script(ex: ExecutorProcess) -> None:
    assert ex.run("cat", "shell", stdin="raw text")["stdout"] == "raw text"
    # The shared code limit (100 KiB) is below what `bash -c` takes (128 KiB): a script at the limit runs,
    # a larger one is refused before it is queued.
    at_limit = ex.run("true #" + "a" * (MAX_CODE_BYTES - 6), "shell")
    assert at_limit["status"] == "success", at_limit
    script = "echo " + "a" * 140_000
    too_big = ex.post({"execution_id": new_execution_id(), "code": script, "language": "shell"})
    assert too_big.status == 400 and "'code'" in too_big.json()["error_detail"]


def test_callback_token_does_not_reach_user_code(ex: ExecutorProcess) -> None:
    result = ex.run("env", "shell")
    assert result["status"] == "success"
    env = dict(line.split("=", 1) for line in result["stdout"].splitlines() if "=" in line)
    assert TOKEN not in result["stdout"]
    assert not [k for k in env if k.startswith(("SANDBOXCP_", "AWS_"))]
    assert "aws-secret-value" not in result["stdout"]
    assert env["MY_PASSTHROUGH"] == "kept"
    assert env["HOME"] == str(ex.workspace)
    assert "PATH" in env


# -- callbacks ---------------------------------------------------------------------------------


def test_status_running_and_heartbeats_while_running(ex: ExecutorProcess, cp: FakeControlPlane) -> None:
    result_eid = ex.submit("sleep 1.5", "shell")
    cp.result(result_eid)
    status = cp.calls_to(f"/executions/{result_eid}/status")
    assert [c.json["status"] for c in status] == ["running"]
    assert status[0].json["started_at"].endswith("Z")
    beats = cp.calls_to(f"/executions/{result_eid}/heartbeat")
    assert len(beats) >= 2, [c.path for c in cp.snapshot()]
    assert all(c.json["timestamp"].endswith("Z") for c in beats)
    assert all(c.headers["authorization"] == f"Bearer {TOKEN}" for c in beats)


def test_queued_executions_get_heartbeats_too(ex: ExecutorProcess, cp: FakeControlPlane) -> None:
    # The control plane takes an execution without heartbeats for 15 s as crashed, queued ones too.
    blocker = ex.submit("sleep 2", "shell")
    cp.wait_for(lambda cs: any(c.path.endswith(f"{blocker}/status") for c in cs))
    accepted = time.monotonic()
    queued = ex.submit("echo queued", "shell")

    def beats(calls: list[Call]) -> list[Call]:
        return [c for c in calls if c.path.endswith(f"/executions/{queued}/heartbeat")]

    # Two beats (one interval, 0.3 s here, after acceptance, then every interval) while it waits,
    # not only once it runs.
    calls = cp.wait_for(lambda cs: len(beats(cs)) >= 2)
    assert not [c for c in calls if c.path.endswith(f"/executions/{blocker}/result")], "blocker finished"
    assert not [c for c in calls if c.path.endswith(f"/executions/{queued}/status")], "queued one ran"
    first = beats(calls)[0]
    assert first.at > accepted
    assert first.json["timestamp"].endswith("Z")
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert cp.result(queued)["stdout"] == "queued\n"
    # Released once its result is in: at most a beat already in flight may follow.
    result_at = cp.calls_to(f"/executions/{queued}/result")[0].at
    time.sleep(0.5)  # more than an interval (0.3 s)
    assert not [c for c in beats(cp.snapshot()) if c.at > result_at + 0.2]


def test_result_is_retried_after_503_with_same_key_and_body(
    ex: ExecutorProcess, cp: FakeControlPlane
) -> None:
    eid = new_execution_id()
    cp.fail_results[eid] = 2
    ex.submit("def handler(event):\n    return 'persisted'\n", execution_id=eid)
    assert cp.result(eid)["return_value"] == "persisted"
    posts = cp.calls_to(f"/executions/{eid}/result")
    assert [c.status for c in posts] == [503, 503, 200]
    assert {c.headers["idempotency-key"] for c in posts} == {eid}
    assert len({c.raw for c in posts}) == 1
    assert all(c.path.startswith("/cp/internal/") for c in posts)


def test_executions_run_one_at_a_time_in_submission_order(ex: ExecutorProcess, cp: FakeControlPlane) -> None:
    code = "import time\ndef handler(event):\n    time.sleep(0.1)\n    return event['i']\n"
    eids = [ex.submit(code, event={"i": i}) for i in range(3)]
    assert [cp.result(eid)["return_value"] for eid in eids] == [0, 1, 2]
    ours = [c for c in cp.snapshot() if any(e in c.path for e in eids) and not c.path.endswith("/heartbeat")]
    sequence = [(c.path.rsplit("/", 2)[-2], c.path.rsplit("/", 1)[-1]) for c in ours]
    assert sequence == [(eid, kind) for eid in eids for kind in ("status", "result")]


def test_duplicate_execution_id_runs_once(ex: ExecutorProcess, cp: FakeControlPlane) -> None:
    eid = new_execution_id()
    payload = {"execution_id": eid, "code": "echo once", "language": "shell", "timeout": 5}
    assert ex.post(payload).status == 202
    second = ex.post(payload)
    assert second.status == 202
    assert second.json() == {"execution_id": eid, "status": "accepted"}
    assert cp.result(eid)["stdout"] == "once\n"
    assert ex.post(payload).status == 202  # also once done
    ex.run("true", "shell")  # anything queued after it has finished too
    assert len(cp.calls_to(f"/executions/{eid}/result")) == 1


@pytest.mark.parametrize(
    ("patch", "detail"),
    [
        ({"execution_id": "exec_bad"}, "execution_id"),
        ({"code": ""}, "code"),
        ({"code": "x" * (1024 * 1024 + 1)}, "code"),
        ({"language": "ruby"}, "language"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": 3601}, "timeout"),
        ({"timeout": "10"}, "timeout"),
        ({"event": [1, 2]}, "event"),
    ],
)
def test_validation_errors(ex: ExecutorProcess, patch: dict[str, object], detail: str) -> None:
    payload = {"execution_id": new_execution_id(), "code": "print(1)", "language": "python", "timeout": 5}
    resp = ex.post({**payload, **patch})
    assert resp.status == 400
    body = resp.json()
    assert body["error_code"] == "Executor.ValidationError"
    assert body["description"]
    assert detail in body["error_detail"]
    assert body["solution"]


def test_malformed_json_is_a_validation_error(ex: ExecutorProcess) -> None:
    from sandbox_executor.http_client import request

    resp = request(
        ex.endpoint, "POST", "/execute", body=b"{not json", headers=executor_key_header(ex.token), timeout=5
    )
    assert resp.status == 400
    assert resp.json()["error_code"] == "Executor.ValidationError"


def test_health(ex: ExecutorProcess) -> None:
    resp = ex.get("/health")
    assert resp.status == 200
    body = resp.json()
    assert body["status"] == "healthy"
    assert body["version"] == "1.0.0"
    assert body["uptime_seconds"] > 0
    assert isinstance(body["active_executions"], int)
    assert ex.get("/nope").status == 404


def test_queue_full_answers_503(ex: ExecutorProcess, cp: FakeControlPlane) -> None:
    blocker = ex.submit("sleep 1", "shell")
    cp.wait_for(lambda cs: any(c.path.endswith(f"{blocker}/status") for c in cs))
    queued = [ex.submit("true", "shell") for _ in range(64)]
    resp = ex.post({"execution_id": new_execution_id(), "code": "true", "language": "shell"})
    assert resp.status == 503
    assert resp.json()["error_code"] == "Executor.QueueFull"
    assert ex.get("/health").json()["active_executions"] == 65
    for eid in queued:
        assert cp.result(eid)["status"] == "success"


def test_execute_without_the_executor_key_is_refused(ex: ExecutorProcess) -> None:
    """Only the control plane, which holds the SHA-256 of the session's callback token, may submit:
    user code that reaches the executor's socket cannot run code under another execution's id."""
    body = {"execution_id": "exec_20250106_ffffffff", "code": "print(1)", "language": "python"}
    for headers in ({}, {"Authorization": "Bearer " + "0" * 64}, {"Authorization": f"Bearer {ex.token}"}):
        resp = request_json(ex.endpoint, "POST", "/execute", body, headers=headers, timeout=5)
        assert resp.status == 403 and resp.json()["error_code"] == "Executor.Forbidden"
    time.sleep(0.3)
    assert not [c for c in ex.cp.snapshot() if "exec_20250106_ffffffff" in c.path]
    assert ex.get("/health").json()["active_executions"] == 0


# -- execute-sync: the result in the /execute answer (wait_ms) ---------------------------------------------


def test_a_run_that_ends_within_wait_ms_is_answered_with_its_result_and_not_posted(
    ex: ExecutorProcess,
) -> None:
    eid = new_execution_id()
    code = "def handler(event):\n    print('hi')\n    return 41 + 1\n"
    resp = ex.post({"execution_id": eid, "code": code, "language": "python", "wait_ms": 10_000})
    assert resp.status == 200, resp.body
    answer = json.loads(resp.body)
    assert answer["execution_id"] == eid and answer["status"] == "completed"
    assert answer["result"]["return_value"] == 42 and answer["result"]["stdout"] == "hi\n"
    assert answer["result"]["status"] == "success" and answer["result"]["started_at"]
    # Exactly one delivery: a later run's result arrives by callback, this one's never does.
    ex.run("def handler(event):\n    return 0\n")
    assert ex.cp.calls_to(f"/executions/{eid}/result") == []


def test_a_run_longer_than_wait_ms_is_answered_202_and_reports_by_callback(ex: ExecutorProcess) -> None:
    eid = new_execution_id()
    code = "import time\ndef handler(event):\n    time.sleep(0.5)\n    return 'late'\n"
    resp = ex.post({"execution_id": eid, "code": code, "language": "python", "wait_ms": 100})
    assert resp.status == 202, resp.body
    assert ex.cp.result(eid)["return_value"] == "late"


def test_wait_ms_is_bounded(ex: ExecutorProcess) -> None:
    resp = ex.post({"execution_id": new_execution_id(), "code": "x", "language": "python", "wait_ms": 25_001})
    assert resp.status == 400 and b"wait_ms" in resp.body
