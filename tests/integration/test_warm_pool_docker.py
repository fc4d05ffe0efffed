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
