"""The execution engine and container monitoring through the API with `--runtime docker` (real engine,
real images): languages, timeout with partial output, truncation, metrics, crash and retry, container
listing, details and logs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import executor_pids, wait_for
from tests.integration.conftest import create_running_session, run_code


@pytest.fixture(scope="module")
def api(docker_stack):  # type: ignore[no-untyped-def]
    with docker_stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def sid(api):  # type: ignore[no-untyped-def]
    session = create_running_session(api, timeout=3600)
    yield session
    api.delete(f"/sessions/{session}")


def test_python_and_shell(api, sid):  # type: ignore[no-untyped-def]
    status, result = run_code(
        api, sid, "def handler(event):\n    print('hi')\n    return event['x'] * 2", {"x": 21}
    )
    assert status == "completed" and result["return_value"] == 42 and result["stdout"] == "hi\n"
    status, result = run_code(api, sid, 'read l; echo "$l"; exit 4', {"a": 1}, language="shell")
    assert status == "failed" and result["stdout"] == '{"a": 1}\n' and result["exit_code"] == 4


def test_javascript_in_the_nodejs_template(api):  # type: ignore[no-untyped-def]
    node = create_running_session(api, template_id="nodejs-basic")
    status, result = run_code(api, node, "exports.handler = (e) => e.x + 1;", {"x": 1}, language="javascript")
    assert status == "completed" and result["return_value"] == 2
    api.delete(f"/sessions/{node}")


def test_timeout_truncation_and_metrics(api, sid):  # type: ignore[no-untyped-def]
    code = "import time\ndef handler(e):\n    print('partial', flush=True)\n    time.sleep(30)"
    submitted = api.post(f"/sessions/{sid}/execute", json={"code": code, "language": "python", "timeout": 1})
    eid = submitted.json()["execution_id"]
    assert wait_for(lambda: api.get(f"/executions/{eid}/status").json()["status"] == "timeout", timeout=20)
    result = api.get(f"/executions/{eid}/result").json()
    assert result["stdout"] == "partial\n" and result["exit_code"] == -1
    status, result = run_code(api, sid, "import sys\ndef handler(e):\n    sys.stdout.write('y' * 2_000_000)")
    assert status == "completed" and result["stdout_truncated"] and len(result["stdout"]) == 1024 * 1024
    status, result = run_code(
        api, sid, "import time\ndef handler(e):\n    b = bytearray(60 * 2**20)\n    time.sleep(0.2)"
    )
    assert result["metrics"]["duration_ms"] >= 200 and result["metrics"]["peak_memory_mb"] >= 50


def test_killed_executor_is_crashed_then_retried(api):  # type: ignore[no-untyped-def]
    session = create_running_session(api, timeout=3600)
    code = (
        "import os, time\ndef handler(event):\n"
        "    if not os.path.exists('/workspace/first-run'):\n"
        "        open('/workspace/first-run', 'w').close()\n"
        "        time.sleep(60)\n"
        "    return 'second run'"
    )
    eid = api.post(f"/sessions/{session}/execute", json={"code": code, "language": "python"}).json()[
        "execution_id"
    ]
    assert wait_for(lambda: api.get(f"/executions/{eid}/status").json()["status"] == "running", timeout=15)
    agent = max(
        executor_pids(session), key=lambda pid: int(Path(f"/proc/{pid}/stat").read_text().split()[21])
    )
    os.kill(agent, signal.SIGKILL)
    assert wait_for(
        lambda: api.get(f"/executions/{eid}/status").json()["status"] == "crashed", timeout=45, interval=1
    )

    def retry():  # type: ignore[no-untyped-def]
        rows = api.get(f"/sessions/{session}/executions").json()["executions"]
        done = [r for r in rows if r.get("parent_execution_id") == eid and r["status"] == "completed"]
        return done[0] if done else None

    retried = wait_for(retry, timeout=45, interval=1)
    assert retried and retried["retry_count"] == 1
    assert api.get(f"/executions/{retried['id']}/result").json()["return_value"] == "second run"
    api.delete(f"/sessions/{session}")


def test_containers_list_details_and_logs(api, sid):  # type: ignore[no-untyped-def]
    run_code(api, sid, "def handler(e):\n    return 1")
    listed = api.get("/containers", params={"status": "running", "runtime_type": "docker"}).json()
    [mine] = [c for c in listed["containers"] if c["session_id"] == sid]
    cid = mine["container_id"]
    info = api.get(f"/containers/{cid}").json()
    assert info["runtime_type"] == "docker" and info["status"] == "running" and info["uptime_seconds"] >= 0
    lines = api.get(f"/containers/{cid}/logs").text.splitlines()
    assert any("ready" in line for line in lines), lines
    tail = api.get(f"/containers/{cid}/logs", params={"tail": 3}).text.splitlines()
    assert tail == lines[-3:]
