"""Integration tests on real engines. The Docker fixtures start the engine (scripts/start_dockerd.sh)
and build the template images (scripts/build_images.sh); when either fails the tests fail with the
script's output - they never skip. Stacks are the real local stack (`sandboxcp local`), started with
tests/e2e's helpers."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, start_stack, stop_stack, wait_for

REPO = Path(__file__).resolve().parents[2]


def _run_script(name: str, timeout: float) -> None:
    try:
        proc = subprocess.run(
            ["bash", str(REPO / "scripts" / name)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"scripts/{name} did not finish within {timeout:.0f} s")
    if proc.returncode != 0:
        pytest.fail(
            f"scripts/{name} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A running Docker engine with the template images built (both idempotent and quick when done)."""
    _run_script("start_dockerd.sh", 600)
    _run_script("build_images.sh", 1200)


@pytest.fixture(scope="module")
def docker_stack(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("docker-stack"), runtime="docker")
    yield s
    stop_stack(s)


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The docker CLI, for the tests' own look at the engine (the adapter itself speaks the API)."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=60)


def inspect(container: str) -> dict[str, Any] | None:
    out = docker("inspect", container, check=False)
    return json.loads(out.stdout)[0] if out.returncode == 0 else None


def running_containers(label: str) -> list[dict[str, Any]]:
    """`docker inspect` of the running containers with this label (`key` or `key=value`). A container
    removed between the listing and the inspection (a delete finishing meanwhile) is left out, not an
    error: the engine answers the others and "No such object" for it."""
    return inspect_present(docker("ps", "-q", "--filter", f"label={label}").stdout.split())


def inspect_present(ids: list[str]) -> list[dict[str, Any]]:
    """`docker inspect` of those of these containers that still exist."""
    if not ids:
        return []
    out = docker("inspect", *ids, check=False)
    vanished = [line for line in out.stderr.splitlines() if line.strip()]
    if out.returncode != 0 and not all("No such object" in line for line in vanished):
        raise AssertionError(f"docker inspect failed: {out.stderr}")
    return list(json.loads(out.stdout or "[]"))


def create_running_session(api: httpx.Client, timeout: float = 30, **body: Any) -> str:
    created = api.post("/sessions", json={"template_id": "python-basic", **body})
    assert created.status_code == 201, created.text
    sid = str(created.json()["session_id"])
    running = wait_for(lambda: api.get(f"/sessions/{sid}").json()["status"] != "creating", timeout=timeout)
    session = api.get(f"/sessions/{sid}").json()
    assert running and session["status"] == "running", f"session not running: {session}"
    return sid


def run_code(
    api: httpx.Client,
    sid: str,
    code: str,
    event: dict[str, Any] | None = None,
    timeout: float = 60,
    language: str = "python",
) -> tuple[str, dict[str, Any]]:
    """Execute `code` in the session; returns the execution's final status and its result."""
    body: dict[str, Any] = {"code": code, "language": language, "event": event or {}}
    submitted = api.post(f"/sessions/{sid}/execute", json=body)
    assert submitted.status_code == 200, submitted.text
    eid = submitted.json()["execution_id"]
    deadline = time.monotonic() + timeout
    status = "pending"
    while time.monotonic() < deadline:
        polled = api.get(f"/executions/{eid}/status")
        body = polled.json()
        assert polled.status_code == 200 and "status" in body, f"{eid} status: {polled.status_code} {body}"
        status = body["status"]
        if status not in ("pending", "running"):
            break
        time.sleep(0.1)
    result = api.get(f"/executions/{eid}/result")
    return status, (result.json() if result.status_code == 200 else {"http_status": result.status_code})
