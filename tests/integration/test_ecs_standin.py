"""The ECS stand-in (sandboxcp.local.ecs_standin) with the unchanged ecs runtime adapter: RunTask starts a
real container from the task definition and overrides, with Fargate's volume semantics, its own address,
the task metadata endpoint v4 and a fenced network; the executor starts unbound on TCP and is bound over
HTTP at the address DescribeTasks reports; nothing secret is in RunTask's overrides."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from sandboxcp.adapters.executor_client import HttpExecutorClient
from sandboxcp.adapters.runtimes.ecs import EcsRuntime, task_definition_family
from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.ports import SandboxSpec
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.local.aws import MotoAws
from sandboxcp.local.ecs_standin import EcsStandIn
from tests.e2e.conftest import wait_for
from tests.integration.conftest import docker

REGION = "us-east-1"
CLUSTER = "sandboxes"
LOG_GROUP = "/sandboxcp/sandboxes"
EXECUTION_ROLE = "arn:aws:iam::123456789012:role/sandbox-execution"
IMAGE = "sandboxcp/python-basic:latest"
SESSION = "sess_standinstandin01"
TOKEN = "cb_sess_standinstandin01.a-secret-callback-token-value"


class Callbacks:
    """The internal API as sandboxes see it: a server on the task network's gateway recording calls."""

    def __init__(self, host: str) -> None:
        self.calls: list[dict[str, Any]] = []
        self._server = make_server(host, 0, self._app, threaded=True)
        self.url = f"http://{host}:{self._server.server_port}"
        self.port = int(self._server.server_port)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.calls.append(
            {
                "path": request.path,
                "authorization": request.headers.get("Authorization", ""),
                "body": request.get_json(silent=True),
                "from": environ.get("REMOTE_ADDR"),
            }
        )
        return Response(json.dumps({"status": "ok"}), content_type="application/json")(
            environ, start_response
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def ecs_world(docker_engine: None) -> Iterator[dict[str, Any]]:
    moto = MotoAws()
    moto.start()
    standin = EcsStandIn(moto.endpoint)
    standin.start()
    callbacks = Callbacks(standin.gateway)
    standin.allow(callbacks.port)
    aws = {"region_name": REGION, "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    ec2 = boto3.client("ec2", endpoint_url=moto.endpoint, **aws)
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24")["Subnet"]["SubnetId"]
    closed = ec2.create_security_group(GroupName="none", Description="no egress", VpcId=vpc)["GroupId"]
    ec2.revoke_security_group_egress(
        GroupId=closed, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    opened = ec2.create_security_group(GroupName="open", Description="egress", VpcId=vpc)["GroupId"]
    ecs = boto3.client("ecs", endpoint_url=standin.endpoint, **aws)
    logs = boto3.client("logs", endpoint_url=standin.endpoint, **aws)
    ecs.create_cluster(clusterName=CLUSTER)
    logs.create_log_group(logGroupName=LOG_GROUP)
    runtime = EcsRuntime(
        cluster=CLUSTER,
        subnets=[subnet],
        security_groups=[closed],
        open_security_groups=[opened],
        task_definition_prefix="sandboxcp-",
        log_group=LOG_GROUP,
        callback_base_url=callbacks.url,
        region=REGION,
        execution_role_arn=EXECUTION_ROLE,
        start_wait_s=30,
        ecs_client=ecs,
        logs_client=logs,
    )
    # The deployment's own task definition of the default image (what CDK registers).
    ecs.register_task_definition(**runtime.task_definition_request("sandboxcp-python-basic", IMAGE))
    try:
        yield {
            "standin": standin,
            "runtime": runtime,
            "ecs": ecs,
            "callbacks": callbacks,
            "subnet": subnet,
            "closed": closed,
            "opened": opened,
        }
    finally:
        callbacks.close()
        standin.stop()
        moto.stop()


def _spec(**overrides: Any) -> SandboxSpec:
    base: dict[str, Any] = {
        "session_id": SESSION,
        "image": IMAGE,
        "resources": ResourceLimit(cpu="0.5", memory="256Mi", disk="1Gi"),
        "env": {"SANDBOXCP_SESSION_ID": SESSION, "USER_SECRET": "user-env-value"},
        "callback_token": TOKEN,
    }
    base.update(overrides)
    return SandboxSpec(**base)


def _run_script(world: dict[str, Any], script: str, *, network_open: bool = False) -> tuple[int, list[str]]:
    """Run `script` (Python) as a task of a probe task definition; its exit code and its log lines."""
    runtime: EcsRuntime = world["runtime"]
    request = runtime.task_definition_request("sandboxcp-probe", IMAGE)
    container = request["containerDefinitions"][0]
    container["entryPoint"] = ["/usr/bin/python3.11", "-c"]
    container["command"] = [script]
    # A mount point the image does not declare: Fargate makes it root's.
    request["volumes"].append({"name": "scratch"})
    container["mountPoints"].append({"sourceVolume": "scratch", "containerPath": "/scratch"})
    world["ecs"].register_task_definition(**request)
    group = world["opened"] if network_open else world["closed"]
    task = world["ecs"].run_task(
        cluster=CLUSTER,
        taskDefinition="sandboxcp-probe",
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [world["subnet"]], "securityGroups": [group]}
        },
    )["tasks"][0]
    arn = task["taskArn"]

    def stopped() -> dict[str, Any] | None:
        (described,) = world["ecs"].describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"]
        return described if described["lastStatus"] == "STOPPED" else None

    final = wait_for(stopped, timeout=30)
    assert final, "the probe task did not stop"
    assert final["stopCode"] == "EssentialContainerExited"
    return int(final["containers"][0]["exitCode"]), runtime.logs(arn, tail=200)


def _health(url: str | None) -> dict[str, Any] | None:
    try:
        return dict(httpx.get(f"{url}/health", timeout=2).json())
    except httpx.HTTPError:
        return None


def test_a_uid_1000_sandbox_writes_tmp_and_workspace_on_fargate_volumes(ecs_world: dict[str, Any]) -> None:
    """Issue 15 point 1: the image declares /workspace and /tmp as VOLUME, so the task volumes start as
    copies of them (uid 1000, 1777), not as root-owned mount points; an undeclared one stays root's."""
    script = (
        "import os, json\n"
        "out = {'uid': os.getuid()}\n"
        "for d in ('/tmp', '/workspace', '/scratch', '/opt'):\n"
        "    try:\n"
        "        open(os.path.join(d, 'probe.txt'), 'w').write('x'); out[d] = 'written'\n"
        "    except OSError as e:\n"
        "        out[d] = type(e).__name__\n"
        "    out[d + ' owner'] = os.stat(d).st_uid\n"
        "print('RESULT ' + json.dumps(out))\n"
    )
    code, lines = _run_script(ecs_world, script)
    assert code == 0, lines
    (result,) = [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("RESULT ")]
    assert result["uid"] == 1000
    assert result["/tmp"] == "written" and result["/workspace"] == "written"
    assert result["/workspace owner"] == 1000
    assert result["/scratch"] == "PermissionError" and result["/scratch owner"] == 0
    assert result["/opt"] in ("OSError", "PermissionError")  # the read-only root


def test_network_none_reaches_only_what_the_host_allows(ecs_world: dict[str, Any]) -> None:
    standin: EcsStandIn = ecs_world["standin"]
    callbacks: Callbacks = ecs_world["callbacks"]
    script = (
        "import socket, json, os\n"
        "def reach(host, port):\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=2).close(); return True\n"
        "    except OSError:\n"
        "        return False\n"
        f"gw = {standin.gateway!r}\n"
        f"out = {{'allowed': reach(gw, {callbacks.port}), 'other_port': reach(gw, 22),\n"
        "       'interfaces': len(os.listdir('/sys/class/net')) - 1,\n"
        "       'metadata': bool(os.environ.get('ECS_CONTAINER_METADATA_URI_V4'))}\n"
        "print('RESULT ' + json.dumps(out))\n"
    )
    _code, lines = _run_script(ecs_world, script)
    (closed,) = [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("RESULT ")]
    # One interface (the task's ENI on the internal network: no route out); open adds the egress one.
    assert closed == {"allowed": True, "other_port": False, "interfaces": 1, "metadata": True}
    _code, lines = _run_script(ecs_world, script, network_open=True)
    (opened,) = [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("RESULT ")]
    assert opened["interfaces"] == 2 and opened["allowed"] is True and opened["other_port"] is False


def test_the_executor_is_bound_over_tcp_at_the_address_ecs_reports(ecs_world: dict[str, Any]) -> None:
    runtime: EcsRuntime = ecs_world["runtime"]
    standin: EcsStandIn = ecs_world["standin"]
    callbacks: Callbacks = ecs_world["callbacks"]
    handle = runtime.start(_spec())
    try:
        record = standin.task(handle.container_id)
        assert record is not None and record.ip
        assert handle.executor_url == f"http://{record.ip}:8080"
        assert handle.node == f"ecs:{CLUSTER}"
        # Nothing secret reaches RunTask (CloudTrail) or DescribeTasks: no token, no session variable.
        (task,) = ecs_world["ecs"].describe_tasks(cluster=CLUSTER, tasks=[handle.container_id])["tasks"]
        recorded = json.dumps(task["overrides"])
        assert TOKEN not in recorded and "USER_SECRET" not in recorded and "user-env-value" not in recorded
        inspected = json.loads(docker("inspect", record.container_id).stdout)[0]
        assert not [e for e in inspected["Config"]["Env"] if TOKEN in e or "USER_SECRET" in e]
        assert inspected["Config"]["User"] == "1000:1000"
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True
        assert inspected["HostConfig"]["CapDrop"] == ["ALL"]
        assert inspected["HostConfig"]["Memory"] == 256 * 1024 * 1024
        assert inspected["HostConfig"]["NanoCpus"] == 512 / 1024 * 1e9

        health = wait_for(
            lambda: _health(handle.executor_url), timeout=10
        )  # RUNNING: started, maybe not listening
        assert health and health["bound"] is False  # started unbound: nothing for anyone to use yet
        client = HttpExecutorClient()
        client.bind(handle.executor_url, SESSION, TOKEN, {"USER_SECRET": "user-env-value"}, wait_s=10)
        client.bind(handle.executor_url, SESSION, TOKEN, {"USER_SECRET": "user-env-value"})  # a retry: same
        with pytest.raises(SandboxUnavailable, match="409"):
            client.bind(handle.executor_url, SESSION, "cb_sess_standinstandin01.another-token-xxxxx", {})
        assert httpx.get(f"{handle.executor_url}/health", timeout=5).json()["bound"] is True

        # The executor reports over HTTP with its token; it found its address in the metadata endpoint v4.
        ready = wait_for(
            lambda: [c for c in callbacks.calls if c["path"].endswith("/container_ready")], timeout=10
        )
        assert ready, callbacks.calls
        assert ready[0]["authorization"] == f"Bearer {TOKEN}"
        assert ready[0]["from"] == record.ip
        assert ready[0]["body"]["executor_url"] == handle.executor_url
        assert runtime.state(handle.container_id) == "running"
        assert any(s.container_id == handle.container_id for s in runtime.list_managed())
    finally:
        runtime.destroy(handle.container_id)
    assert wait_for(
        lambda: runtime.state(handle.container_id) == "exited" and standin.task(handle.container_id).stopped,
        timeout=20,
    )
    assert docker("inspect", record.container_id, check=False).returncode != 0  # container removed
    (task,) = ecs_world["ecs"].describe_tasks(cluster=CLUSTER, tasks=[handle.container_id])["tasks"]
    assert task["lastStatus"] == "STOPPED" and task["stoppedReason"] == "sandbox terminated"
    assert any(
        '"event": "starting"' in line or "starting" in line for line in runtime.logs(handle.container_id)
    )


def test_a_templates_own_image_gets_a_registered_hardened_task_definition(ecs_world: dict[str, Any]) -> None:
    """A template created through the API names its own image: the adapter registers a task definition
    per image reference, so a PUT that changes the image changes the task definition."""
    runtime: EcsRuntime = ecs_world["runtime"]
    custom = "registry.sandboxcp.test/team/custom-python:1"
    docker("tag", IMAGE, custom)
    try:
        handle = runtime.start(_spec(image=custom, session_id="sess_customcustom0001"))
        runtime.destroy(handle.container_id)
        family = task_definition_family("sandboxcp-", custom)
        assert family.startswith("sandboxcp-custom-python-") and family != task_definition_family(
            "sandboxcp-", "registry.sandboxcp.test/team/custom-python:2"
        )
        (task,) = ecs_world["ecs"].describe_tasks(cluster=CLUSTER, tasks=[handle.container_id])["tasks"]
        assert task["taskDefinitionArn"].split("/")[-1].startswith(family + ":")
        described = ecs_world["ecs"].describe_task_definition(taskDefinition=family)["taskDefinition"]
        (container,) = described["containerDefinitions"]
        assert container["image"] == custom and container["user"] == "1000:1000"
        assert container["readonlyRootFilesystem"] is True
        assert described.get("taskRoleArn") is None and described["executionRoleArn"] == EXECUTION_ROLE
    finally:
        docker("rmi", custom, check=False)


def test_a_missing_image_stops_the_task_with_ecs_reason(ecs_world: dict[str, Any]) -> None:
    runtime: EcsRuntime = ecs_world["runtime"]
    with pytest.raises(SandboxUnavailable, match="CannotPullContainerError"):
        runtime.start(
            _spec(image="registry.sandboxcp.test/team/not-built:1", session_id="sess_missingmissing01")
        )


def test_ping_describes_the_cluster(ecs_world: dict[str, Any]) -> None:
    runtime: EcsRuntime = ecs_world["runtime"]
    assert runtime.ping() is True
    other = EcsRuntime(
        cluster="no-such-cluster", subnets=["s"], security_groups=["g"], ecs_client=ecs_world["ecs"]
    )
    assert other.ping() is False
