"""The live-output push channel (docs/streaming.md): an API Gateway WebSocket API. Not wired into the stack
yet; the wiring (see LiveOutputStreaming's docstring) is one construct call in the stack.

    wss://{api}.execute-api.{region}.amazonaws.com/live     Authorization: Bearer <api key>
    -> {"action": "subscribe", "execution_id": "exec_...", "after": 0}
    <- {"type": "output", "stream_id", "chunks": [...]} ... {"type": "gap", "seq"} ... {"type": "complete"}

$connect runs `ws_authorizer` (the API key -> tenant, passed to every message of the connection) and
`ws_connect`; `subscribe` runs `ws_subscribe` (tenant check, subscription, backlog); $disconnect runs
`ws_disconnect`. The executor's callbacks that store output or end an execution (`internal_execution_output`,
`internal_execution_result`, `internal_execution_status`) fan out with PostToConnection: they get the
subscribers table, the management endpoint (OUTPUT_PUSH_ENDPOINT, OUTPUT_SUBSCRIBERS_TABLE) and the grant
to post to connections."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from aws_cdk import CfnElement, Duration, RemovalPolicy
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from sandboxcp.adapters.tables import OutputSubscriberRecord
from sandboxcp_infra.data import table_schema
from sandboxcp_infra.functions import live_alias, snap_start_props
from sandboxcp_infra.layers import ARCHITECTURE, ASSET_EXCLUDES, REPO_ROOT, RUNTIME
from sandboxcp_infra.nag import acknowledge, arn_prefix_finding, reference_finding
from sandboxcp_infra.naming import env_var, pascal

STAGE = "live"
TTL_ATTRIBUTE = "expires_at"  # OutputSubscriberRecord.expires_at (TTLAttribute)
# The callbacks that publish (stored chunks, or the end of an execution).
PUBLISHERS = ("internal_execution_output", "internal_execution_result", "internal_execution_status")
MEMORY_MB = 512
# One JSON line per WebSocket event (connect, message, disconnect) in the stage's access log group.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "eventType": "$context.eventType",
        "routeKey": "$context.routeKey",
        "connectionId": "$context.connectionId",
        "status": "$context.status",
        "principal": "$context.authorizer.principalId",
        "authorizerError": "$context.authorizer.error",
        "integrationError": "$context.integrationErrorMessage",
        "error": "$context.error.message",
    },
    separators=(",", ":"),
)


class LiveOutputStreaming(Construct):
    """The WebSocket API, its four functions, the subscribers table, and the publishers' grants.

    Wiring (in the stack, after the data tables and the functions exist):

        LiveOutputStreaming(
            self, "LiveOutput",
            layers=<the same layers as every function>,
            environment=<the same environment as every function (table names, POWERTOOLS_*)>,
            log_retention=<the same retention>,
            tables=data.tables,                  # reads api_keys, executions, output_chunks
            publishers={m: functions.by_module[m] for m in streaming.PUBLISHERS},
        )

    and a CfnOutput of `construct.url` (the wss:// URL clients connect to)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
        log_retention: logs.RetentionDays,
        tables: Mapping[str, dynamodb.ITable],
        publishers: Mapping[str, lambda_.Function],
        logging_dependency: IConstruct | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        schema = table_schema(OutputSubscriberRecord)
        self.subscribers = dynamodb.Table(
            self,
            "Subscribers",
            partition_key=schema.partition_key,
            sort_key=schema.sort_key,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=TTL_ATTRIBUTE,
            removal_policy=RemovalPolicy.DESTROY,  # connections last 2 h at most: nothing to keep
        )
        for gsi in schema.global_indexes:
            self.subscribers.add_global_secondary_index(
                index_name=gsi.name,
                partition_key=gsi.partition_key,
                sort_key=gsi.sort_key,
                projection_type=gsi.projection,
            )

        code = lambda_.Code.from_asset(str(REPO_ROOT / "functions"), exclude=ASSET_EXCLUDES)

        def function(module: str, timeout_s: int = 10) -> lambda_.Function:
            group = Construct(self, pascal(module))
            role = iam.Role(
                group,
                "Role",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"sandboxcp {module} (live-output WebSocket API)",
            )
            log_group = logs.LogGroup(
                group, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
            )
            log_group.grant_write(role)
            fn = lambda_.Function(
                group,
                "Function",
                description=f"sandboxcp {module}",
                runtime=RUNTIME,
                architecture=ARCHITECTURE,
                handler=f"{module}.handler",
                code=code,
                layers=list(layers),
                role=role,
                log_group=log_group,
                memory_size=MEMORY_MB,
                timeout=Duration.seconds(timeout_s),
                tracing=lambda_.Tracing.ACTIVE,
                environment=dict(environment),
                **snap_start_props(),
            )
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray's PutTraceSegments/PutTelemetryRecords (active tracing) have no resource-level form.",
            )
            acknowledge(fn, "AwsSolutions-L1", f"Pinned to {RUNTIME.name}, like every function of the stack")
            self.functions[module] = fn
            # The WebSocket API invokes the SnapStart alias (sandboxcp_infra.functions.SNAP_START_GROUPS):
            # someone waits on every connect.
            self.entry_points[module] = live_alias(group, fn)
            return fn

        self.functions: dict[str, lambda_.Function] = {}
        self.entry_points: dict[str, lambda_.IFunction] = {}
        authorizer_fn = function("ws_authorizer")
        function("ws_connect")
        disconnect = function("ws_disconnect")
        subscribe = function("ws_subscribe", timeout_s=29)
        tables["api_keys"].grant_read_data(authorizer_fn)
        _acknowledge_indexes(authorizer_fn, tables["api_keys"])
        if "tenants" in tables:  # per-tenant request counting in authenticate_api_key, where deployed
            tables["tenants"].grant_read_write_data(authorizer_fn)
            _acknowledge_indexes(authorizer_fn, tables["tenants"])
        tables["executions"].grant_read_data(subscribe)
        tables["output_chunks"].grant_read_data(subscribe)
        for table in (tables["executions"], tables["output_chunks"]):
            _acknowledge_indexes(subscribe, table)
        for fn in (subscribe, disconnect):
            self.subscribers.grant_read_write_data(fn)
            _acknowledge_indexes(fn, self.subscribers)

        self.api = apigwv2.WebSocketApi(
            self,
            "Api",
            description="Sandbox Control Plane live output (WebSocket, Bearer <api key> on connect)",
            connect_route_options=apigwv2.WebSocketRouteOptions(
                integration=integrations.WebSocketLambdaIntegration(
                    "Connect", self.entry_points["ws_connect"]
                ),
                authorizer=authorizers.WebSocketLambdaAuthorizer(
                    "Authorizer",
                    self.entry_points["ws_authorizer"],
                    identity_source=["route.request.header.Authorization"],
                ),
            ),
            disconnect_route_options=apigwv2.WebSocketRouteOptions(
                integration=integrations.WebSocketLambdaIntegration(
                    "Disconnect", self.entry_points["ws_disconnect"]
                )
            ),
        )
        self.api.add_route(
            "subscribe",
            integration=integrations.WebSocketLambdaIntegration(
                "Subscribe", self.entry_points["ws_subscribe"]
            ),
        )
        self.stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=STAGE,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=100, burst_limit=200),
        )
        self.url = self.stage.url  # wss://...
        # Access logs (one JSON line per connect, message and disconnect); WebSocketStage has no L2 setting
        # for them in this CDK version, so they are set on the CfnStage.
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        cfn_stage = self.stage.node.default_child
        if not isinstance(cfn_stage, apigwv2.CfnStage):
            raise TypeError("unexpected WebSocket stage resource")
        cfn_stage.access_log_settings = apigwv2.CfnStage.AccessLogSettingsProperty(
            destination_arn=self.access_logs.log_group_arn, format=ACCESS_LOG_FORMAT
        )
        if logging_dependency is not None:
            # API Gateway logs through the account's CloudWatch role: set it before the stage logs.
            self.stage.node.add_dependency(logging_dependency)
        for route_key in ("$disconnect", "subscribe"):
            route = self.api.node.try_find_child(f"{route_key}-Route")
            if route is None:
                raise ValueError(f"WebSocket route {route_key} not where expected")
            acknowledge(
                route,
                "AwsSolutions-APIG4",
                f"API Gateway WebSocket APIs take an authorizer on $connect only; {route_key} runs on a "
                "connection the $connect authorizer admitted (its tenant travels with every message).",
            )

        push_env = {
            env_var("output_push_endpoint"): self.stage.callback_url,  # https://... (management API)
            env_var("output_subscribers_table"): self.subscribers.table_name,
        }
        for fn in (subscribe, disconnect, *publishers.values()):
            for key, value in push_env.items():
                fn.add_environment(key, value)
            self.stage.grant_management_api_access(fn)
        for fn in publishers.values():
            self.subscribers.grant_read_write_data(fn)  # query subscribers; drop gone or finished ones
            _acknowledge_indexes(fn, self.subscribers)
        for fn in (subscribe, disconnect, *publishers.values()):
            if fn.role is None:
                raise ValueError(f"{fn.node.path} has no role")
            acknowledge(
                fn.role,
                f"AwsSolutions-IAM5[Resource::{arn_prefix_finding(fn, 'execute-api')}"
                f"{reference_finding(fn, _cfn(self.api))}/{STAGE}/*/@connections/*]",
                "execute-api:ManageConnections on this WebSocket API's own stage: connection ids exist only "
                "at run time (PostToConnection to the subscribers of an execution).",
            )


def _cfn(construct: IConstruct) -> CfnElement:
    """The CloudFormation resource of an L2 construct, which cdk-nag names in findings."""
    cfn = construct.node.default_child
    if not isinstance(cfn, CfnElement):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource")
    return cfn


def _acknowledge_indexes(function: lambda_.Function, table: dynamodb.ITable) -> None:
    """CDK grants a table's indexes as `<table arn>/index/*`: only that table's own GSIs."""
    cfn = table.node.default_child
    if not isinstance(cfn, dynamodb.CfnTable) or function.role is None:
        return
    acknowledge(
        function.role,
        f"AwsSolutions-IAM5[Resource::{reference_finding(function, cfn, 'Arn')}/index/*]",
        "Queries on this table's own global secondary indexes.",
    )
