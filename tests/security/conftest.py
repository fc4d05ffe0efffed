"""Adversarial tests: hostile code submitted through the public API into real sandboxes of a real local
stack, on both local runtimes (`process`: bubblewrap, `docker`). Two tenants per stack: t1 attacks, t2 is
the victim. Nothing here is mocked; a test that needs Docker starts it (tests/integration's fixtures) or
fails."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.conftest import Stack, start_stack, stop_stack
from tests.integration.conftest import create_running_session, docker_engine, run_code  # noqa: F401

pytestmark = pytest.mark.e2e

# Sandbox code that POSTs JSON over a unix socket and returns the status (or the error's name): what
# hostile code uses to reach the control plane's and the executor's sockets from inside a sandbox.
UNIX_POST = """
import http.client, json, socket

class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("sandbox", timeout=5)
        self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)

def post(path_on, url, body, headers):
    try:
        c = Unix(path_on)
        c.request("POST", url, json.dumps(body), {"Content-Type": "application/json", **headers})
        return c.getresponse().status
    except OSError as exc:
        return type(exc).__name__
"""


@dataclass
class Tenants:
    """A stack with an attacking tenant (t1) and a victim tenant (t2), each with a running session."""

    stack: Stack
    runtime: str
    attacker: httpx.Client
    victim: httpx.Client
    attacker_sid: str
    victim_sid: str

    def attack(self, code: str, timeout: float = 120, **kw) -> tuple[str, dict]:  # type: ignore[no-untyped-def]
        return run_code(self.attacker, self.attacker_sid, code, timeout=timeout, **kw)


def tenant_key(stack: Stack, tenant: str) -> str:
    """A new API key of `tenant` (through the admin keys endpoint, as `sandboxcp keys create` does)."""
    with stack.client() as admin:
        created = admin.post("/keys", json={"tenant_id": tenant, "admin": False})
    assert created.status_code == 201, created.text
    return str(created.json()["api_key"])


@pytest.fixture(scope="module", params=["process", "docker"])
def runtime_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The local stack on each local runtime (one per test module and runtime)."""
    if request.param == "docker":
        request.getfixturevalue("docker_engine")  # starts dockerd and builds the images, or fails
    s = start_stack(tmp_path_factory.mktemp(f"security-{request.param}"), runtime=request.param)
    s.runtime = request.param  # type: ignore[attr-defined]
    yield s
    stop_stack(s)


@pytest.fixture(scope="module")
def tenants(runtime_stack: Stack) -> Iterator[Tenants]:
    attacker = runtime_stack.client(tenant_key(runtime_stack, "t1-attacker"))
    victim = runtime_stack.client(tenant_key(runtime_stack, "t2-victim"))
    a_sid = create_running_session(attacker, timeout=60)
    v_sid = create_running_session(victim, timeout=60)
    yield Tenants(runtime_stack, runtime_stack.runtime, attacker, victim, a_sid, v_sid)  # type: ignore[attr-defined]
    for client, sid in ((attacker, a_sid), (victim, v_sid)):
        client.delete(f"/sessions/{sid}")
        client.close()
