"""The local stack on the ECS stand-in (`sandboxcp local --runtime ecs`), as deployed: sandboxes are
Fargate-like tasks (real containers) started with RunTask, bound over HTTP at the address DescribeTasks
reports, calling the internal API over HTTP by URL. Here: the warm pool serves launches (a session runs in
a task started before it), the session's env vars reach user code through the bind and never through
RunTask, and a template created and then updated through the API launches under its own task definition,
with its network setting."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandboxcp.local.ecs_standin import TASK_LABEL
from tests.e2e.conftest import Stack, start_stack, stop_stack, wait_for
from tests.integration.conftest import create_running_session, docker, run_code, running_containers

CUSTOM = "registry.sandboxcp.test/e2e/custom-python"


def _task_containers() -> dict[str, dict[str, Any]]:
    """The stand-in's task containers: task id -> `docker inspect` of its container."""
    return {c["Config"]["Labels"][TASK_LABEL].rsplit("/", 1)[-1]: c for c in running_containers(TASK_LABEL)}


def _env(container: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container["Config"]["Env"])


@pytest.fixture(scope="module")
def ecs_stack(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SANDBOX_WARM_POOL", "python-basic=1")
        stack = start_stack(tmp_path_factory.mktemp("ecs-stack"), runtime="ecs")
    yield stack
    stop_stack(stack)
    assert wait_for(lambda: not _task_containers(), timeout=30), "a task outlived the stack"


def test_the_warm_pool_serves_a_launch_and_env_vars_travel_in_the_bind(ecs_stack: Stack) -> None:
    def warm() -> list[str]:
        return [t for t, c in _task_containers().items() if "SANDBOXCP_POOL_ID" in _env(c)]

    assert wait_for(warm, timeout=60, interval=0.5), "the pool never filled"
    time.sleep(1)  # its executor finishes booting
    before = set(warm())
    with ecs_stack.client() as api:
        sid = create_running_session(api, env_vars={"GREETING": "hello-from-bind"})
        session = api.get(f"/sessions/{sid}").json()
        assert session["container_id"] in before, (session["container_id"], before)  # started before it
        container = _task_containers()[session["container_id"]]
        env = _env(container)
        assert "GREETING" not in env and not [k for k in env if "TOKEN" in k], env  # not in RunTask
        status, result = run_code(
            api, sid, "import os\ndef handler(e):\n    return [os.getuid(), os.environ.get('GREETING')]"
        )
        assert status == "completed" and result["return_value"] == [1000, "hello-from-bind"], result
        assert api.delete(f"/sessions/{sid}").status_code == 200
        assert wait_for(lambda: session["container_id"] not in _task_containers(), timeout=30)


def test_a_template_created_and_updated_through_the_api_launches_on_ecs(ecs_stack: Stack) -> None:
    docker("tag", "sandboxcp/python-basic:latest", f"{CUSTOM}:1")
    docker("tag", "sandboxcp/python-basic:latest", f"{CUSTOM}:2")
    probe = "import os\ndef handler(e):\n    return sorted(os.listdir('/sys/class/net'))"
    try:
        with ecs_stack.client() as api:
            created = api.post(
                "/templates",
                json={
                    "id": "custom-ecs",
                    "name": "custom on ecs",
                    "image": f"{CUSTOM}:1",
                    "default_resources": {"cpu": "0.5", "memory": "256Mi", "disk": "1Gi"},
                    "security_context": {"network_enabled": True},
                },
            )
            assert created.status_code == 201, created.text
            sid = create_running_session(api, template_id="custom-ecs")
            task = api.get(f"/sessions/{sid}").json()["container_id"]
            assert _task_containers()[task]["Config"]["Image"] == f"{CUSTOM}:1"
            status, result = run_code(api, sid, probe)
            # network open: the task's ENI plus a route out (the egress network), beside lo.
            assert status == "completed" and len(result["return_value"]) == 3, result
            api.delete(f"/sessions/{sid}")

            updated = api.put(
                "/templates/custom-ecs",
                json={"image": f"{CUSTOM}:2", "security_context": {"network_enabled": False}},
            )
            assert updated.status_code == 200, updated.text
            sid = create_running_session(api, template_id="custom-ecs")
            task = api.get(f"/sessions/{sid}").json()["container_id"]
            assert _task_containers()[task]["Config"]["Image"] == f"{CUSTOM}:2"  # a new task definition
            status, result = run_code(api, sid, probe)
            assert status == "completed" and len(result["return_value"]) == 2, result  # lo and the ENI only
            api.delete(f"/sessions/{sid}")
    finally:
        subprocess.run(["docker", "rmi", f"{CUSTOM}:1", f"{CUSTOM}:2"], capture_output=True, check=False)


def test_health_pings_ecs(ecs_stack: Stack) -> None:
    with ecs_stack.client() as api:
        runtime = api.get("/health").json()["checks"]["runtime"]
    assert runtime["status"] == "healthy" and runtime["runtime"] == "ecs", runtime
