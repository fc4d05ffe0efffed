"""The warm pool on a real engine: pre-started unbound containers, a session that claims one and runs code
in it with its own token, termination, and the pool refilled."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.e2e.conftest import start_stack, stop_stack, wait_for
from tests.integration.conftest import create_running_session, run_code


def _pool_containers() -> set[str]:
    out = subprocess.run(
        ["docker", "ps", "--filter", "name=sandbox-pool_", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


@pytest.fixture(scope="module")
def pooled_stack(docker_engine, tmp_path_factory, monkeypatch_module):  # type: ignore[no-untyped-def]
    monkeypatch_module.setenv("SANDBOX_WARM_POOL", "python-basic=2")
    stack = start_stack(tmp_path_factory.mktemp("warm"), runtime="docker")
    yield stack
    stop_stack(stack)


@pytest.fixture(scope="module")
def monkeypatch_module():  # type: ignore[no-untyped-def]
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_a_session_claims_a_warm_container(pooled_stack):  # type: ignore[no-untyped-def]
    assert wait_for(lambda: len(_pool_containers()) >= 2, timeout=60, interval=0.5), "pool never filled"
    time.sleep(1)
    before = _pool_containers()
    with pooled_stack.client() as api:
        sid = create_running_session(api, timeout=10)
        session = api.get(f"/sessions/{sid}").json()
        names = (
            subprocess.run(
                ["docker", "inspect", "-f", "{{.Name}}", session["container_id"]],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .lstrip("/")
        )
        assert names in before, (names, before)  # the session runs in a container started before it
        status, result = run_code(api, sid, "import os\ndef handler(e):\n    return os.getuid()")
        assert status == "completed" and result["return_value"] == 1000
        assert api.delete(f"/sessions/{sid}").status_code == 200
        assert wait_for(lambda: names not in _pool_containers(), timeout=15)
        # The refill job replaces what was claimed.
        assert wait_for(lambda: len(_pool_containers() - {names}) >= 2, timeout=40, interval=1)


def test_create_answers_running_in_a_pre_started_container(pooled_stack):  # type: ignore[no-untyped-def]
    """Inline claim: the create request itself claims and binds a warm container and answers `running`;
    the program's output then shows in the container's logs, its usage in the containers API."""
    assert wait_for(lambda: len(_pool_containers()) >= 2, timeout=60, interval=0.5), "pool never filled"
    time.sleep(1)  # the executors finish booting
    before = _pool_containers()
    with pooled_stack.client() as api:
        created = api.post("/sessions", json={"template_id": "python-basic"})
        assert created.status_code == 201, created.text
        session = created.json()
        assert session["status"] == "running", session  # in the create response, no polling
        sid = session["session_id"]
        name = (
            subprocess.run(
                ["docker", "inspect", "-f", "{{.Name}}", session["container_id"]],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .lstrip("/")
        )
        assert name.startswith("sandbox-pool_") and name in before, (name, before)
        code = (
            "import os, sys\ndef handler(e):\n    print('hello-from-program')\n"
            "    print('oops', file=sys.stderr)\n    return os.getuid()"
        )
        status, result = run_code(api, sid, code)
        assert status == "completed" and result["return_value"] == 1000, result
        logs = api.get(f"/containers/{sid}/logs", params={"tail": 50}).text.splitlines()
        assert any("[stdout]" in line and line.endswith("hello-from-program") for line in logs), logs
        assert any("[stderr]" in line and line.endswith("oops") for line in logs), logs
        assert any("sandbox-executor" in line for line in logs), logs  # beside the executor's events
        info = api.get(f"/containers/{sid}").json()
        usage = info["usage"]
        assert usage["memory_bytes"] > 0 and usage["memory_limit_bytes"] == 512 * 1024 * 1024, usage
        assert usage["cpu_percent"] is not None and usage["disk_limit_bytes"] > 0, usage
        listed = api.get("/containers", params={"status": "running"}).json()["containers"]
        assert [c["usage"]["memory_bytes"] > 0 for c in listed if c["session_id"] == sid] == [True]
        assert api.delete(f"/sessions/{sid}").status_code == 200
