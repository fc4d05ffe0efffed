"""The trust boundary on the eks path (the Kubernetes API stand-in: Pods as real containers, fenced by the
adapter's NetworkPolicies) and on the docker-remote path (the engine over TCP + TLS, sandboxes on fenced
networks), attacked from inside a real sandbox of tenant t1 while t2's sandbox runs beside it:

- the callback token is in no environment (the Pod spec / container config carries none; the bind
  brought it), and no unix socket of the control plane or of the engine is in the sandbox;
- the executor, bound once, refuses every later bind;
- another sandbox's executor is unreachable (its Pod IP / container address, and on docker-remote the
  port the engine published for it);
- of the host, only the sandbox-facing API answers: not the public API's port, not a service listening on
  all of the host's addresses, not the runtime's own API (the Kubernetes API server; the Docker engine's
  TLS port);
- nothing past the host either: a web server on another network is dropped (network `none`);
- through the sandbox-facing API, only the internal API and signed workspace requests pass: an AWS API
  call (DynamoDB's, to moto behind it) does not."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from sandboxcp.local.kube_standin import PID_LABEL as POD_PID_LABEL
from sandboxcp.local.kube_standin import POD_LABEL
from tests.e2e.conftest import Stack, start_stack, stop_stack
from tests.integration.conftest import create_running_session, inspect, run_code, running_containers
from tests.integration.test_eks_standin import internet  # noqa: F401 - a fixture
from tests.security.conftest import tenant_key

pytestmark = pytest.mark.e2e

PROBE = r"""
import json, os, socket, urllib.request, urllib.error

def reach(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except OSError as err:
        return type(err).__name__

def post(url, body, headers=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=3).status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError as err:
        return type(err).__name__

def sockets():
    found = []
    for top in ("/run", "/var/run", "/tmp", "/workspace"):
        for root, dirs, files in os.walk(top):
            for name in files + dirs:
                path = os.path.join(root, name)
                try:
                    if os.path.exists(path) and __import__("stat").S_ISSOCK(os.lstat(path).st_mode):
                        found.append(path)
                except OSError:
                    pass
    return found

def handler(event):
    environs = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                environs.append(open(f"/proc/{pid}/environ", "rb").read())
            except OSError:
                pass
    gw, api_port = event["gateway"], event["api_port"]
    own = event["own_session"]
    rebind = {"session_id": own, "callback_token": "cb_" + own + ".mine", "env": {}}
    seen = {
        "token_in_an_environ": any(b"cb_sess_" in e or b"CALLBACK_TOKEN" in e for e in environs),
        "environs_read": len(environs),
        "unix_sockets": sockets(),
        "rebind_self": post("http://127.0.0.1:8080/bind", rebind),
        "victim_bind": post(f"http://{event['victim_ip']}:8080/bind", rebind),
        "dynamodb_through_the_api": post(
            f"http://{gw}:{api_port}/", {"TableName": "sandboxcp-sessions"},
            {"X-Amz-Target": "DynamoDB_20120810.Scan",
             "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request"},
        ),
    }
    for name, (host, port) in event["targets"].items():
        seen[name] = reach(host, port)
    return seen
"""


def _reached(outcome: Any) -> bool:
    return outcome in ("connected", "refused")  # refused: the packet got to the host, nothing listens


def _env(container: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container["Config"]["Env"])


def _sandbox_of(stack: Stack, container_id: str) -> dict[str, Any]:
    """`docker inspect` of a sandbox by the container id the API reports (a Pod name on eks)."""
    if stack.runtime == "eks":
        for container in running_containers(f"{POD_PID_LABEL}={stack.process.pid}"):
            if container["Config"]["Labels"].get(POD_LABEL, "").endswith("/" + container_id):
                return container
        raise AssertionError(f"no container plays Pod {container_id}")
    found = inspect(container_id.partition("@")[0])
    assert found is not None, f"no container {container_id}"
    return found


def _address(stack: Stack, container: dict[str, Any]) -> str:
    """The sandbox's address on the network the stand-in put it on."""
    networks = container["NetworkSettings"]["Networks"]
    return str(next(iter(networks.values()))["IPAddress"])


def _runtime_api_port(stack: Stack) -> int:
    """The stand-in's own API port, as the stack printed it (EKS_ENDPOINT or DOCKER_HOST)."""
    name = "EKS_ENDPOINT" if stack.runtime == "eks" else "DOCKER_HOST"
    found = re.search(rf"^{name}=\S+:(\d+)$", stack.output(), re.M)
    assert found, stack.output()[-2000:]
    return int(found.group(1))


@pytest.fixture(scope="module", params=["eks", "docker-remote"])
def remote_tenants(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, docker_engine: None
) -> Iterator[dict[str, Any]]:
    stack = start_stack(tmp_path_factory.mktemp(f"security-{request.param}"), runtime=request.param)
    try:
        attacker = stack.client(tenant_key(stack, "t1-attacker"))
        victim = stack.client(tenant_key(stack, "t2-victim"))
        yield {
            "stack": stack,
            "attacker": attacker,
            "attacker_sid": create_running_session(attacker, timeout=60),
            "victim": victim,
            "victim_sid": create_running_session(victim, timeout=60),
        }
    finally:
        stop_stack(stack)


def test_a_remote_runtime_sandbox_cannot_reach_past_its_boundary(
    remote_tenants: dict[str, Any],
    internet: str,  # noqa: F811 - the fixture
) -> None:
    stack: Stack = remote_tenants["stack"]
    attacker, victim = remote_tenants["attacker"], remote_tenants["victim"]
    victim_session = victim.get(f"/sessions/{remote_tenants['victim_sid']}").json()
    own_session = attacker.get(f"/sessions/{remote_tenants['attacker_sid']}").json()
    own = _sandbox_of(stack, own_session["container_id"])
    victim_container = _sandbox_of(stack, victim_session["container_id"])
    env = _env(own)
    assert not [k for k in env if "TOKEN" in k], env
    api = urlsplit(env["SANDBOXCP_CALLBACK_URL"])  # the sandbox-facing API, as the sandbox was given it
    assert api.scheme == "http" and api.hostname and api.port, env
    gateway = api.hostname
    targets: dict[str, tuple[str, int]] = {
        "host_sandbox_api": (gateway, api.port),
        "victim_executor": (_address(stack, victim_container), 8080),
        "host_public_api": (gateway, int(urlsplit(stack.url).port or 0)),
        "host_runtime_api": (gateway, _runtime_api_port(stack)),  # Kubernetes API / Docker TLS port
        "internet": (internet, 8000),
    }
    if stack.runtime == "docker-remote":
        ports = victim_container["NetworkSettings"]["Ports"]["8080/tcp"]
        targets["victim_published_port"] = (gateway, int(ports[0]["HostPort"]))
    # A host service on every address (what a careless daemon does): the fence must keep it out of reach.
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        targets["host_listener_on_all_addresses"] = (gateway, listener.getsockname()[1])
        event = {
            "gateway": gateway,
            "api_port": api.port,
            "victim_ip": targets["victim_executor"][0],
            "own_session": remote_tenants["attacker_sid"],
            "targets": targets,
        }
        status, result = run_code(attacker, remote_tenants["attacker_sid"], PROBE, event=event, timeout=120)
    assert status == "completed", result
    seen = result["return_value"]
    assert seen["environs_read"] >= 1 and seen["token_in_an_environ"] is False, seen
    assert seen["unix_sockets"] == [], seen  # no control plane socket, no engine socket
    assert seen["rebind_self"] == 409, seen
    assert seen["host_sandbox_api"] == "connected", seen
    unreachable = [n for n in targets if n != "host_sandbox_api" and _reached(seen[n])]
    assert not unreachable, seen
    assert not isinstance(seen["victim_bind"], int), seen
    assert seen["dynamodb_through_the_api"] in (403, 404), seen
    # The victim is untouched: its executor still runs its code, bound to its own session.
    status, result = run_code(
        victim, remote_tenants["victim_sid"], "def handler(e):\n    return 'still mine'"
    )
    assert status == "completed" and result["return_value"] == "still mine", result
