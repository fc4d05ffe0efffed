"""The tests' own look at the engine must not fail on a container removed while it looks (a Pod or task
whose delete finishes between `docker ps` and `docker inspect`: a flake seen once in a full run)."""

from __future__ import annotations

import uuid

from tests.integration.conftest import docker, inspect_present, running_containers


def test_a_container_removed_between_listing_and_inspection_is_left_out(docker_engine: None) -> None:
    label = f"sandboxcp.test.inspect={uuid.uuid4().hex}"
    kept = docker(
        "run", "-d", "--rm", "--label", label, "--entrypoint", "sleep", "sandboxcp/python-basic:latest", "60"
    ).stdout.strip()
    gone = docker(
        "run", "-d", "--label", label, "--entrypoint", "true", "sandboxcp/python-basic:latest"
    ).stdout.strip()
    try:
        docker("wait", gone)
        docker("rm", "-f", gone)
        assert [c["Id"] for c in inspect_present([kept, gone])] == [kept]
        assert [c["Id"] for c in running_containers(label)] == [kept]
    finally:
        docker("rm", "-f", kept, check=False)
    assert running_containers(label) == []
