"""The local stack on the Kubernetes API stand-in (`sandboxcp local --runtime eks`), as deployed: the eks
adapter creates a Pod (a real container) per sandbox through the Kubernetes API, fenced by NetworkPolicies
the stand-in enforces with iptables; the control plane binds and calls the executor over HTTP at the Pod
IP the API reports, and the executor calls the internal API over HTTP by URL. Here: the warm pool serves
launches (a session runs in a Pod started before it, unbound until the claim), the session's env vars
reach user code through the bind and never through the Pod spec, a template created and then updated
through the API launches its image with its network setting, and the health check pings the cluster."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from sandboxcp.local.kube_standin import PID_LABEL, POD_LABEL
from tests.e2e.conftest import Stack, start_stack, stop_stack, wait_for
from tests.integration.conftest import create_running_session, docker, run_code, running_containers
from tests.integration.test_eks_standin import internet  # noqa: F401 - a fixture

CUSTOM = "registry.sandboxcp.test/e2e/custom-python-eks"
NETWORK_LABEL = "sandboxcp.io/network"


def _pod_containers(stack: Stack) -> dict[str, dict[str, Any]]:
    """The Pods of this stack's stand-in (its process's, not another run's): pod name -> `docker inspect`."""
    return {
        c["Config"]["Labels"][POD_LABEL].rsplit("/", 1)[-1]: c
        for c in running_containers(f"{PID_LABEL}={stack.process.pid}")
        if POD_LABEL in c["Config"]["Labels"]
    }


def _env(container: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container["Config"]["Env"])


def _moment(text: str) -> datetime:
    """Docker's (nanoseconds) or the API's (microseconds) RFC 3339 time."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{whole}.{(fraction or '0')[:6].ljust(6, '0')}+00:00")


@pytest.fixture(scope="module")
def eks_stack(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SANDBOX_WARM_POOL", "python-basic=1")
        stack = start_stack(tmp_path_factory.mktemp("eks-stack"), runtime="eks")
    yield stack
    stop_stack(stack)
    assert wait_for(lambda: not _pod_containers(stack), timeout=30), "a Pod outlived the stack"


def test_the_warm_pool_serves_a_launch_and_env_vars_travel_in_the_bind(eks_stack: Stack) -> None:
    def warm() -> list[str]:
        return [p for p, c in _pod_containers(eks_stack).items() if "SANDBOXCP_POOL_ID" in _env(c)]

    assert wait_for(warm, timeout=60, interval=0.5), "the pool never filled"
    time.sleep(1)  # its executor finishes booting
    before = set(warm())
    with eks_stack.client() as api:
        sid = create_running_session(api, env_vars={"GREETING": "hello-from-bind"})
        session = api.get(f"/sessions/{sid}").json()
        pod = session["container_id"]
        assert pod in before, (pod, before)  # a pooled Pod, named for its pool id, not for the session
        container = _pod_containers(eks_stack)[pod]
        # Started (unbound) before the session existed.
        assert _moment(container["State"]["StartedAt"]) < _moment(session["created_at"]), (container, session)
        env = _env(container)
        assert "GREETING" not in env and not [k for k in env if "TOKEN" in k], env  # not in the Pod spec
        assert sid not in json.dumps(container["Config"]), "the Pod was made before the session"
        status, result = run_code(
            api, sid, "import os\ndef handler(e):\n    return [os.getuid(), os.environ.get('GREETING')]"
        )
        assert status == "completed" and result["return_value"] == [1000, "hello-from-bind"], result
        assert api.delete(f"/sessions/{sid}").status_code == 200
        assert wait_for(lambda: pod not in _pod_containers(eks_stack), timeout=30)


def test_a_template_created_and_updated_through_the_api_launches_on_eks(
    eks_stack: Stack,
    internet: str,  # noqa: F811 - the fixture
) -> None:
    docker("tag", "sandboxcp/python-basic:latest", f"{CUSTOM}:1")
    docker("tag", "sandboxcp/python-basic:latest", f"{CUSTOM}:2")
    probe = (
        "import socket\ndef handler(e):\n    try:\n"
        "        socket.create_connection((e['ip'], 8000), timeout=2).close()\n        return 'connected'\n"
        "    except OSError as exc:\n        return type(exc).__name__"
    )
    try:
        with eks_stack.client() as api:
            created = api.post(
                "/templates",
                json={
                    "id": "custom-eks",
                    "name": "custom on eks",
                    "image": f"{CUSTOM}:1",
                    "default_resources": {"cpu": "0.5", "memory": "256Mi", "disk": "1Gi"},
                    "security_context": {"network_enabled": True},
                },
            )
            assert created.status_code == 201, created.text
            sid = create_running_session(api, template_id="custom-eks")
            pod = api.get(f"/sessions/{sid}").json()["container_id"]
            container = _pod_containers(eks_stack)[pod]
            assert container["Config"]["Image"] == f"{CUSTOM}:1"
            assert container["Config"]["Labels"][NETWORK_LABEL] == "open"
            status, result = run_code(api, sid, probe, event={"ip": internet})
            assert status == "completed" and result["return_value"] == "connected", result  # network open
            api.delete(f"/sessions/{sid}")

            updated = api.put(
                "/templates/custom-eks",
                json={"image": f"{CUSTOM}:2", "security_context": {"network_enabled": False}},
            )
            assert updated.status_code == 200, updated.text
            sid = create_running_session(api, template_id="custom-eks")
            pod = api.get(f"/sessions/{sid}").json()["container_id"]
            container = _pod_containers(eks_stack)[pod]
            assert container["Config"]["Image"] == f"{CUSTOM}:2"
            assert container["Config"]["Labels"][NETWORK_LABEL] == "none"
            status, result = run_code(api, sid, probe, event={"ip": internet})
            # Dropped by the NetworkPolicy (a timeout), not refused: the server was listening all along.
            assert status == "completed" and result["return_value"] == "TimeoutError", result
            api.delete(f"/sessions/{sid}")
    finally:
        subprocess.run(["docker", "rmi", f"{CUSTOM}:1", f"{CUSTOM}:2"], capture_output=True, check=False)


def test_health_pings_eks(eks_stack: Stack) -> None:
    with eks_stack.client() as api:
        runtime = api.get("/health").json()["checks"]["runtime"]
    assert runtime["status"] == "healthy" and runtime["runtime"] == "eks", runtime
