"""AWS played by moto in local mode: a moto server, and the resources CDK would deploy, made from the
same sources (pynamodb models for tables, the ASL file for the launch state machine)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import boto3
import httpx

from sandboxcp.adapters.tables import TABLES, bind_tables
from sandboxcp.routes import LAUNCH_STEPS
from sandboxcp.settings import Settings

ASL_FILE = Path(__file__).resolve().parents[4] / "infra" / "statemachines" / "launch_session.asl.json"
REGION, ACCOUNT = "us-east-1", "123456789012"


def listening_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A socket bound and listening from this moment (port 0: one the kernel picks), so its port is
    known before the server that answers on it starts, and nobody can take it in between."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as err:
        raise OSError(
            err.errno, f"cannot listen on {host}:{port}: {err.strerror} (--port 0 picks a free port)"
        ) from err


class MotoAws:
    """A moto server on loopback with Step Functions execution turned on."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = 0  # the kernel's pick, read once the server listens
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from sandboxcp.local import moto_sfn_cache

        moto_sfn_cache.install()  # each JSONPath and definition parsed once, not at every use
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        # moto only runs state machines when told to (NOTES.md).
        httpx.post(
            f"{self.endpoint}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}
        )

    def stop(self) -> None:
        self._server.stop()


def aws_environment(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def lambda_arn(module: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{module}"


def launch_definition() -> str:
    asl = ASL_FILE.read_text()
    for variable, job in LAUNCH_STEPS.items():
        asl = asl.replace("${" + variable + "}", lambda_arn(job.module))
    return asl


def provision(settings: Settings) -> str:
    """Create tables, bucket and the launch state machine; return the state machine ARN."""
    bind_tables(settings)
    for model, _ in TABLES.values():
        if not model.exists():
            model.create_table(wait=True)
    ddb: Any = boto3.client("dynamodb")
    if settings.idempotency_table not in ddb.list_tables()["TableNames"]:
        ddb.create_table(
            TableName=settings.idempotency_table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    boto3.client("s3").create_bucket(Bucket=settings.workspace_bucket)
    sfn: Any = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="sandboxcp-launch-session",
        definition=launch_definition(),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/sandboxcp-launch",
    )
    return str(machine["stateMachineArn"])


ECS_CLUSTER = "sandboxcp-sandboxes"
ECS_LOG_GROUP = "/sandboxcp/sandboxes"
ECS_TASK_DEFINITION_PREFIX = "sandboxcp-"
ECS_EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/sandboxcp-sandbox-execution"
DEFAULT_TEMPLATE_IMAGES = ("python-basic", "python-datascience", "nodejs-basic")


def provision_ecs(endpoint: str, sandbox_api_url: str) -> dict[str, str]:
    """What infra/sandboxcp_infra/ecs_runtime.py deploys, in moto: a VPC subnet, the sandboxes' security
    group (no egress rule: the stand-in lets them reach only the internal API and S3 front) and an open one
    (egress anywhere), the cluster, the log group and the default templates' hardened task definitions.
    Returns the settings environment of the ecs runtime, `sandbox_api_url` being where sandboxes reach
    the internal API (and S3, under `/_s3/`)."""
    from sandboxcp.adapters.runtimes.ecs import EcsRuntime

    clients: dict[str, Any] = {"endpoint_url": endpoint, "region_name": REGION}
    ec2: Any = boto3.client("ec2", **clients)
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # moto's RunTask needs it
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.0.0/20")["Subnet"]["SubnetId"]
    closed = ec2.create_security_group(GroupName="sandboxes", Description="sandboxes", VpcId=vpc)["GroupId"]
    ec2.revoke_security_group_egress(
        GroupId=closed, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    opened = ec2.create_security_group(GroupName="sandboxes-open", Description="open", VpcId=vpc)["GroupId"]
    ecs: Any = boto3.client("ecs", **clients)
    ecs.create_cluster(clusterName=ECS_CLUSTER)
    boto3.client("logs", **clients).create_log_group(logGroupName=ECS_LOG_GROUP)
    registrar = EcsRuntime(
        cluster=ECS_CLUSTER,
        subnets=[subnet],
        security_groups=[closed],
        log_group=ECS_LOG_GROUP,
        region=REGION,
        execution_role_arn=ECS_EXECUTION_ROLE,
    )
    for name in DEFAULT_TEMPLATE_IMAGES:
        family = ECS_TASK_DEFINITION_PREFIX + name
        ecs.register_task_definition(**registrar.task_definition_request(family, f"sandboxcp/{name}:latest"))
    return {
        "ECS_CLUSTER": ECS_CLUSTER,
        "ECS_SUBNETS": subnet,
        "ECS_SECURITY_GROUPS": closed,
        "ECS_OPEN_SECURITY_GROUPS": opened,
        "ECS_LOG_GROUP": ECS_LOG_GROUP,
        "ECS_TASK_DEFINITION_PREFIX": ECS_TASK_DEFINITION_PREFIX,
        "ECS_EXECUTION_ROLE_ARN": ECS_EXECUTION_ROLE,
        "CALLBACK_BASE_URL": sandbox_api_url,
        "SANDBOX_S3_VIA": sandbox_api_url,
    }


def local_settings_env(state_dir: str, runtime: str) -> dict[str, str]:
    return {
        "SESSIONS_TABLE": "sandboxcp-sessions",
        "EXECUTIONS_TABLE": "sandboxcp-executions",
        "TEMPLATES_TABLE": "sandboxcp-templates",
        "API_KEYS_TABLE": "sandboxcp-api-keys",
        "IDEMPOTENCY_TABLE": "sandboxcp-idempotency",
        "RUNTIME_NODES_TABLE": "sandboxcp-runtime-nodes",
        "WARM_POOL_TABLE": "sandboxcp-warm-pool",
        "CONTEXTS_TABLE": "sandboxcp-contexts",
        "PROCESSES_TABLE": "sandboxcp-processes",
        "OUTPUT_CHUNKS_TABLE": "sandboxcp-output-chunks",
        "TENANTS_TABLE": "sandboxcp-tenants",
        "WORKSPACE_BUCKET": "sandboxcp-workspace",
        "SANDBOX_RUNTIME": runtime,
        # Locally no warm pool unless asked for (e.g. SANDBOX_WARM_POOL=python-basic=2): a laptop or a test
        # machine is not flooded with the deployment default (35 sandboxes).
        "SANDBOX_WARM_POOL": os.environ.get("SANDBOX_WARM_POOL") or "none",
        "SANDBOX_STATE_DIR": state_dir,
        "CALLBACK_BASE_URL": f"unix://{os.path.join(state_dir, 'internal.sock')}",
        "SANDBOX_S3_VIA": "unix:///run/controlplane.sock",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "SandboxControlPlane",
        "POWERTOOLS_DEV": "false",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",  # as deployed (infra/sandboxcp_infra/functions.py)
    }


EKS_CLUSTER = "sandboxcp-sandboxes"
EKS_NAMESPACE = "sandboxes"


def eks_settings_env(kube_url: str, ca_data: str, sandbox_api_url: str) -> dict[str, str]:
    """The eks runtime's settings for the Kubernetes API stand-in (kube_standin.py): what a deployment sets
    from its cluster (endpoint, CA, namespace, name); sandboxes reach the internal API (and S3, under
    `/_s3/`) at `sandbox_api_url`, the only host address their NetworkPolicy lets them reach."""
    return {
        "SANDBOX_RUNTIME": "eks",
        "EKS_CLUSTER_NAME": EKS_CLUSTER,
        "EKS_ENDPOINT": kube_url,
        "EKS_CA_DATA": ca_data,
        "EKS_NAMESPACE": EKS_NAMESPACE,
        "CALLBACK_BASE_URL": sandbox_api_url,
        "SANDBOX_S3_VIA": sandbox_api_url,
    }


def provision_docker_tls_secret(endpoint: str, secret_string: str) -> str:
    """The remote engines' client TLS secret (DOCKER_TLS_SECRET_ARN), in moto's Secrets Manager."""
    client: Any = boto3.client("secretsmanager", endpoint_url=endpoint, region_name=REGION)
    created = client.create_secret(Name="sandboxcp/docker-tls", SecretString=secret_string)
    return str(created["ARN"])
