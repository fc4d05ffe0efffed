"""The execution engine on real executors (process runtime): languages, failures, limits, metrics,
ordering under load, idempotent results, crash recovery."""

from __future__ import annotations

import itertools
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import callback_token_of, executor_pids, wait_for

pytestmark = pytest.mark.e2e
TERMINAL = {"completed", "failed", "timeout", "crashed"}


def run(api, sid, code, language="python", timeout=30, event=None, wait=40):  # type: ignore[no-untyped-def]
    body = {"code": code, "language": language, "timeout": timeout, "event": event or {}}
    resp = api.post(f"/sessions/{sid}/execute", json=body)
    assert resp.status_code == 200, resp.text
    eid = resp.json()["execution_id"]
    assert wait_for(lambda: api.get(f"/executions/{eid}/status").json()["status"] in TERMINAL, timeout=wait)
    return api.get(f"/executions/{eid}").json()


def test_python_handler(api, session):  # type: ignore[no-untyped-def]
    out = run(
        api, session, "def handler(event):\n    return {'sum': sum(event['n'])}", event={"n": [1, 2, 3]}
    )
    assert out["status"] == "completed" and out["result"]["return_value"] == {"sum": 6}


def test_javascript_handler_and_plain_script(stack, api, session):  # type: ignore[no-untyped-def]
    if (
        stack.runtime != "process"
    ):  # container images carry their template's languages: Node.js is in nodejs-basic
        created = api.post("/sessions", json={"template_id": "nodejs-basic", "timeout": 600}).json()
        session = created["session_id"]
        assert wait_for(lambda: api.get(f"/sessions/{session}").json()["status"] == "running", timeout=30)
    out = run(
        api,
        session,
        "exports.handler = async (event) => ({ doubled: event.x * 2 });",
        "javascript",
        event={"x": 21},
    )
    assert out["status"] == "completed", out
    assert out["result"]["return_value"] == {"doubled": 42}
    plain = run(api, session, "console.log('plain ' + (1 + 1));", "javascript")
    assert plain["result"]["stdout"] == "plain 2\n" and plain["result"]["return_value"] is None


def test_shell(api, session):  # type: ignore[no-untyped-def]
    out = run(api, session, 'read line; echo "got $line"; echo oops >&2; exit 3', "shell", event={"k": 1})
    assert out["status"] == "failed"
    assert out["result"]["stdout"] == 'got {"k": 1}\n' and out["result"]["stderr"] == "oops\n"
    assert out["result"]["exit_code"] == 3


def test_timeout_keeps_partial_output(api, session):  # type: ignore[no-untyped-def]
    code = "import time, sys\ndef handler(event):\n    print('before', flush=True)\n    time.sleep(30)\n"
    out = run(api, session, code, timeout=1)
    assert out["status"] == "timeout"
    result = out["result"]
    assert result["stdout"] == "before\n" and result["exit_code"] == -1
    assert "timeout" in result["stderr"].lower() and result["error_code"] == "Sandbox.ExecTimeout"


def test_syntax_error(api, session):  # type: ignore[no-untyped-def]
    out = run(api, session, "def handler(event)\n    return 1")
    assert out["status"] == "failed" and out["result"]["exit_code"] != 0
    assert "SyntaxError" in out["result"]["stderr"] and out["result"]["error_code"] == "Sandbox.ExecException"


def test_uncaught_exception(api, session):  # type: ignore[no-untyped-def]
    out = run(api, session, "def handler(event):\n    raise ValueError('boom')")
    assert out["status"] == "failed" and out["result"]["exit_code"] != 0
    assert "Traceback" in out["result"]["stderr"] and "ValueError: boom" in out["result"]["stderr"]


def test_non_json_return_is_a_clear_failure(api, session):  # type: ignore[no-untyped-def]
    out = run(api, session, "def handler(event):\n    return {1, 2}")
    assert out["status"] == "failed"
    assert "not JSON serializable" in out["result"]["stderr"]


def test_output_over_1_mb_is_truncated(api, session):  # type: ignore[no-untyped-def]
    code = "import sys\ndef handler(event):\n    sys.stdout.write('x' * 3_000_000)\n    return 1"
    out = run(api, session, code)
    assert out["status"] == "completed"
    result = out["result"]
    assert len(result["stdout"]) == 1024 * 1024 and result["stdout_truncated"] is True
    assert result["stderr_truncated"] is False


def test_metrics_are_plausible(api, session):  # type: ignore[no-untyped-def]
    slept = run(api, session, "import time\ndef handler(event):\n    time.sleep(0.2)")["result"]["metrics"]
    assert slept["duration_ms"] >= 200
    big = run(api, session, "def handler(event):\n    b = bytearray(50 * 1024 * 1024)\n    return len(b)")
    assert big["result"]["metrics"]["peak_memory_mb"] >= 50
    assert big["result"]["metrics"]["cpu_time_ms"] >= 0


def test_execute_sync_returns_the_result(api, session):  # type: ignore[no-untyped-def]
    resp = api.post(
        f"/sessions/{session}/execute-sync",
        json={"code": "def handler(e):\n    return e['x'] + 1", "language": "python", "event": {"x": 1}},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["return_value"] == 2 and resp.json()["status"] == "success"


def test_twenty_concurrent_submissions_all_complete_in_order(api, session):  # type: ignore[no-untyped-def]
    code = "import time\ndef handler(event):\n    time.sleep(0.05)\n    return event['i']"

    def submit(i: int) -> str:
        resp = api.post(
            f"/sessions/{session}/execute", json={"code": code, "language": "python", "event": {"i": i}}
        )
        assert resp.status_code == 200, resp.text
        return str(resp.json()["execution_id"])

    with ThreadPoolExecutor(20) as pool:
        ids = list(pool.map(submit, range(20)))
    assert len(set(ids)) == 20

    def all_done() -> bool:
        return all(api.get(f"/executions/{e}/status").json()["status"] == "completed" for e in ids)

    assert wait_for(all_done, timeout=60, interval=0.5)
    details = [api.get(f"/executions/{e}").json() for e in ids]
    assert sorted(d["result"]["return_value"] for d in details) == list(range(20))
    # One at a time: runs never overlap (twenty clients race to submit, so which is accepted first is
    # theirs to decide; the executor then keeps its queue's order, see tests/unit/test_executor_agent.py).
    status = [api.get(f"/executions/{d['id']}/status").json() for d in details]
    assert all(s["started_at"] for s in status), status
    # Compared as times, not strings: a time on a whole second is written without a fraction ("...36Z"),
    # which sorts after "...36.5Z" as text.
    by_start = sorted(status, key=lambda s: _when(s["started_at"]))
    for earlier, later in itertools.pairwise(by_start):
        assert _when(earlier["completed_at"]) <= _when(later["started_at"]), (earlier, later)


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def test_same_result_posted_ten_times_concurrently_is_stored_once(stack, api, session):  # type: ignore[no-untyped-def]
    done = run(api, session, "def handler(e):\n    return 'original'")
    eid = done["id"]
    token = callback_token_of(session)
    report = {
        "status": "success",
        "stdout": "forged\n",
        "stderr": "",
        "exit_code": 0,
        "execution_time": 0.1,
        "return_value": "forged",
        "metrics": {"duration_ms": 1.0},
        "artifacts": [],
    }
    url = f"{stack.url}/internal/executions/{eid}/result"
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": eid}
    with ThreadPoolExecutor(10) as pool:
        codes = list(
            pool.map(
                lambda _: httpx.post(url, json=report, headers=headers, timeout=30).status_code, range(10)
            )
        )
    assert all(c in (200, 409) for c in codes), codes
    after = api.get(f"/executions/{eid}").json()
    assert after["result"]["return_value"] == "original" and after["result"]["stdout"] == ""
    listed = api.get(f"/sessions/{session}/executions").json()
    assert [e["id"] for e in listed["executions"]].count(eid) == 1


def test_executor_killed_mid_run_is_crashed_then_retried(api):  # type: ignore[no-untyped-def]
    sid = api.post("/sessions", json={"template_id": "python-basic", "timeout": 3600}).json()["session_id"]
    assert wait_for(lambda: api.get(f"/sessions/{sid}").json()["status"] == "running", timeout=10)
    code = (
        "import os, time\ndef handler(event):\n"
        "    marker = '/workspace/first-run-done'\n"
        "    if not os.path.exists(marker):\n"
        "        open(marker, 'w').close()\n"
        "        print('marked', flush=True)\n"
        "        time.sleep(60)\n"
        "    return 'second run'"
    )
    eid = api.post(f"/sessions/{sid}/execute", json={"code": code, "language": "python"}).json()[
        "execution_id"
    ]
    assert wait_for(lambda: api.get(f"/executions/{eid}/status").json()["status"] == "running", timeout=10)

    def marked() -> bool:  # the handler itself runs ("running" may come before it has started)
        chunks = api.get(f"/executions/{eid}/output", params={"after": 0, "wait": 5}).json()["chunks"]
        return any("marked" in c["data"] for c in chunks)

    assert wait_for(marked, timeout=20)
    # The agent, not its supervisor: the supervisor is the oldest executor process of the session.
    agent = max(executor_pids(sid), key=lambda pid: int(Path(f"/proc/{pid}/stat").read_text().split()[21]))
    os.kill(agent, signal.SIGKILL)
    assert wait_for(
        lambda: api.get(f"/executions/{eid}/status").json()["status"] == "crashed", timeout=40, interval=1
    )

    def retry_done() -> dict | None:
        rows = api.get(f"/sessions/{sid}/executions").json()["executions"]
        retries = [r for r in rows if r.get("parent_execution_id") == eid and r["status"] == "completed"]
        return retries[0] if retries else None

    retry = wait_for(retry_done, timeout=40, interval=1)
    assert retry and retry["retry_count"] == 1
    assert api.get(f"/executions/{retry['id']}/result").json()["return_value"] == "second run"
    api.delete(f"/sessions/{sid}")
