"""`runtime=ecs`: sandboxes are Fargate tasks in the stack's VPC, one task definition per default template.

Each task definition (family `<ECS_TASK_DEFINITION_PREFIX><template id>`) runs one container, `executor`,
built from `executor/images/<template id>/Dockerfile` with `executor/` as build context: read-only root
file system, uid/gid 1000, not privileged, every capability dropped, no init process, writable /tmp and
/workspace on the task's ephemeral storage, logs to one log group (stream prefix `sandbox`). There is no
task role at all, so a sandbox has no credentials to fetch (the ECS adapter refuses task definitions with
one); the execution role, which the container never sees, only pulls the image and writes the logs.

The sandbox security group accepts the executor port from the functions' security group alone and sends
HTTPS only to the VPC's interface endpoints (internal API, image pulls, logs) and to S3's prefix list
(presigned URLs, image layers): docs/network.md.

Templates created through the API with their own image run under task definitions the ECS adapter
registers (`<prefix><name>-<sha256(image)[:12]>`, ECS_EXECUTION_ROLE_ARN as execution role), so the
`runtime` functions may RegisterTaskDefinition, pass the execution role, and RunTask any `<prefix>*` family.
No "open" security group exists here (the VPC has no way out): ECS_OPEN_SECURITY_GROUPS stays unset and
network-open templates are refused on ECS (docs/deploy.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import CfnElement, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

# The ECS adapter's own names and sizing, so the task definitions are what it runs and checks.
from sandboxcp.adapters.runtimes.ecs import (
    CONTAINER_NAME,
    EXECUTOR_PORT,
    LOG_STREAM_PREFIX,
    SANDBOX_UID,
    fargate_size,
)
from sandboxcp.services.templates import default_templates
from sandboxcp_infra.config import ConfigError
from sandboxcp_infra.layers import ASSET_EXCLUDES, REPO_ROOT
from sandboxcp_infra.nag import acknowledge, arn_prefix_finding, reference_finding
from sandboxcp_infra.naming import env_var, pascal
from sandboxcp_infra.network import Network
from sandboxcp_infra.runtime import SandboxRuntime

# The images' build context and where each template's Dockerfile sits in it.
EXECUTOR_BUILD_CONTEXT = REPO_ROOT / "executor"
DOCKERFILE = "images/{template_id}/Dockerfile"
SANDBOX_USER = f"{SANDBOX_UID}:{SANDBOX_UID}"
ECS_TASKS = "ecs-tasks.amazonaws.com"


@dataclass(frozen=True)
class SandboxTemplate:
    template_id: str
    cpu_cores: float
    memory_mib: int

    @property
    def dockerfile(self) -> str:
        return DOCKERFILE.format(template_id=self.template_id)


def sandbox_templates() -> list[SandboxTemplate]:
    """The default templates (sandboxcp.services.templates), which the seed job also writes to the table."""
    return [
        SandboxTemplate(t.id, t.default_resources.cpu_cores, t.default_resources.memory_mb)
        for t in default_templates()
    ]


def missing_dockerfiles(build_context: Path, templates: list[SandboxTemplate]) -> list[str]:
    return [t.dockerfile for t in templates if not (build_context / t.dockerfile).is_file()]


class EcsSandboxes(SandboxRuntime):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: Network,
        task_definition_prefix: str,
        log_retention: logs.RetentionDays,
        build_context: Path | None = None,
    ) -> None:
        super().__init__(scope, construct_id, network=network)
        build_context = build_context or EXECUTOR_BUILD_CONTEXT
        templates = sandbox_templates()
        missing = missing_dockerfiles(build_context, templates)
        if missing:
            raise ConfigError(
                "runtime=ecs builds each template's image from images/<template id>/Dockerfile in the build "
                f"context {build_context}; missing: {', '.join(missing)}"
            )
        # Fargate pulls images and ships logs through the task's own network interface; the functions read
        # sandbox logs and call ECS.
        network.add_interface_endpoints(
            **{
                "ecs": ec2.InterfaceVpcEndpointAwsService.ECS,
                "ecr.api": ec2.InterfaceVpcEndpointAwsService.ECR,
                "ecr.dkr": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
                "logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
            }
        )

        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=network.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.execution_role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal(ECS_TASKS),
            description="sandboxcp sandboxes: ECS pulls the template image and writes the executor's logs",
        )
        acknowledge(
            self.execution_role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken (the ECS agent's registry login) has no resource-level permissions; "
            "image pulls are granted on the CDK assets repository only.",
        )

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=network.vpc,
            description="sandboxcp ECS sandboxes: executor port from the functions only; HTTPS out only",
            allow_all_outbound=False,
        )
        # Out: the interface endpoints (internal API, image pulls, logs) and S3 (presigned URLs, image layers)
        # only; the endpoints' policies and the DNS firewall bound what those reach (network.py).
        network.restrict_sandbox_egress(self.security_group)
        network.allow_ecr_image_layers()
        network.functions_sg.connections.allow_to(
            self.security_group, ec2.Port.tcp(EXECUTOR_PORT), "sandboxcp functions to the executor API"
        )

        self.task_definitions: dict[str, ecs.FargateTaskDefinition] = {}
        for template in templates:
            self.task_definitions[template.template_id] = self._task_definition(
                template, task_definition_prefix, build_context
            )

        self.environment = {
            env_var("ecs_cluster"): self.cluster.cluster_name,
            env_var("ecs_subnets"): Fn.join(",", network.subnet_ids),
            env_var("ecs_security_groups"): self.security_group.security_group_id,
            env_var("ecs_task_definition_prefix"): task_definition_prefix,
            env_var("ecs_log_group"): self.log_group.log_group_name,
            # Task definitions the adapter registers for templates' own images run with this execution role.
            env_var("ecs_execution_role_arn"): self.execution_role.role_arn,
            # No "open" sandbox security group: the stack's VPC has no way out, so templates with network
            # enabled are refused on ECS (docs/deploy.md) until an operator sets ECS_OPEN_SECURITY_GROUPS.
        }
        self.task_definition_prefix = task_definition_prefix
        self.outputs = {
            "SandboxClusterName": (self.cluster.cluster_name, "ECS cluster the sandboxes run in"),
            "SandboxLogGroupName": (self.log_group.log_group_name, "Executor logs (stream prefix sandbox)"),
        }

    def _task_definition(
        self, template: SandboxTemplate, prefix: str, build_context: Path
    ) -> ecs.FargateTaskDefinition:
        cpu, memory = fargate_size(template.cpu_cores, template.memory_mib)
        task_definition = ecs.FargateTaskDefinition(
            self,
            pascal(template.template_id),
            family=f"{prefix}{template.template_id}",
            cpu=cpu,
            memory_limit_mib=memory,
            execution_role=self.execution_role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
            # Fargate bind-mount volumes live on the task's ephemeral storage and die with the task.
            volumes=[ecs.Volume(name="tmp"), ecs.Volume(name="workspace")],
        )
        # No init process: the executor's non-dumpable supervisor is PID 1 and reaps orphans itself; an
        # init would hold the task's environment (the callback token) where user code can read it.
        linux = ecs.LinuxParameters(self, f"{pascal(template.template_id)}Linux", init_process_enabled=False)
        linux.drop_capabilities(ecs.Capability.ALL)
        container = task_definition.add_container(
            CONTAINER_NAME,
            container_name=CONTAINER_NAME,
            image=ecs.ContainerImage.from_asset(
                str(build_context),
                file=template.dockerfile,
                platform=ecr_assets.Platform.LINUX_AMD64,
                exclude=ASSET_EXCLUDES,
            ),
            essential=True,
            # The template's memory is the container's hard limit; the task size is Fargate's nearest fit.
            memory_limit_mib=template.memory_mib,
            readonly_root_filesystem=True,
            user=SANDBOX_USER,
            privileged=False,
            linux_parameters=linux,
            port_mappings=[ecs.PortMapping(container_port=EXECUTOR_PORT, protocol=ecs.Protocol.TCP)],
            logging=ecs.LogDrivers.aws_logs(stream_prefix=LOG_STREAM_PREFIX, log_group=self.log_group),
        )
        container.add_mount_points(
            ecs.MountPoint(container_path="/tmp", source_volume="tmp", read_only=False),
            ecs.MountPoint(container_path="/workspace", source_volume="workspace", read_only=False),
        )
        _without_task_role(task_definition)
        return task_definition

    def _grant(self, function: lambda_.Function) -> None:
        on_cluster = {"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}}
        # Every revision of every sandbox family: the deployment's and those the adapter registers for
        # templates' own images (`<prefix><name>-<sha256(image)[:12]>`), only on the sandbox cluster.
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ecs:RunTask"],
                resources=[self.task_definition_arns],
                conditions=on_cluster,
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ecs:StopTask", "ecs:DescribeTasks"],
                resources=[self.task_arns],
                conditions=on_cluster,
            )
        )
        # RunTask with tags (the adapter tags each task with its session) needs TagResource on the new task.
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ecs:TagResource"],
                resources=[self.task_arns],
                conditions={"StringEquals": {"ecs:CreateAction": "RunTask"}},
            )
        )
        # ListTasks is authorized by the cluster condition alone; DescribeTaskDefinition has no resource type.
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["ecs:ListTasks"], resources=["*"], conditions=on_cluster)
        )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["ecs:DescribeTaskDefinition"], resources=["*"])
        )
        # The health check (`ping`): the cluster is ACTIVE.
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["ecs:DescribeClusters"], resources=[self.cluster.cluster_arn])
        )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["logs:GetLogEvents"], resources=[self.log_group.log_group_arn])
        )
        if function.role is None:
            raise ValueError(f"{function.node.path} has no role to grant the ECS runtime to")
        # Registering a task definition for a template's image: RegisterTaskDefinition has no resource-level
        # permissions, so it sits in a policy of its own, the only place its Resource::* is acknowledged,
        # together with passing the execution role (the only role those definitions name; no task role).
        register = iam.Policy(
            function,
            "EcsRegisterTaskDefinition",
            roles=[function.role],
            statements=[
                iam.PolicyStatement(actions=["ecs:RegisterTaskDefinition"], resources=["*"]),
                iam.PolicyStatement(
                    actions=["iam:PassRole"],
                    resources=[self.execution_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": ECS_TASKS}},
                ),
            ],
        )
        acknowledge(
            register,
            "AwsSolutions-IAM5[Resource::*]",
            "ecs:RegisterTaskDefinition has no resource-level permissions; the adapter registers only "
            "hardened definitions (no task role, this execution role) and RunTask is limited to the sandbox "
            "families.",
        )
        acknowledge(
            function.role,
            f"AwsSolutions-IAM5[Resource::{self._task_arns_finding(function)}]",
            "Sandbox task ids are known only at run time: StopTask/DescribeTasks/TagResource on the "
            "tasks of the sandbox cluster, also bound by the ecs:cluster or ecs:CreateAction condition.",
        )
        acknowledge(
            function.role,
            f"AwsSolutions-IAM5[Resource::{self._task_definition_arns_finding(function)}]",
            "Task definitions registered for templates' images get families known only at run time "
            "(<prefix><name>-<sha256(image)[:12]>) and new revisions: RunTask on every revision of the "
            "stack's prefix, only on the sandbox cluster (ecs:cluster condition).",
        )

    @property
    def task_arns(self) -> str:
        """Every task of the sandbox cluster (`task/<cluster name>/<task id>`)."""
        return Stack.of(self).format_arn(
            service="ecs", resource="task", resource_name=f"{self.cluster.cluster_name}/*"
        )

    @property
    def task_definition_arns(self) -> str:
        """Every revision of every task definition family with the stack's prefix."""
        return Stack.of(self).format_arn(
            service="ecs", resource="task-definition", resource_name=f"{self.task_definition_prefix}*"
        )

    def _task_definition_arns_finding(self, function: lambda_.Function) -> str:
        return f"{arn_prefix_finding(function, 'ecs')}task-definition/{self.task_definition_prefix}*"

    def _task_arns_finding(self, function: lambda_.Function) -> str:
        # How cdk-nag prints task_arns in the function's template: intrinsics as <...>.
        cluster = self.cluster.node.default_child
        if not isinstance(cluster, CfnElement):
            raise TypeError("unexpected ECS cluster resource")
        cluster_name = reference_finding(function, cluster)
        return f"{arn_prefix_finding(function, 'ecs')}task/{cluster_name}/*"


def _without_task_role(task_definition: ecs.TaskDefinition) -> None:
    """CDK always gives a task definition a task role; a sandbox must have none (no credentials endpoint)."""
    cfn = task_definition.node.default_child
    if not isinstance(cfn, ecs.CfnTaskDefinition):
        raise TypeError("unexpected task definition resource")
    cfn.add_property_deletion_override("TaskRoleArn")
    if not task_definition.node.try_remove_child("TaskRole"):
        raise ValueError("CDK's default task role was not where expected")
