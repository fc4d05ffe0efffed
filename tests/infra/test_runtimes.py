"""The VPC and the three sandbox runtimes (`-c runtime=ecs|eks|docker`): each variant's resources, its
network paths, and the `runtime` access string granting exactly that runtime's permissions and environment
(and nothing to functions without it)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from sandboxcp.adapters.runtimes import docker_tls
from sandboxcp.adapters.runtimes.ecs import task_definition_problems
from sandboxcp.routes import all_modules
from sandboxcp.services.templates import default_templates
from sandboxcp_infra.config import ConfigError, DeploymentConfig
from sandboxcp_infra.network import EXECUTOR_CLIENTS
from tests.infra import helpers as h
from tests.infra.conftest import (
    DOCKER_CONTEXT,
    EKS_CLUSTER_SG,
    EKS_CONTEXT,
    IMPORTED_PRIVATE_SUBNETS,
    IMPORTED_VPC_CIDR,
    IMPORTED_VPC_ID,
    REPO_ROOT,
    Synthesized,
    Variants,
    cdk_context,
)

RUNTIME_ACTIONS = {
    "ecs": {
        "ecs:RunTask",
        "ecs:StopTask",
        "ecs:DescribeTasks",
        "ecs:TagResource",
        "ecs:ListTasks",
        "ecs:DescribeTaskDefinition",
        "ecs:RegisterTaskDefinition",
        "ecs:DescribeClusters",
        "iam:PassRole",
        "logs:GetLogEvents",
    },
    "eks": {"eks:DescribeCluster"},
    "docker": {"secretsmanager:GetSecretValue"},
}
ALL_RUNTIME_ACTIONS = set().union(*RUNTIME_ACTIONS.values())
RUNTIME_ENV = {
    "ecs": {
        "ECS_CLUSTER",
        "ECS_SUBNETS",
        "ECS_SECURITY_GROUPS",
        "ECS_TASK_DEFINITION_PREFIX",
        "ECS_LOG_GROUP",
        "ECS_EXECUTION_ROLE_ARN",
    },
    "eks": {"EKS_CLUSTER_NAME", "EKS_ENDPOINT", "EKS_CA_DATA", "EKS_NAMESPACE", "EKS_S3_CIDRS"},
    "docker": {"DOCKER_HOST", "DOCKER_TLS_SECRET_ARN"},
}
ALL_RUNTIME_ENV = set().union(*RUNTIME_ENV.values())
TEMPLATE_IDS = [t.id for t in default_templates()]


@pytest.fixture(scope="session")
def ecs(synthesized_variants: Variants) -> Synthesized:
    return synthesized_variants["ecs"]


@pytest.fixture(scope="session")
def eks(synthesized_variants: Variants) -> Synthesized:
    return synthesized_variants["eks"]


@pytest.fixture(scope="session")
def docker(synthesized_variants: Variants) -> Synthesized:
    return synthesized_variants["docker"]


def _runtime_grants(synth: Synthesized, module: str) -> set[tuple[str, str, str]]:
    return {g for g in h.grants(synth, module) if g[0] in ALL_RUNTIME_ACTIONS}


def _ingress(synth: Synthesized, group_id: Any) -> list[dict[str, Any]]:
    """Every ingress rule of a security group (inline or separate), by its logical id or literal id."""
    ref = {"Fn::GetAtt": [group_id, "GroupId"]} if group_id in synth.resources else group_id
    rules = [
        r["Properties"]
        for r in h.of_type(synth, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == ref
    ]
    if group_id in synth.resources:
        rules += synth.resources[group_id]["Properties"].get("SecurityGroupIngress", [])
    return rules


def _egress(synth: Synthesized, group_id: str) -> list[dict[str, Any]]:
    rules = [
        r["Properties"]
        for r in h.of_type(synth, "AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}
    ]
    return rules + synth.resources[group_id]["Properties"].get("SecurityGroupEgress", [])


def _sg_ref(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "GroupId"]}


# --- the VPC ------------------------------------------------------------------------------------------------


def test_vpc_functions_are_the_runtime_and_executor_clients(variant: Synthesized) -> None:
    expected = set(h.modules_with(variant, "runtime")) | set(EXECUTOR_CLIENTS)
    assert set(variant.stack.network_modules) == expected
    functions_sg = variant.logical_id(variant.stack.network.functions_sg)
    for module in all_modules():
        vpc_config = h.function(variant, module)["Properties"].get("VpcConfig")
        if module in expected:
            assert vpc_config is not None, module
            assert vpc_config["SecurityGroupIds"] == [_sg_ref(functions_sg)], module
        else:
            assert vpc_config is None, module


def test_created_vpc_is_isolated_with_endpoints(ecs: Synthesized) -> None:
    (vpc,) = h.of_type(ecs, "AWS::EC2::VPC").values()
    assert vpc["Properties"]["CidrBlock"] == "10.0.0.0/16"
    subnets = h.of_type(ecs, "AWS::EC2::Subnet")
    assert len(subnets) == 2
    assert {s["Properties"]["AvailabilityZone"]["Fn::Select"][0] for s in subnets.values()} == {0, 1}
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets.values())
    for absent in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EIP", "AWS::EC2::Route"):
        assert h.of_type(ecs, absent) == {}, absent
    (flow_log,) = h.of_type(ecs, "AWS::EC2::FlowLog").values()
    assert flow_log["Properties"]["TrafficType"] == "ALL"

    endpoints = {
        json.dumps(e["Properties"]["ServiceName"]).split(".")[-1].rstrip('"]}'): e["Properties"]
        for e in h.of_type(ecs, "AWS::EC2::VPCEndpoint").values()
    }
    # states: container_ready runs in the VPC (it asks ECS for the executor's address) and answers the
    # launch workflow's task token.
    assert set(endpoints) == {"dynamodb", "s3", "execute-api", "ecs", "api", "dkr", "logs", "states"}
    assert endpoints["dynamodb"]["VpcEndpointType"] == endpoints["s3"]["VpcEndpointType"] == "Gateway"
    # The internal API is reached by its endpoint-specific name: no private DNS to clash with anything.
    assert endpoints["execute-api"]["PrivateDnsEnabled"] is False
    assert all(endpoints[n]["PrivateDnsEnabled"] is True for n in ("ecs", "api", "dkr", "logs"))


def test_imported_vpc_is_used_as_it_is(eks: Synthesized) -> None:
    assert h.of_type(eks, "AWS::EC2::VPC") == {}
    assert h.of_type(eks, "AWS::EC2::Subnet") == {}
    (endpoint,) = h.of_type(eks, "AWS::EC2::VPCEndpoint").values()  # only execute-api is added
    assert endpoint["Properties"]["VpcId"] == IMPORTED_VPC_ID
    assert endpoint["Properties"]["SubnetIds"] == list(IMPORTED_PRIVATE_SUBNETS)
    for module in eks.stack.network_modules:
        assert h.function(eks, module)["Properties"]["VpcConfig"]["SubnetIds"] == list(
            IMPORTED_PRIVATE_SUBNETS
        )
    endpoints_sg = eks.logical_id(eks.stack.network.endpoints_sg)
    assert [(r["CidrIp"], r["FromPort"]) for r in _ingress(eks, endpoints_sg)] == [(IMPORTED_VPC_CIDR, 443)]


def test_internal_api_is_private_behind_the_endpoint(variant: Synthesized) -> None:
    internal = variant.resources[variant.logical_id(variant.stack.internal_api.rest_api)]["Properties"]
    endpoint_id = variant.logical_id(variant.stack.network.execute_api_endpoint)
    assert internal["EndpointConfiguration"] == {
        "Types": ["PRIVATE"],
        "VpcEndpointIds": [{"Ref": endpoint_id}],
    }
    allow, deny = internal["Policy"]["Statement"]
    assert (allow["Effect"], allow["Action"], allow["Resource"]) == (
        "Allow",
        "execute-api:Invoke",
        "execute-api:/*",
    )
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"StringNotEquals": {"aws:SourceVpce": {"Ref": endpoint_id}}}
    public = variant.resources[variant.logical_id(variant.stack.public_api.rest_api)]["Properties"]
    assert public["EndpointConfiguration"] == {"Types": ["REGIONAL"]}


def test_functions_security_group_sends_https_and_executor_traffic_only(variant: Synthesized) -> None:
    functions_sg = variant.logical_id(variant.stack.network.functions_sg)
    ports = {(r["FromPort"], r["ToPort"]) for r in _egress(variant, functions_sg)}
    expected = {"ecs": {(443, 443), (8080, 8080)}, "eks": {(443, 443), (8080, 8080)}}
    expected["docker"] = {(443, 443), (2376, 2376), (32768, 60999)}
    assert ports == expected[variant.variant]
    assert _ingress(variant, functions_sg) == []


# --- runtime grants and environment -------------------------------------------------------------------------


def test_runtime_grants_and_env_only_where_runtime_access(variant: Synthesized) -> None:
    runtime_modules = set(h.modules_with(variant, "runtime"))
    assert runtime_modules, "no route or job has `runtime` access"
    for module in all_modules():
        grants, env = _runtime_grants(variant, module), set(h.environment(variant, module))
        if module in runtime_modules:
            assert {g[0] for g in grants} == RUNTIME_ACTIONS[variant.variant], module
            assert env & ALL_RUNTIME_ENV == RUNTIME_ENV[variant.variant], module
        else:
            assert grants == set(), module
            assert env & ALL_RUNTIME_ENV == set(), module


def test_ecs_runtime_grants_exactly(ecs: Synthesized) -> None:
    sandboxes = ecs.stack.runtime
    cluster = ecs.logical_id(sandboxes.cluster)
    on_cluster = {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster, "Arn"]}}}
    arn = ["arn:", {"Ref": "AWS::Partition"}, ":ecs:", {"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"}]
    tasks = {"Fn::Join": ["", [*arn, ":task/", {"Ref": cluster}, "/*"]]}
    # Every revision of every family with the prefix: the deployment's and those the adapter registers.
    task_definitions = {"Fn::Join": ["", [*arn, ":task-definition/sandboxcp-*"]]}
    cluster_arn = {"Fn::GetAtt": [cluster, "Arn"]}
    expected = {
        h.triple("ecs:RunTask", task_definitions, on_cluster),
        h.triple("ecs:RegisterTaskDefinition", "*"),
        h.triple("ecs:DescribeClusters", cluster_arn),
        h.triple("ecs:StopTask", tasks, on_cluster),
        h.triple("ecs:DescribeTasks", tasks, on_cluster),
        h.triple("ecs:TagResource", tasks, {"StringEquals": {"ecs:CreateAction": "RunTask"}}),
        h.triple("ecs:ListTasks", "*", on_cluster),
        h.triple("ecs:DescribeTaskDefinition", "*"),
        h.triple(
            "iam:PassRole",
            {"Fn::GetAtt": [ecs.logical_id(sandboxes.execution_role), "Arn"]},
            {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        ),
        h.triple("logs:GetLogEvents", {"Fn::GetAtt": [ecs.logical_id(sandboxes.log_group), "Arn"]}),
    }
    for module in h.modules_with(ecs, "runtime"):
        assert _runtime_grants(ecs, module) == expected, module


def test_ecs_register_task_definition_sits_in_its_own_acknowledged_policy(ecs: Synthesized) -> None:
    """RegisterTaskDefinition (no resource-level form) is alone with PassRole in a policy of its own, the
    only place cdk-nag's Resource::* finding for it is acknowledged."""
    from aws_cdk import Validations
    from aws_cdk import aws_iam as iam

    for module in h.modules_with(ecs, "runtime"):
        role_id = h.function(ecs, module)["Properties"]["Role"]["Fn::GetAtt"][0]
        holding = [
            p["Properties"]["PolicyDocument"]["Statement"]
            for p in h.of_type(ecs, "AWS::IAM::Policy").values()
            if {"Ref": role_id} in p["Properties"]["Roles"]
            and any(
                "ecs:RegisterTaskDefinition" in h.as_list(s["Action"])
                for s in p["Properties"]["PolicyDocument"]["Statement"]
            )
        ]
        assert len(holding) == 1, module
        assert {a for s in holding[0] for a in h.as_list(s["Action"])} == {
            "ecs:RegisterTaskDefinition",
            "iam:PassRole",
        }
    policies = [
        c
        for c in ecs.stack.node.find_all()
        if isinstance(c, iam.Policy) and c.node.id == "EcsRegisterTaskDefinition"
    ]
    assert len(policies) == len(h.modules_with(ecs, "runtime"))
    for policy in policies:
        acknowledged = {
            rule
            for entry in policy.node.metadata
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
            for rule in entry.data
        }
        # (recorded with a prefix naming the kind of finding, e.g. "Annotation::")
        assert any(rule.endswith("::AwsSolutions-IAM5[Resource::*]") for rule in acknowledged), acknowledged


def test_ecs_execution_role_is_set_for_registered_task_definitions(ecs: Synthesized) -> None:
    role = {"Fn::GetAtt": [ecs.logical_id(ecs.stack.runtime.execution_role), "Arn"]}
    for module in h.modules_with(ecs, "runtime"):
        env = h.environment(ecs, module)
        assert env["ECS_EXECUTION_ROLE_ARN"] == role, module
        # No open sandbox security group in this stack: network-open templates are refused on ECS.
        assert "ECS_OPEN_SECURITY_GROUPS" not in env, module


def test_ecs_environment(ecs: Synthesized) -> None:
    sandboxes = ecs.stack.runtime
    env = h.environment(ecs, "launch_start_sandbox")
    assert env["ECS_CLUSTER"] == {"Ref": ecs.logical_id(sandboxes.cluster)}
    assert env["ECS_SECURITY_GROUPS"] == _sg_ref(ecs.logical_id(sandboxes.security_group))
    assert env["ECS_TASK_DEFINITION_PREFIX"] == "sandboxcp-"
    assert env["ECS_LOG_GROUP"] == {"Ref": ecs.logical_id(sandboxes.log_group)}
    subnets = sorted(h.of_type(ecs, "AWS::EC2::Subnet"))
    assert env["ECS_SUBNETS"] == {"Fn::Join": [",", [{"Ref": s} for s in subnets]]}


def test_eks_runtime_grants_and_access_entries(eks: Synthesized) -> None:
    cluster_arn = "arn:aws:eks:us-east-1:123456789012:cluster/platform"
    runtime_modules = h.modules_with(eks, "runtime")
    for module in runtime_modules:
        assert _runtime_grants(eks, module) == {h.triple("eks:DescribeCluster", cluster_arn)}, module
    entries = [e["Properties"] for e in h.of_type(eks, "AWS::EKS::AccessEntry").values()]
    roles = {h.function(eks, m)["Properties"]["Role"]["Fn::GetAtt"][0] for m in runtime_modules}
    assert sorted(e["PrincipalArn"]["Fn::GetAtt"][0] for e in entries) == sorted(roles)
    for entry in entries:
        assert entry["ClusterName"] == "platform"
        assert entry["Type"] == "STANDARD"
        assert entry["AccessPolicies"] == [
            {
                "PolicyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy",
                "AccessScope": {"Type": "namespace", "Namespaces": ["sandboxes"]},
            }
        ]
    env = h.environment(eks, "launch_start_sandbox")
    assert env["EKS_CLUSTER_NAME"] == "platform"
    assert env["EKS_ENDPOINT"] == EKS_CONTEXT["eks_endpoint"]
    assert env["EKS_CA_DATA"] == EKS_CONTEXT["eks_ca_data"]
    assert env["EKS_NAMESPACE"] == "sandboxes"


def test_eks_s3_cidrs_come_from_context_normalized(eks: Synthesized) -> None:
    for module in h.modules_with(eks, "runtime"):
        assert h.environment(eks, module)["EKS_S3_CIDRS"] == "52.216.0.0/15,3.5.0.0/19", module
    for bad in ("52.216.0.0/33", "s3.amazonaws.com"):
        context = cdk_context(**{**EKS_CONTEXT, "eks_s3_cidrs": bad})
        with pytest.raises(ConfigError, match="eks_s3_cidrs"):
            DeploymentConfig.from_context(App(context=context).node)
    unset = {**EKS_CONTEXT, "eks_s3_cidrs": None}
    config = DeploymentConfig.from_context(App(context=cdk_context(**unset)).node)
    assert config.eks is not None and config.eks.s3_cidrs == ""


def test_eks_functions_reach_pods_through_the_cluster_security_group(eks: Synthesized) -> None:
    functions_sg = eks.logical_id(eks.stack.network.functions_sg)
    to_pods = [r for r in _egress(eks, functions_sg) if r.get("FromPort") == 8080]
    assert [r["DestinationSecurityGroupId"] for r in to_pods] == [EKS_CLUSTER_SG]
    into_cluster = _ingress(eks, EKS_CLUSTER_SG)
    assert sorted((r["FromPort"], r["ToPort"]) for r in into_cluster) == [(443, 443), (8080, 8080)]
    assert all(r["SourceSecurityGroupId"] == _sg_ref(functions_sg) for r in into_cluster)


def test_docker_runtime_grants_secret_and_nodes(docker: Synthesized) -> None:
    secret = docker.logical_id(docker.stack.runtime.tls_secret)
    nodes_table = docker.logical_id(docker.stack.data.tables["runtime_nodes"])
    for module in h.modules_with(docker, "runtime"):
        assert _runtime_grants(docker, module) == {h.triple("secretsmanager:GetSecretValue", {"Ref": secret})}
        assert "dynamodb:GetItem" in h.actions_on(docker, module, nodes_table), module
    env = h.environment(docker, "launch_start_sandbox")
    assert env["DOCKER_HOST"] == DOCKER_CONTEXT["docker_host"]
    assert env["DOCKER_TLS_SECRET_ARN"] == {"Ref": secret}


def test_runtime_nodes_read_follows_runtime_or_its_own_access(variant: Synthesized) -> None:
    """`runtime_nodes:r|rw` is a table grant like any other; docker's `runtime` implies the read."""
    nodes_table = variant.logical_id(variant.stack.data.tables["runtime_nodes"])
    for module, spec in variant.stack.functions.specs.items():
        listed = any(a.startswith("runtime_nodes:") for a in spec.access)
        implied = variant.variant == "docker" and "runtime" in spec.access
        assert bool(h.actions_on(variant, module, nodes_table)) == (listed or implied), module


# --- the runtimes' own resources ----------------------------------------------------------------------------


def test_each_variant_makes_only_its_own_runtime_resources(variant: Synthesized) -> None:
    own = {
        "ecs": {"AWS::ECS::Cluster": 1, "AWS::ECS::TaskDefinition": len(TEMPLATE_IDS)},
        "eks": {"AWS::EKS::AccessEntry": len(h.modules_with(variant, "runtime"))},
        "docker": {"AWS::SecretsManager::Secret": 1},
    }
    for name, counts in own.items():
        for cfn_type, count in counts.items():
            expected = count if name == variant.variant else 0
            assert len(h.of_type(variant, cfn_type)) == expected, (variant.variant, cfn_type)


def test_ecs_cluster_has_container_insights(ecs: Synthesized) -> None:
    (cluster,) = h.of_type(ecs, "AWS::ECS::Cluster").values()
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["Properties"]["ClusterSettings"]


def _as_api(task_definition: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation task definition in DescribeTaskDefinition's shape (the adapter's input)."""

    def lower(value: Any) -> Any:
        if isinstance(value, dict):
            return {k[:1].lower() + k[1:]: lower(v) for k, v in value.items()}
        if isinstance(value, list):
            return [lower(v) for v in value]
        return value

    api: dict[str, Any] = lower(task_definition)
    for container in api["containerDefinitions"]:
        caps = container.get("linuxParameters", {}).get("capabilities", {})
        if "Drop" in caps:
            caps["drop"] = caps.pop("Drop")
    return api


@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
def test_a_hardened_task_definition_per_template(ecs: Synthesized, template_id: str) -> None:
    td = ecs.stack.runtime.task_definitions[template_id]
    props = ecs.resources[ecs.logical_id(td)]["Properties"]
    assert props["Family"] == f"sandboxcp-{template_id}"
    assert props["RequiresCompatibilities"] == ["FARGATE"] and props["NetworkMode"] == "awsvpc"
    assert "TaskRoleArn" not in props  # no credentials endpoint for the sandbox at all
    assert props["ExecutionRoleArn"] == {
        "Fn::GetAtt": [ecs.logical_id(ecs.stack.runtime.execution_role), "Arn"]
    }
    # The ECS adapter checks a task definition before its first launch: this one passes.
    assert task_definition_problems(_as_api(props)) == []

    (container,) = props["ContainerDefinitions"]
    assert container["Name"] == "executor"
    assert container["User"] == "1000:1000"
    assert container["ReadonlyRootFilesystem"] is True
    assert container["Privileged"] is False
    assert container["LinuxParameters"] == {"Capabilities": {"Drop": ["ALL"]}, "InitProcessEnabled": False}
    assert container["PortMappings"] == [{"ContainerPort": 8080, "Protocol": "tcp"}]
    assert "Environment" not in container  # the adapter's RunTask overrides carry the session's
    assert sorted((m["ContainerPath"], m["ReadOnly"]) for m in container["MountPoints"]) == [
        ("/tmp", False),
        ("/workspace", False),
    ]
    assert sorted(v["Name"] for v in props["Volumes"]) == ["tmp", "workspace"]
    # Fargate creates a task volume's mount point root-owned unless the image declares it a VOLUME (then
    # it copies the image's directory and its ownership): every mount point must be declared.
    dockerfile = (REPO_ROOT / "executor" / "images" / template_id / "Dockerfile").read_text()
    declared = json.loads(re.search(r"^VOLUME (\[.*\])$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    assert {m["ContainerPath"] for m in container["MountPoints"]} <= set(declared)
    assert all(set(v) == {"Name"} for v in props["Volumes"])  # task storage, no host paths
    logging = container["LogConfiguration"]
    assert logging["LogDriver"] == "awslogs"
    assert logging["Options"]["awslogs-stream-prefix"] == "sandbox"
    assert logging["Options"]["awslogs-group"] == {"Ref": ecs.logical_id(ecs.stack.runtime.log_group)}
    template = next(t for t in default_templates() if t.id == template_id)
    assert container["Memory"] == template.default_resources.memory_mb


def test_template_images_are_built_from_the_executor_dockerfiles(ecs: Synthesized) -> None:
    manifest = json.loads((ecs.outdir / "SandboxControlPlane.assets.json").read_text())
    sources = [image["source"] for image in manifest["dockerImages"].values()]
    assert sorted(s["dockerFile"] for s in sources) == sorted(f"images/{t}/Dockerfile" for t in TEMPLATE_IDS)
    for source in sources:
        assert source["platform"] == "linux/amd64"
        context = ecs.outdir / source["directory"]  # the staged copy of executor/
        assert (context / "sandbox_executor" / "__main__.py").is_file()
        assert (context / source["dockerFile"]).read_text() == (
            REPO_ROOT / "executor" / source["dockerFile"]
        ).read_text()


def test_ecs_execution_role_only_pulls_and_logs(ecs: Synthesized) -> None:
    role_id = ecs.logical_id(ecs.stack.runtime.execution_role)
    role = ecs.resources[role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ecs-tasks.amazonaws.com"
    }
    assert "ManagedPolicyArns" not in role
    actions = {
        a
        for p in h.of_type(ecs, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        for a in h.as_list(s["Action"])
    }
    assert actions == {
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage",
        "ecr:GetAuthorizationToken",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    # No other role ECS tasks could assume: sandboxes run without a task role.
    task_roles = [
        lid
        for lid, r in h.of_type(ecs, "AWS::IAM::Role").items()
        if r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        == {"Service": "ecs-tasks.amazonaws.com"}
    ]
    assert task_roles == [role_id]


def test_ecs_sandbox_security_group(ecs: Synthesized) -> None:
    sandboxes_sg = ecs.logical_id(ecs.stack.runtime.security_group)
    functions_sg = ecs.logical_id(ecs.stack.network.functions_sg)
    assert [
        (r["SourceSecurityGroupId"], r["IpProtocol"], r["FromPort"], r["ToPort"])
        for r in _ingress(ecs, sandboxes_sg)
    ] == [(_sg_ref(functions_sg), "tcp", 8080, 8080)]
    # HTTPS only (to the endpoints and S3's prefix list: test_network.py)
    assert {(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in _egress(ecs, sandboxes_sg)} == {
        ("tcp", 443, 443)
    }
    to_sandboxes = [r for r in _egress(ecs, functions_sg) if r.get("FromPort") == 8080]
    assert [r["DestinationSecurityGroupId"] for r in to_sandboxes] == [_sg_ref(sandboxes_sg)]


def test_docker_tls_secret_and_hosts_security_group(docker: Synthesized) -> None:
    secret = docker.resources[docker.logical_id(docker.stack.runtime.tls_secret)]["Properties"]
    template = json.loads(secret["SecretString"])
    assert template == {"ca": "", "cert": "", "key": ""}
    # The adapter reads exactly these keys (and refuses the empty template until it is filled).
    with pytest.raises(Exception, match="no PEM under 'ca'"):
        docker_tls.parse_secret(secret["SecretString"])
    hosts_sg = docker.logical_id(docker.stack.runtime.hosts_security_group)
    functions_sg = _sg_ref(docker.logical_id(docker.stack.network.functions_sg))
    assert sorted(
        (r["SourceSecurityGroupId"] == functions_sg, r["FromPort"], r["ToPort"])
        for r in _ingress(docker, hosts_sg)
    ) == [
        (True, 2376, 2376),
        (True, 32768, 60999),
    ]


# --- context errors -----------------------------------------------------------------------------------------


def _config(**context: Any) -> DeploymentConfig:
    return DeploymentConfig.from_context(App(context=cdk_context(**context)).node)


def test_missing_eks_context_fails_clearly() -> None:
    with pytest.raises(ConfigError) as raised:
        _config(runtime="eks", eks_cluster_name="platform")
    message = str(raised.value)
    assert "runtime=eks" in message
    assert "needs context eks_endpoint, eks_ca_data, vpc_id" in message
    assert "aws eks describe-cluster" in message


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({**EKS_CONTEXT, "eks_endpoint": "http://plain"}, "must be the cluster's https:// endpoint"),
        ({**EKS_CONTEXT, "eks_cluster_sg": "default"}, "'eks_cluster_sg' must look like sg-"),
        ({**EKS_CONTEXT, "eks_namespace": "Sand_Boxes"}, "Kubernetes namespace"),
        ({"runtime": "docker"}, "runtime=docker needs context 'docker_host'"),
        ({"runtime": "docker", "docker_host": "unix:///var/run/docker.sock"}, "tcp://<host>:<port>"),
        ({"vpc_id": "my-vpc"}, "'vpc_id' must look like vpc-"),
    ],
)
def test_bad_runtime_context_fails_clearly(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(**context)


def test_imported_vpc_needs_an_account_and_region(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.infra.conftest import load_cdk_app_module

    monkeypatch.delenv("CDK_DEFAULT_ACCOUNT", raising=False)
    monkeypatch.delenv("CDK_DEFAULT_REGION", raising=False)
    app_module = load_cdk_app_module()
    with pytest.raises(ConfigError, match="'vpc_id' is looked up in the target account and region"):
        app_module.lookup_environment(_config(vpc_id=IMPORTED_VPC_ID))


def test_missing_template_dockerfiles_are_named(tmp_path: Path) -> None:
    from sandboxcp_infra.ecs_runtime import missing_dockerfiles, sandbox_templates

    (tmp_path / "images" / "python-basic").mkdir(parents=True)
    (tmp_path / "images" / "python-basic" / "Dockerfile").write_text("FROM scratch\n")
    assert missing_dockerfiles(tmp_path, sandbox_templates()) == [
        f"images/{t}/Dockerfile" for t in TEMPLATE_IDS if t != "python-basic"
    ]
    assert missing_dockerfiles(REPO_ROOT / "executor", sandbox_templates()) == []
