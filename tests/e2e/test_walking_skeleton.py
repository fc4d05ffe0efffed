"""The walking skeleton end to end: a session runs a Python handler in a real bubblewrap sandbox."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.e2e.conftest import executor_pids, start_stack, stop_stack, wait_for

pytestmark = pytest.mark.e2e

HANDLER = "def handler(event):\n    print('hi')\n    return event['x'] * 2"


def _create_running_session(api):  # type: ignore[no-untyped-def]
    created = api.post("/sessions", json={"template_id": "python-basic"})
    assert created.status_code == 201, created.text
    session = created.json()
    assert re.fullmatch(r"sess_[a-z0-9]{16}", session["session_id"]) and session["status"] == "creating"
    sid = session["session_id"]
    status = wait_for(lambda: api.get(f"/sessions/{sid}").json()["status"] == "running", timeout=5)
    assert status, f"session not running within 5 s: {api.get(f'/sessions/{sid}').json()}"
    return sid


def test_session_runs_a_python_handler_end_to_end(stack):  # type: ignore[no-untyped-def]
    with stack.client() as api:
        sid = _create_running_session(api)
        assert len(executor_pids(sid)) >= 1

        submitted = api.post(
            f"/sessions/{sid}/execute", json={"code": HANDLER, "language": "python", "event": {"x": 21}}
        )
        assert submitted.status_code == 200, submitted.text
        eid = submitted.json()["execution_id"]
        assert re.fullmatch(r"exec_[0-9]{8}_[a-z0-9]{8}", eid)

        done = wait_for(
            lambda: api.get(f"/executions/{eid}/status").json()["status"] == "completed", timeout=10
        )
        assert done, api.get(f"/executions/{eid}/status").json()
        result = api.get(f"/executions/{eid}/result").json()
        assert result["return_value"] == 42
        assert result["stdout"] == "hi\n"
        assert result["exit_code"] == 0
        assert result["metrics"]["duration_ms"] > 0

        running = api.get("/sessions", params={"status": "running"}).json()
        assert sid in [s["session_id"] for s in running["sessions"]] and running["total"] >= 1
        listed = api.get(f"/sessions/{sid}/executions").json()
        assert [e["id"] for e in listed["executions"]] == [eid] and listed["total"] == 1
        detail = api.get(f"/executions/{eid}").json()
        assert detail["status"] == "completed" and detail["result"]["return_value"] == 42
        templates = api.get("/templates").json()
        assert {"python-basic", "python-datascience", "nodejs-basic"} <= {
            t["id"] for t in templates["templates"]
        }
        assert api.get("/templates/python-basic").json()["id"] == "python-basic"

        assert api.delete(f"/sessions/{sid}").status_code == 200
        assert api.get(f"/sessions/{sid}").json()["status"] == "terminated"
        assert wait_for(lambda: executor_pids(sid) == [], timeout=5), "executor outlived its session"


def test_sandbox_isolation_basics(stack):  # type: ignore[no-untyped-def]
    probe = (
        "import os, socket\n"
        "def handler(event):\n"
        "    secret = ('AWS', 'SANDBOXCP')\n"
        "    out = {'uid': os.getuid(), 'env': sorted(k for k in os.environ if k.startswith(secret))}\n"
        "    try:\n"
        "        open('/usr/evil', 'w')\n"
        "        out['write_usr'] = True\n"
        "    except OSError:\n"
        "        out['write_usr'] = False\n"
        "    try:\n"
        "        socket.create_connection(('1.1.1.1', 80), timeout=1)\n"
        "        out['net'] = True\n"
        "    except OSError:\n"
        "        out['net'] = False\n"
        "    status = open('/proc/self/status').read().splitlines()\n"
        "    out['cap_eff'] = [l for l in status if l.startswith('CapEff')][0].split()[1]\n"
        "    return out\n"
    )
    with stack.client() as api:
        sid = _create_running_session(api)
        eid = api.post(f"/sessions/{sid}/execute", json={"code": probe, "language": "python"}).json()[
            "execution_id"
        ]
        assert wait_for(
            lambda: api.get(f"/executions/{eid}/status").json()["status"] == "completed", timeout=10
        )
        seen = api.get(f"/executions/{eid}/result").json()["return_value"]
        assert seen == {
            "uid": 1000,
            "env": [],
            "write_usr": False,
            "net": False,
            "cap_eff": "0000000000000000",
        }
        api.delete(f"/sessions/{sid}")


def test_auth_and_tenant_isolation(stack):  # type: ignore[no-untyped-def]
    env = {**os.environ, "SANDBOXCP_URL": stack.url, "SANDBOXCP_API_KEY": stack.admin_key}
    out = subprocess.run(
        [sys.executable, "-m", "sandboxcp.cli", "keys", "create", "--tenant", "team-b"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    key_b = out.strip().splitlines()[-1]
    assert key_b.startswith("sk_")
    with stack.client() as admin, stack.client(key_b) as team_b, stack.client("sk_not_a_key") as stranger:
        assert stranger.get("/sessions").status_code == 401
        assert stranger.get("/sessions").json()["error_code"] == "Sandbox.Unauthorized"
        no_key = admin.get("/sessions", headers={"Authorization": ""})
        assert no_key.status_code == 401
        sid = admin.post("/sessions", json={"template_id": "python-basic"}).json()["session_id"]
        assert team_b.get(f"/sessions/{sid}").status_code == 404
        assert team_b.delete(f"/sessions/{sid}").status_code == 404
        assert (
            team_b.post(f"/sessions/{sid}/execute", json={"code": "x", "language": "python"}).status_code
            == 404
        )
        assert sid not in [s["session_id"] for s in team_b.get("/sessions").json()["sessions"]]
        assert team_b.post("/keys", json={"tenant_id": "x"}).status_code == 403
        admin.delete(f"/sessions/{sid}")


def test_bad_input_gets_the_contract_error_body(stack):  # type: ignore[no-untyped-def]
    with stack.client() as api:
        cases = [
            api.post("/sessions", json={"template_id": "nope"}),
            api.post("/sessions", content=b"{broken", headers={"Content-Type": "application/json"}),
            api.post("/sessions", json={"template_id": "python-basic", "timeout": 99999}),
            api.post(
                "/sessions/sess_aaaaaaaaaaaaaaaa/execute", json={"code": "x" * 200_000, "language": "python"}
            ),
            api.get("/sessions", params={"limit": 1000}),
        ]
        for resp in cases:
            assert 400 <= resp.status_code < 500, resp.text
            assert {"error_code", "description", "error_detail", "solution", "request_id"} <= set(resp.json())
        assert api.get("/sessions/sess_aaaaaaaaaaaaaaaa").status_code == 404


def test_stopping_the_stack_stops_every_sandbox(tmp_path):  # type: ignore[no-untyped-def]
    own = start_stack(tmp_path)
    try:
        with own.client() as api:
            sid = _create_running_session(api)
            assert executor_pids(sid)
    finally:
        stop_stack(own)
    assert own.process.returncode == 0
    assert wait_for(lambda: executor_pids(sid) == [], timeout=5), "an executor outlived the local stack"
