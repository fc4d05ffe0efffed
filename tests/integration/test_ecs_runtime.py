"""The ecs runtime against moto: RunTask with per-session overrides, status mapping, StopTask,
CloudWatch logs, and failures mapped to SandboxUnavailable."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.moto_api import state_manager

from sandboxcp.adapters.runtimes.ecs import (
    EcsRuntime,
    fargate_size,
    is_deployment_image,
    task_definition_family,
    task_definition_problems,
    template_id_from_image,
)
from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.ports import SandboxSpec
from sandboxcp.domain.resources import ResourceLimit

REGION = "us-east-1"
CLUSTER = "sandboxes"
LOG_GROUP = "/sandboxcp/sandboxes"
CALLBACK = "https://internal.example.test/prod"
TOKEN = "cb_sess_abcdefghijklmnop.secret-token-value"
SESSION = "sess_abcdefghijklmnop"


def _container(**extra: Any) -> dict[str, Any]:
    return {
        "name": "executor",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sandboxcp/python-basic:latest",
        "memory": 512,  # moto needs container-level memory
        "essential": True,
        "user": "1000:1000",
        "readonlyRootFilesystem": True,
        "linuxParameters": {"capabilities": {"drop": ["ALL"]}, "initProcessEnabled": True},
        "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": LOG_GROUP,
                "awslogs-region": REGION,
                "awslogs-stream-prefix": "sandbox",
            },
        },
        **extra,
    }


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # moto moves a task one lifecycle step per DescribeTasks by default; keep it RUNNING until stopped.
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**6})
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        # moto's RunTask reads the ENI's private DNS name, which exists only with DNS hostnames on.
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
        sg = ec2.create_security_group(GroupName="sandboxes", Description="sandboxes", VpcId=vpc)["GroupId"]
        ecs = boto3.client("ecs", region_name=REGION)
        ecs.create_cluster(clusterName=CLUSTER)
        common = {
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "512",
            "memory": "1024",
            "executionRoleArn": "arn:aws:iam::123456789012:role/sandbox-execution",
        }
        ecs.register_task_definition(
            family="sandboxcp-python-basic", containerDefinitions=[_container()], **common
        )
        ecs.register_task_definition(
            family="sandboxcp-with-role",
            taskRoleArn="arn:aws:iam::123456789012:role/too-powerful",
            containerDefinitions=[_container()],
            **common,
        )
        logs = boto3.client("logs", region_name=REGION)
        logs.create_log_group(logGroupName=LOG_GROUP)
        runtime = EcsRuntime(
            cluster=CLUSTER,
            subnets=[subnet],
            security_groups=[sg],
            task_definition_prefix="sandboxcp-",
            log_group=LOG_GROUP,
            callback_base_url=CALLBACK,
            region=REGION,
        )
        try:
            yield {"runtime": runtime, "ecs": ecs, "logs": logs, "subnet": subnet, "sg": sg}
        finally:
            state_manager.unset_transition("ecs::task")


def _spec(**overrides: Any) -> SandboxSpec:
    base: dict[str, Any] = {
        "session_id": SESSION,
        "image": "sandboxcp/python-basic:latest",
        "resources": ResourceLimit(cpu="1", memory="512Mi", disk="1Gi"),
        "network_enabled": False,
        "env": {"SANDBOXCP_SESSION_ID": SESSION, "USER_VAR": "x"},
        "callback_token": TOKEN,
    }
    base.update(overrides)
    return SandboxSpec(**base)


def _env(task: dict[str, Any]) -> dict[str, str]:
    (override,) = task["overrides"]["containerOverrides"]
    assert override["name"] == "executor"
    return {e["name"]: e["value"] for e in override["environment"]}


def test_start_runs_a_fargate_task_with_the_session_overrides(aws: dict[str, Any]) -> None:
    runtime: EcsRuntime = aws["runtime"]
    handle = runtime.start(_spec())
    # The task id (ECS takes it with the cluster; a plain path segment in /containers/{id}).
    assert "/" not in handle.container_id and len(handle.container_id) >= 32
    assert handle.node == f"ecs:{CLUSTER}"
    (task,) = aws["ecs"].describe_tasks(cluster=CLUSTER, tasks=[handle.container_id], include=["TAGS"])[
        "tasks"
    ]
    # start waits for RUNNING and answers the executor's address as ECS reports it (the ENI's IPv4).
    details = {d["name"]: d["value"] for a in task["attachments"] for d in a["details"]}
    assert handle.executor_url == f"http://{details['privateIPv4Address']}:8080"
    assert task["taskArn"].endswith("/" + handle.container_id)
    assert task["launchType"] == "FARGATE"
    assert task["startedBy"] == SESSION
    assert task["taskDefinitionArn"].split("/")[-1].startswith("sandboxcp-python-basic:")
    env = _env(task)
    # No secret in RunTask (CloudTrail records it, DescribeTasks returns it): the token and the session's
    # variables reach the executor in the bind body; the executor starts unbound on TCP.
    assert "SANDBOXCP_CALLBACK_TOKEN" not in env and "USER_VAR" not in env
    assert TOKEN not in json.dumps(task["overrides"])
    assert env["SANDBOXCP_SESSION_ID"] == SESSION
    assert env["SANDBOXCP_CALLBACK_URL"] == CALLBACK
    assert env["SANDBOXCP_LISTEN"] == "tcp:0.0.0.0:8080"
    assert env["SANDBOXCP_WORKSPACE"] == "/workspace"
    # 1 vCPU / 512 MiB rounds up to the smallest Fargate size (1024 units, 2 GiB); the container keeps
    # a hard limit of exactly what the session asked for.
    assert task["overrides"]["cpu"] == "1024"
    assert task["overrides"]["memory"] == "2048"
    (container_override,) = task["overrides"]["containerOverrides"]
    assert container_override["memory"] == 512
    assert container_override["cpu"] == 1024
    assert "ephemeralStorage" not in task["overrides"]

    tags = {t["key"]: t["value"] for t in task["tags"]}
    assert tags["sandboxcp:session"] == SESSION
    assert tags["sandboxcp:network"] == "disabled"
    assert all(TOKEN not in v and "secret" not in v for v in tags.values())


def test_run_task_request_uses_private_networking(aws: dict[str, Any]) -> None:
    runtime: EcsRuntime = aws["runtime"]
    request = runtime.run_task_request(
        _spec(resources=ResourceLimit(cpu="0.5", memory="8Gi", disk="30Gi")), "sandboxcp-python-basic"
    )
    vpc = request["networkConfiguration"]["awsvpcConfiguration"]
    assert vpc == {"subnets": [aws["subnet"]], "securityGroups": [aws["sg"]], "assignPublicIp": "DISABLED"}
    assert request["launchType"] == "FARGATE"
    assert request["enableExecuteCommand"] is False
    # 0.5 vCPU cannot have 8 GiB on Fargate: the cpu steps up to 1 vCPU.
    assert (request["overrides"]["cpu"], request["overrides"]["memory"]) == ("1024", "8192")
    assert request["overrides"]["ephemeralStorage"] == {"sizeInGiB": 30}
    handle = runtime.start(_spec(resources=ResourceLimit(cpu="0.5", memory="8Gi", disk="30Gi")))
    (task,) = aws["ecs"].describe_tasks(cluster=CLUSTER, tasks=[handle.container_id])["tasks"]
    assert task["overrides"]["ephemeralStorage"] == {"sizeInGiB": 30}


def test_state_follows_the_task_and_destroy_stops_it(aws: dict[str, Any]) -> None:
    runtime: EcsRuntime = aws["runtime"]
    handle = runtime.start(_spec())
    assert runtime.state(handle.container_id) == "running"
    runtime.destroy(handle.container_id)
    assert runtime.state(handle.container_id) == "exited"
    (task,) = aws["ecs"].describe_tasks(cluster=CLUSTER, tasks=[handle.container_id])["tasks"]
    assert task["stoppedReason"] == "sandbox terminated"
    runtime.destroy(handle.container_id)  # already stopped: still success


def test_unknown_task_is_missing_and_destroying_it_succeeds(aws: dict[str, Any]) -> None:
    runtime: EcsRuntime = aws["runtime"]
    runtime.start(_spec())  # the cluster has tasks, just not this one
    unknown = f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/0123456789abcdef0123456789abcdef"
    assert runtime.state(unknown) == "missing"
    runtime.destroy(unknown)


@pytest.mark.parametrize(
    ("last_status", "expected"),
    [
        ("PROVISIONING", "creating"),
        ("PENDING", "creating"),
        ("ACTIVATING", "creating"),
        ("RUNNING", "running"),
        ("DEACTIVATING", "exited"),
        ("STOPPING", "exited"),
        ("DEPROVISIONING", "exited"),
        ("STOPPED", "exited"),
    ],
)
def test_status_mapping(last_status: str, expected: str) -> None:
    ecs = boto3.client("ecs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    arn = f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/abc"
    runtime = EcsRuntime(cluster=CLUSTER, subnets=["s"], security_groups=["g"], ecs_client=ecs)
    with Stubber(ecs) as stub:
        stub.add_response(
            "describe_tasks",
            {"tasks": [{"taskArn": arn, "lastStatus": last_status}], "failures": []},
            {"cluster": CLUSTER, "tasks": [arn]},
        )
        stub.add_response(
            "describe_tasks",
            {"tasks": [], "failures": [{"arn": arn, "reason": "MISSING"}]},
            {"cluster": CLUSTER, "tasks": [arn]},
        )
        assert runtime.state(arn) == expected
        assert runtime.state(arn) == "missing"


def test_list_managed_finds_running_sandbox_tasks(aws: dict[str, Any]) -> None:
    runtime: EcsRuntime = aws["runtime"]
    first = runtime.start(_spec())
    second = runtime.start(_spec(session_id="sess_qrstuvwxyz012345"))
    stopped = runtime.start(_spec(session_id="sess_stoppedstopped01"))
    runtime.destroy(stopped.container_id)
    # A task someone else started in the same cluster is not ours.
    aws["ecs"].run_task(
        cluster=CLUSTER,
        taskDefinition="sandboxcp-python-basic",
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [aws["subnet"]], "securityGroups": [aws["sg"]]}
        },
    )
    found = {s.container_id: (s.session_id, s.state) for s in runtime.list_managed()}
    assert found == {
        first.container_id: (SESSION, "running"),
        second.container_id: ("sess_qrstuvwxyz012345", "running"),
    }


def test_logs_tail_the_executor_stream(aws: dict[str, Any]) -> None:
    runtime: EcsRuntime = aws["runtime"]
    handle = runtime.start(_spec())
    task_id = handle.container_id.rsplit("/", 1)[-1]
    stream = f"sandbox/executor/{task_id}"
    assert runtime.log_stream(handle.container_id) == stream
    assert runtime.logs(handle.container_id) == []  # no stream yet
    aws["logs"].create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    base = int((datetime.now(UTC) - timedelta(minutes=5)).timestamp() * 1000)
    aws["logs"].put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": base + i * 1000, "message": f"line {i}"} for i in range(10)],
    )
    assert runtime.logs(handle.container_id, tail=3) == ["line 7", "line 8", "line 9"]
    assert runtime.logs(handle.container_id) == [f"line {i}" for i in range(10)]
    since = datetime.fromtimestamp((base + 8000) / 1000, tz=UTC)
    assert runtime.logs(handle.container_id, since=since) == ["line 8", "line 9"]
    assert runtime.logs(handle.container_id, tail=0) == []


def test_unknown_task_definition_is_sandbox_unavailable(aws: dict[str, Any]) -> None:
    runtime: EcsRuntime = aws["runtime"]
    with pytest.raises(SandboxUnavailable) as err:
        runtime.start(_spec(image="sandboxcp/no-such-template:latest"))
    assert "sandboxcp-no-such-template" in err.value.detail or "ClientException" in err.value.detail


def test_task_definition_with_a_task_role_is_refused(aws: dict[str, Any]) -> None:
    runtime: EcsRuntime = aws["runtime"]
    with pytest.raises(SandboxUnavailable, match="task role"):
        runtime.start(_spec(image="sandboxcp/with-role:1.2"))
    assert aws["ecs"].list_tasks(cluster=CLUSTER)["taskArns"] == []


def test_run_task_failures_are_sandbox_unavailable() -> None:
    ecs = boto3.client("ecs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    runtime = EcsRuntime(
        cluster=CLUSTER, subnets=["subnet-1"], security_groups=["sg-1"], ecs_client=ecs, callback_base_url="u"
    )
    td = {
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/sandboxcp-python-basic:1",
        "containerDefinitions": [_container()],
    }
    spec = _spec()
    with Stubber(ecs) as stub:
        stub.add_response(
            "describe_task_definition", {"taskDefinition": td}, {"taskDefinition": "sandboxcp-python-basic"}
        )
        stub.add_response(
            "run_task",
            {"tasks": [], "failures": [{"reason": "RESOURCE:ENI", "detail": "no free addresses"}]},
            runtime.run_task_request(spec, "sandboxcp-python-basic"),
        )
        with pytest.raises(SandboxUnavailable) as err:
            runtime.start(spec)
    assert "RESOURCE:ENI" in err.value.detail
    assert "no free addresses" in err.value.detail


def test_missing_configuration_is_sandbox_unavailable() -> None:
    with pytest.raises(SandboxUnavailable, match="ECS_SUBNETS"):
        EcsRuntime(cluster=CLUSTER, subnets=[], security_groups=[]).start(_spec())


def test_fargate_sizes_round_up() -> None:
    assert fargate_size(0.5, 256) == (512, 1024)
    assert fargate_size(0.5, 4096) == (512, 4096)
    assert fargate_size(0.5, 4097) == (1024, 5120)
    assert fargate_size(1, 512) == (1024, 2048)
    assert fargate_size(1.5, 3000) == (2048, 4096)
    assert fargate_size(2, 8192) == (2048, 8192)
    assert fargate_size(4, 8192) == (4096, 8192)
    assert fargate_size(3, 20000) == (4096, 20480)


def test_template_id_from_image() -> None:
    assert template_id_from_image("sandboxcp/python-basic:latest") == "python-basic"
    assert template_id_from_image("python-basic") == "python-basic"
    assert template_id_from_image("reg.example:5000/a/b/nodejs-basic@sha256:abcd") == "nodejs-basic"
    with pytest.raises(SandboxUnavailable):
        template_id_from_image("")


def test_task_definition_problems() -> None:
    assert task_definition_problems({"containerDefinitions": [_container()]}) == []
    weak = _container(user="root", readonlyRootFilesystem=False, privileged=True, linuxParameters={})
    problems = task_definition_problems({"taskRoleArn": "arn:role", "containerDefinitions": [weak]})
    assert len(problems) == 5


def test_from_settings_splits_lists_and_creates_no_client() -> None:
    from sandboxcp.settings import Settings

    settings = Settings.model_validate(
        {
            "SESSIONS_TABLE": "s",
            "EXECUTIONS_TABLE": "e",
            "TEMPLATES_TABLE": "t",
            "API_KEYS_TABLE": "k",
            "IDEMPOTENCY_TABLE": "i",
            "WORKSPACE_BUCKET": "b",
            "SANDBOX_RUNTIME": "ecs",
            "ECS_CLUSTER": CLUSTER,
            "ECS_SUBNETS": "subnet-a, subnet-b,",
            "ECS_SECURITY_GROUPS": "sg-a",
            "AWS_REGION": "eu-west-1",
        }
    )
    runtime = EcsRuntime.from_settings(settings)
    assert runtime.subnets == ["subnet-a", "subnet-b"]
    assert runtime.security_groups == ["sg-a"]
    assert runtime.region == "eu-west-1"
    assert runtime._ecs is None and runtime._logs is None


def test_importing_the_adapter_loads_no_heavy_client() -> None:
    code = (
        "import sys, sandboxcp.adapters.runtimes.ecs; "
        "heavy = [m for m in ('kubernetes', 'boto3') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_executor_address_comes_from_the_task_eni(aws: dict[str, Any]) -> None:
    """Trust boundary (4): ECS says where the executor is (the ENI's private IPv4), not the task."""
    runtime: EcsRuntime = aws["runtime"]
    handle = runtime.start(_spec())
    (task,) = aws["ecs"].describe_tasks(cluster=CLUSTER, tasks=[handle.container_id])["tasks"]
    details = {d["name"]: d["value"] for a in task["attachments"] for d in a["details"]}
    assert runtime.executor_url(handle.container_id) == f"http://{details['privateIPv4Address']}:8080"


def test_network_follows_the_template(aws: dict[str, Any]) -> None:
    """Network `none`: the sandbox security groups (egress to the internal API and S3 only); `open`: the
    open ones. Without open ones a template that allows network is refused, never silently cut off."""
    runtime: EcsRuntime = aws["runtime"]
    closed = runtime.run_task_request(_spec(), "sandboxcp-python-basic")
    assert closed["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] == [aws["sg"]]
    with pytest.raises(SandboxUnavailable, match="no open security group"):
        runtime.run_task_request(_spec(network_enabled=True), "sandboxcp-python-basic")
    runtime.open_security_groups = ["sg-open"]
    opened = runtime.run_task_request(_spec(network_enabled=True), "sandboxcp-python-basic")
    assert opened["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] == ["sg-open"]
    assert {"key": "sandboxcp:network", "value": "enabled"} in opened["tags"]


def test_task_definition_per_image_reference() -> None:
    assert task_definition_family("sandboxcp-", "sandboxcp/python-basic:latest") == "sandboxcp-python-basic"
    custom = task_definition_family("sandboxcp-", "registry.example.com/team/python-basic:1")
    assert custom.startswith("sandboxcp-python-basic-") and len(custom) == len("sandboxcp-python-basic-") + 12
    assert custom != task_definition_family("sandboxcp-", "registry.example.com/team/python-basic:2")
    assert not is_deployment_image("localhost:5000/sandboxcp/python-basic:1")
    assert is_deployment_image("sandboxcp/python-basic@sha256:" + "a" * 64)


def test_a_templates_image_is_registered_once_hardened(aws: dict[str, Any]) -> None:
    runtime: EcsRuntime = aws["runtime"]
    image = "registry.example.com/team/custom:1"
    with pytest.raises(SandboxUnavailable, match="none can be registered"):
        runtime.start(_spec(image=image))
    runtime.execution_role_arn = "arn:aws:iam::123456789012:role/sandbox-execution"
    first = runtime.start(_spec(image=image))
    second = runtime.start(_spec(image=image, session_id="sess_secondsecond0001"))
    family = task_definition_family("sandboxcp-", image)
    arns = {
        t["taskDefinitionArn"]
        for t in aws["ecs"].describe_tasks(cluster=CLUSTER, tasks=[first.container_id, second.container_id])[
            "tasks"
        ]
    }
    assert arns == {f"arn:aws:ecs:{REGION}:123456789012:task-definition/{family}:1"}
    described = aws["ecs"].describe_task_definition(taskDefinition=family)["taskDefinition"]
    assert task_definition_problems(described) == []
    assert {v["name"] for v in described["volumes"]} == {"tmp", "workspace"}


def _stubbable_runtime() -> tuple[Any, EcsRuntime, str, dict[str, Any]]:
    """An ECS client for a Stubber, the runtime on it (no sleeps), a task ARN and a task definition."""
    ecs = boto3.client("ecs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    runtime = EcsRuntime(
        cluster=CLUSTER, subnets=["subnet-1"], security_groups=["sg-1"], ecs_client=ecs, sleep=lambda _s: None
    )
    arn = f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/abc"
    return ecs, runtime, arn, {"taskDefinitionArn": "arn:td", "containerDefinitions": [_container()]}


def test_a_task_that_stops_while_starting_fails_the_start() -> None:
    ecs, runtime, arn, td = _stubbable_runtime()
    stopped = {
        "taskArn": arn,
        "lastStatus": "STOPPED",
        "stoppedReason": "Essential container in task exited",
        "containers": [{"reason": "CannotPullContainerError: no such image"}],
    }
    with Stubber(ecs) as stub:
        stub.add_response("describe_task_definition", {"taskDefinition": td})
        stub.add_response(
            "run_task", {"tasks": [{"taskArn": arn, "lastStatus": "PROVISIONING"}], "failures": []}
        )
        stub.add_response("describe_tasks", {"tasks": [{"taskArn": arn, "lastStatus": "PENDING"}]})
        stub.add_response("describe_tasks", {"tasks": [stopped]})
        stub.add_response("stop_task", {"task": {"taskArn": arn}})
        with pytest.raises(SandboxUnavailable, match="CannotPullContainerError"):
            runtime.start(_spec())


def test_a_task_running_in_the_run_task_answer_needs_no_describe() -> None:
    """ECS answers RunTask with PROVISIONING (then DescribeTasks is polled, as above); a task RUNNING with
    its address already there (the stand-in, an EC2 host with the image cached) is used as it is."""
    ecs, runtime, arn, td = _stubbable_runtime()
    running = {
        "taskArn": arn,
        "lastStatus": "RUNNING",
        "attachments": [
            {
                "type": "ElasticNetworkInterface",
                "details": [{"name": "privateIPv4Address", "value": "10.0.0.7"}],
            }
        ],
    }
    with Stubber(ecs) as stub:  # no describe_tasks queued: a call would fail the stubber
        stub.add_response("describe_task_definition", {"taskDefinition": td})
        stub.add_response("run_task", {"tasks": [running], "failures": []})
        handle = runtime.start(_spec())
        stub.assert_no_pending_responses()
    assert handle.container_id == "abc" and handle.executor_url == "http://10.0.0.7:8080"


def test_ping_is_describe_clusters(aws: dict[str, Any]) -> None:
    runtime: EcsRuntime = aws["runtime"]
    assert runtime.ping() is True
    runtime.cluster = "not-a-cluster"
    assert runtime.ping() is False


def test_states_asks_ecs_once_per_hundred_tasks(aws: dict[str, Any]) -> None:
    """The session reaper asks for every running session each tick: 250 tasks are 3 DescribeTasks."""
    runtime: EcsRuntime = aws["runtime"]
    running = runtime.start(_spec()).container_id
    stopped = runtime.start(_spec()).container_id
    runtime.destroy(stopped)
    unknown = [f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/{n:032x}" for n in range(248)]
    calls: list[int] = []
    runtime.ecs.meta.events.register(
        "before-parameter-build.ecs.DescribeTasks", lambda params, **_: calls.append(len(params["tasks"]))
    )
    states = runtime.states([running, stopped, *unknown])
    assert calls == [100, 100, 50]
    assert states[running] == "running" and states[stopped] == "exited"
    assert {states[u] for u in unknown} == {"missing"}
