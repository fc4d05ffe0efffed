"""Every Lambda function, built by one loop over the route table's modules: adding an endpoint to
sandboxcp.routes adds its function here with no infra change."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_cdk import Annotations, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from sandboxcp import metric_catalog
from sandboxcp.routes import AUTHORIZERS, JOBS, LAUNCH_STEPS, ROUTES, Access, Job, Route, all_modules
from sandboxcp_infra.layers import ARCHITECTURE, ASSET_EXCLUDES, REPO_ROOT, RUNTIME
from sandboxcp_infra.nag import acknowledge
from sandboxcp_infra.naming import pascal

if TYPE_CHECKING:
    from sandboxcp_infra.network import Network

FUNCTIONS_DIR = REPO_ROOT / "functions"
# CPU scales with memory; 512 MB keeps cold starts (pydantic, powertools, boto3 imports) well under a second.
MEMORY_MB = 512
SERVICE_NAME = "sandboxcp"
METRICS_NAMESPACE = metric_catalog.NAMESPACE  # sandboxcp.observability's Metrics namespace
# What Lambda needs to attach a function to a VPC (AWSLambdaVPCAccessExecutionRole's actions, inline): EC2's
# network-interface calls on ENIs that do not exist yet, so no resource-level scoping is possible.
VPC_ACCESS_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)


# The nested stack each function lives in (stack.py), by what reaches it: a stack holds the functions its own
# resources integrate, so no two nested stacks reference each other.
#   public       the public API's routes
#   public_auth  the public API's authorizer, in the API's own stack: API Gateway's permission to invoke it
#                names the authorizer, and CDK puts that permission next to the function
#   launch       the launch workflow's steps, the internal API's routes and its authorizer (the workflow,
#                the internal API and its callback URL refer to each other, so they share a stack)
#   jobs         periodic and one-off jobs
PUBLIC, PUBLIC_AUTH, LAUNCH, JOBS_GROUP = "public", "public_auth", "launch", "jobs"
GROUPS = (PUBLIC, PUBLIC_AUTH, LAUNCH, JOBS_GROUP)

# Lambda SnapStart (docs/deploy.md, "SnapStart"): a cold start restores a snapshot of the initialised
# function instead of running its init (imports included). It works on published versions only, so each such
# function gets a version per change of its code or configuration and the alias LIVE_ALIAS on it, and every
# invoker (API Gateway routes and authorizers, the launch workflow, the WebSocket API) invokes the alias.
# It fits the groups whose cold starts someone waits for: the public and internal APIs, their authorizers
# and the launch steps. The jobs (schedules every few seconds or minutes, the one-off seeding) keep invoking
# $LATEST: nobody waits on their cold start, and Python's SnapStart bills every cached snapshot.
SNAP_START_GROUPS = frozenset({PUBLIC, PUBLIC_AUTH, LAUNCH})
LIVE_ALIAS = "live"


def snap_start_props(enabled: bool = True) -> dict[str, Any]:
    """The lambda_.Function properties that turn SnapStart on: snapshots of published versions, and a version
    replaced by the next one deleted with it (a retained version keeps its snapshot cached, and billed)."""
    if not enabled:
        return {}
    return {
        "snap_start": lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS,
        "current_version_options": lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
    }


def live_alias(scope: Construct, function: lambda_.Function) -> lambda_.Alias:
    """The alias LIVE_ALIAS on `function`'s current version (a new version whenever the function's code,
    layers or configuration change, environment variables added after this call included)."""
    Annotations.of(function).acknowledge_warning(
        "@aws-cdk/aws-lambda:snapStartRequirePublish",
        f"Published: the alias {LIVE_ALIAS!r} points at the function's current version, and every invoker "
        "invokes the alias",
    )
    return lambda_.Alias(scope, "Live", alias_name=LIVE_ALIAS, version=function.current_version)


_API_GROUP = {"public": PUBLIC, "internal": LAUNCH}
_AUTHORIZER_GROUP = {"api_key": PUBLIC_AUTH, "callback": LAUNCH}


@dataclass(frozen=True)
class FunctionSpec:
    module: str
    access: Access
    timeout_s: int
    group: str  # one of GROUPS

    @property
    def handler(self) -> str:
        return f"{self.module}.handler"


def function_specs() -> dict[str, FunctionSpec]:
    """Module -> spec for every entry of the route table, in all_modules() order; a module listed twice is a
    mistake in the table, not something to resolve silently."""
    unplaced = set(AUTHORIZERS) - set(_AUTHORIZER_GROUP)
    if unplaced:
        raise ValueError(f"functions._AUTHORIZER_GROUP places no authorizer {sorted(unplaced)}")
    entries: list[tuple[Route | Job, str]] = [
        *((route, _API_GROUP[route.api]) for route in ROUTES),
        *((job, _AUTHORIZER_GROUP[kind]) for kind, job in AUTHORIZERS.items()),
        *((job, LAUNCH) for job in LAUNCH_STEPS.values()),
        *((job, JOBS_GROUP) for job in JOBS),
    ]
    specs: dict[str, FunctionSpec] = {}
    for entry, group in entries:
        if entry.module in specs:
            raise ValueError(
                f"sandboxcp.routes lists module {entry.module!r} twice; one module, one function"
            )
        specs[entry.module] = FunctionSpec(entry.module, entry.access, entry.timeout_s, group)
    return {module: specs[module] for module in all_modules()}


class Functions:
    """One function per module, each with its own role (so grants stay per endpoint), its own log group with
    retention, X-Ray tracing and the shared layers. `by_module` maps module name -> function (to grant, add
    environment to, monitor); `entry_points` maps module name -> what its invokers invoke: the LIVE_ALIAS
    alias of a SnapStart function (SNAP_START_GROUPS), the function itself otherwise. Each function goes in a
    `Functions` construct under `homes[spec.group]` (a nested stack per group). The modules in `vpc_modules`
    run in `network`'s subnets behind its functions security group."""

    def __init__(
        self,
        *,
        homes: Mapping[str, Construct],
        layers: list[lambda_.ILayerVersion],
        environment: dict[str, str],
        log_retention: logs.RetentionDays,
        network: Network | None = None,
        vpc_modules: Collection[str] = (),
    ) -> None:
        self.specs = function_specs()
        self.by_module: dict[str, lambda_.Function] = {}
        self.entry_points: dict[str, lambda_.IFunction] = {}
        containers: dict[str, Construct] = {}
        # One asset per stack (a CDK asset belongs to one): the functions/ directory, each function picking
        # its module by handler.
        code: dict[str, lambda_.Code] = {}

        for module, spec in self.specs.items():
            if spec.group not in containers:
                containers[spec.group] = Construct(homes[spec.group], "Functions")
                code[spec.group] = lambda_.Code.from_asset(str(FUNCTIONS_DIR), exclude=ASSET_EXCLUDES)
            group = Construct(containers[spec.group], pascal(module))
            # An explicit role instead of CDK's default one: no AWSLambdaBasicExecutionRole managed policy,
            # log writes granted on this function's own log group only.
            role = iam.Role(
                group,
                "Role",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"sandboxcp {module}: grants derived from its access {list(spec.access)}",
            )
            log_group = logs.LogGroup(
                group, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
            )
            log_group.grant_write(role)
            placement = network if module in vpc_modules else None
            snap_start = spec.group in SNAP_START_GROUPS
            if placement is not None:
                role.add_to_policy(iam.PolicyStatement(actions=list(VPC_ACCESS_ACTIONS), resources=["*"]))
            function = lambda_.Function(
                group,
                "Function",
                description=f"sandboxcp {module}",
                runtime=RUNTIME,
                architecture=ARCHITECTURE,
                handler=spec.handler,
                code=code[spec.group],
                layers=layers,
                role=role,
                log_group=log_group,
                memory_size=MEMORY_MB,
                timeout=Duration.seconds(spec.timeout_s),
                tracing=lambda_.Tracing.ACTIVE,
                vpc=placement.vpc if placement else None,
                vpc_subnets=placement.subnets if placement else None,
                security_groups=[placement.functions_sg] if placement else None,
                environment={
                    **environment,
                    "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                    "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                    "POWERTOOLS_LOG_LEVEL": "INFO",
                    # We install no pydantic plugins: without this pydantic scans every installed
                    # distribution's entry points when the first model is defined, on each cold start.
                    "PYDANTIC_DISABLE_PLUGINS": "__all__",
                },
                **snap_start_props(snap_start),
            )
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::*]",
                "Actions without resource-level permissions: X-Ray's PutTraceSegments/PutTelemetryRecords "
                "(active tracing), Lambda's ENI calls for a VPC function (ec2:*NetworkInterface*, "
                "DescribeSubnets) and, for `runtime` functions on ECS, ecs:DescribeTaskDefinition and "
                "ecs:ListTasks (bound by the ecs:cluster condition); tests/infra asserts these are the only "
                "actions granted on '*'.",
            )
            acknowledge(
                function,
                "AwsSolutions-L1",
                f"Pinned to {RUNTIME.name}, the runtime the dependencies layer's wheels are built for; a new "
                "runtime is a deliberate change of layers.RUNTIME and PIP_PYTHON_VERSION together.",
            )
            self.by_module[module] = function
            self.entry_points[module] = live_alias(group, function) if snap_start else function

    def modules_with(self, access: str) -> list[str]:
        return [module for module, spec in self.specs.items() if access in spec.access]
