"""The trust boundary on the ECS path (the stand-in: real containers, fenced like the sandbox security group),
attacked from inside a real sandbox of tenant t1 while t2's sandbox runs beside it:

- the callback token is in no environment (RunTask's overrides carry none; the bind brought it);
- the executor, bound once, refuses every later bind (so user code cannot rebind it to a token it knows);
- another sandbox's executor is unreachable (no sandbox-to-sandbox traffic: neither bind nor execute);
- of the host, only the sandbox-facing API answers: not the public API's port, nor a service listening on
  all of the host's addresses;
- through the sandbox-facing API, only the internal API and signed workspace requests pass: an AWS API
  call (DynamoDB's, to moto behind it) does not."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from sandboxcp.local.ecs_standin import TASK_LABEL
from tests.e2e.conftest import Stack, start_stack, stop_stack
from tests.integration.conftest import create_running_session, run_code, running_containers
from tests.security.conftest import tenant_key

pytestmark = pytest.mark.e2e

PROBE = r"""
import json, os, socket, urllib.request, urllib.error

def reach(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False

def post(url, body, headers=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=3).status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError as err:
        return type(err).__name__

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
    return {
        "token_in_an_environ": any(b"cb_sess_" in e or b"CALLBACK_TOKEN" in e for e in environs),
        "environs_read": len(environs),
        "rebind_self": post("http://127.0.0.1:8080/bind", rebind),
        "victim_executor": reach(event["victim_ip"], 8080),
        "victim_bind": post(f"http://{event['victim_ip']}:8080/bind", rebind),
        "host_public_api": reach(gw, event["public_port"]),
        "host_listener_on_all_addresses": reach(gw, event["host_port"]),
        "host_sandbox_api": reach(gw, api_port),
        "dynamodb_through_the_api": post(
            f"http://{gw}:{api_port}/", {"TableName": "sandboxcp-sessions"},
            {"X-Amz-Target": "DynamoDB_20120810.Scan",
             "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request"},
        ),
    }
"""


@pytest.fixture(scope="module")
def ecs_tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    stack = start_stack(tmp_path_factory.mktemp("security-ecs"), runtime="ecs")
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


def _task_ip(task_id: str) -> str:
    for container in running_containers(TASK_LABEL):
        if container["Config"]["Labels"][TASK_LABEL].endswith("/" + task_id):
            networks = container["NetworkSettings"]["Networks"]
            return str(next(n["IPAddress"] for name, n in networks.items() if name.endswith("-tasks")))
    raise AssertionError(f"no container for task {task_id}")


def test_an_ecs_sandbox_cannot_reach_past_its_boundary(ecs_tenants: dict[str, Any]) -> None:
    stack: Stack = ecs_tenants["stack"]
    attacker, victim = ecs_tenants["attacker"], ecs_tenants["victim"]
    victim_task = victim.get(f"/sessions/{ecs_tenants['victim_sid']}").json()["container_id"]
    own_task = attacker.get(f"/sessions/{ecs_tenants['attacker_sid']}").json()["container_id"]
    (own,) = [
        c
        for c in running_containers(TASK_LABEL)
        if c["Config"]["Labels"][TASK_LABEL].endswith("/" + own_task)
    ]
    env = dict(e.split("=", 1) for e in own["Config"]["Env"])
    api = urlsplit(env["SANDBOXCP_CALLBACK_URL"])  # the sandbox-facing API, as the task was given it
    # A host service on every address (what a careless daemon does): the fence must keep it out of reach.
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        event = {
            "gateway": api.hostname,
            "api_port": api.port,
            "public_port": urlsplit(stack.url).port,
            "host_port": listener.getsockname()[1],
            "victim_ip": _task_ip(victim_task),
            "own_session": ecs_tenants["attacker_sid"],
        }
        status, result = run_code(attacker, ecs_tenants["attacker_sid"], PROBE, event=event, timeout=120)
    assert status == "completed", result
    seen = result["return_value"]
    assert seen["environs_read"] >= 1 and seen["token_in_an_environ"] is False, seen
    assert seen["rebind_self"] == 409, seen
    assert seen["victim_executor"] is False and not isinstance(seen["victim_bind"], int), seen
    assert seen["host_public_api"] is False and seen["host_listener_on_all_addresses"] is False, seen
    assert seen["host_sandbox_api"] is True, seen
    assert seen["dynamodb_through_the_api"] in (403, 404), seen
    # The victim is untouched: its executor still runs its code, bound to its own session.
    status, result = run_code(victim, ecs_tenants["victim_sid"], "def handler(e):\n    return 'still mine'")
    assert status == "completed" and result["return_value"] == "still mine", result
