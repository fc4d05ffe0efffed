"""Container monitoring on the real local stack: listing, details and logs of a bubblewrap sandbox."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e


def _running_session(api) -> str:  # type: ignore[no-untyped-def]
    created = api.post("/sessions", json={"template_id": "python-basic"})
    assert created.status_code == 201, created.text
    sid = created.json()["session_id"]
    assert wait_for(lambda: api.get(f"/sessions/{sid}").json()["status"] == "running", timeout=10), api.get(
        f"/sessions/{sid}"
    ).json()
    return str(sid)


def test_containers_list_details_and_logs(stack):  # type: ignore[no-untyped-def]
    with stack.client() as api:
        sid = _running_session(api)
        eid = api.post(
            f"/sessions/{sid}/execute",
            json={"code": "def handler(event):\n    return 1", "language": "python"},
        ).json()["execution_id"]
        assert wait_for(
            lambda: api.get(f"/executions/{eid}/status").json()["status"] == "completed", timeout=10
        )
        # The suite's --runtime, as the API names it: docker-remote is the docker runtime on a remote
        # (TCP + TLS) engine, its node named by the engine's host.
        runtime = "docker" if stack.runtime == "docker-remote" else stack.runtime
        node = {"process": "local", "docker": "local-docker"}.get(runtime, f"{runtime}:sandboxcp-sandboxes")
        if stack.runtime == "docker-remote":
            node = "127.0.0.1"
        cid = api.get(f"/containers/{sid}").json()["container_id"]
        if runtime == "process":
            assert cid == f"proc-{sid}"
        other_runtime = "docker" if runtime != "docker" else "process"

        listed = api.get("/containers", params={"status": "running", "runtime_type": runtime})
        assert listed.status_code == 200, listed.text
        mine = [c for c in listed.json()["containers"] if c["session_id"] == sid]
        assert len(mine) == 1 and mine[0]["container_id"] == cid
        assert (
            api.get("/containers", params={"status": "running", "runtime_type": other_runtime}).json()[
                "total"
            ]
            == 0
        )

        detail = api.get(f"/containers/{cid}")
        assert detail.status_code == 200, detail.text
        info = detail.json()
        assert info["session_id"] == sid and info["template_id"] == "python-basic"
        assert info["status"] == "running" and info["runtime_type"] == runtime
        assert info["node_name"] == node
        assert info["resources"]["memory"] == "512Mi"
        assert info["uptime_seconds"] >= 0
        assert api.get(f"/containers/{sid}").json()["container_id"] == cid

        full = api.get(f"/containers/{cid}/logs")
        assert full.status_code == 200
        assert full.headers["content-type"].startswith("text/plain")
        lines = full.text.splitlines()
        assert len(lines) >= 3, full.text
        assert any("sandbox-executor ready" in line for line in lines), full.text
        assert any(f"execution_id={eid}" in line for line in lines), full.text

        two = api.get(f"/containers/{cid}/logs", params={"tail": 2})
        assert two.status_code == 200
        assert two.text.splitlines() == lines[-2:]
        assert two.text.endswith("\n")

        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
        assert api.get(f"/containers/{cid}/logs", params={"since": future}).text == ""
        assert api.get(f"/containers/{cid}/logs", params={"tail": 0}).status_code == 400

        # Another tenant sees none of it.
        key = api.post("/keys", json={"tenant_id": "tenant-e2e-other"}).json()["api_key"]
        with stack.client(key) as other:
            assert other.get(f"/containers/{cid}").status_code == 404
            assert other.get(f"/containers/{cid}/logs").status_code == 404
            assert sid not in [c["session_id"] for c in other.get("/containers").json()["containers"]]

        # Live gauges and health on the same stack.
        metrics = api.get("/metrics")
        assert metrics.status_code == 200
        running = re.search(r'^sandboxcp_sessions_active\{status="running"\} (\d+)$', metrics.text, re.M)
        assert running and int(running.group(1)) >= 1, metrics.text
        health = api.get("/health").json()
        assert health["status"] == "healthy", health
        assert health["checks"]["runtime"] == {
            **health["checks"]["runtime"],
            "status": "healthy",
            "runtime": runtime,
        }

        # After termination the container is listed as terminated and its logs are still readable.
        assert api.delete(f"/sessions/{sid}").status_code == 200
        # An ended container is found by an admin through its session (or an id embedding it, process):
        # by-container-id lookups of other runtimes search live containers only (services/containers.py).
        ref = cid if runtime == "process" else sid
        ended = api.get(f"/containers/{ref}").json()
        assert ended["status"] == "terminated"
        assert cid in [
            c["container_id"]
            for c in api.get("/containers", params={"status": "terminated"}).json()["containers"]
        ]
        assert api.get(f"/containers/{ref}/logs", params={"tail": 1}).text.count("\n") == 1
