"""One CloudWatch dashboard and the alarms worth waking someone for, all notifying one encrypted SNS topic.

Custom metrics are the functions' powertools Metrics (sandboxcp/observability.py): namespace
`SandboxControlPlane`, every metric carrying the `service` dimension powertools adds."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from sandboxcp import metric_catalog
from sandboxcp_infra.functions import METRICS_NAMESPACE
from sandboxcp_infra.naming import deployment_name, pascal
from sandboxcp_infra.schedules import Schedules

METRICS_SERVICE = metric_catalog.SERVICE  # the `service` dimension powertools adds to every metric
PERIOD = Duration.minutes(5)
PUBLIC_5XX_RATE = 0.05  # API Gateway's 5XXError averaged over requests is the share of 5xx answers
WIDGET_WIDTH = 12
# Fargate's On-Demand vCPU count against its service quota: alarm while more than this share is in use, so
# the quota is raised before RunTask starts failing (docs/deploy.md, first-deploy checklist).
FARGATE_VCPU_QUOTA_SHARE = 0.8
FARGATE_VCPU_USAGE = {
    "Service": "Fargate",
    "Type": "Resource",
    "Resource": "vCPU",
    "Class": "Standard/OnDemand",
}
# Sandbox resource use the executor may report (catalogued by whoever emits them): an alarm above this
# percentage for each one the catalogue holds, none for those it does not.
CONTAINER_USAGE_METRICS = ("ContainerCpuPercent", "ContainerMemoryPercent", "ContainerDiskPercent")
CONTAINER_USAGE_PERCENT = 80


def custom_metric(
    name: str, statistic: str = "Sum", *, combine: bool = True, **dimensions: str
) -> cw.Metric | cw.MathExpression:
    """A metric of sandboxcp.metric_catalog, read the way the code emits it (CloudWatch treats each
    dimension set as another metric). With every catalogued dimension given: that one series. Otherwise
    a SEARCH over the metric's dimension set: one line per dimension value, or summed into one line
    (`combine`, Sum only: percentiles do not add up)."""
    spec = metric_catalog.CATALOG[name]
    if set(dimensions) - set(spec.dimensions):
        raise ValueError(f"{name} has no dimension {sorted(set(dimensions) - set(spec.dimensions))}")
    if set(dimensions) == set(spec.dimensions):
        return cw.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={"service": METRICS_SERVICE, **dimensions},
            statistic=statistic,
            period=PERIOD,
        )
    schema = ",".join([METRICS_NAMESPACE, *sorted(("service", *spec.dimensions))])
    terms = " ".join([f'MetricName="{name}"', *(f'{k}="{v}"' for k, v in sorted(dimensions.items()))])
    search = f"SEARCH('{{{schema}}} {terms}', '{statistic}', {int(PERIOD.to_seconds())})"
    summed = combine and statistic == "Sum"
    return cw.MathExpression(
        expression=f"SUM({search})" if summed else search,
        using_metrics={},
        label=name if summed else "",
        period=PERIOD,
    )


def custom_metric_max(name: str) -> cw.Metric | cw.MathExpression:
    """The highest value of a catalogued metric across all its dimension values, in a form an alarm accepts
    (alarms take no SEARCH): the metric itself when it has no dimensions besides `service`, otherwise a
    Metrics Insights query over its dimension set."""
    spec = metric_catalog.CATALOG[name]
    if not spec.dimensions:
        return custom_metric(name, "Maximum")
    schema = ", ".join([f'"{METRICS_NAMESPACE}"', *sorted(("service", *spec.dimensions))])
    return cw.MathExpression(
        expression=f"SELECT MAX({name}) FROM SCHEMA({schema}) WHERE service = '{METRICS_SERVICE}'",
        using_metrics={},
        label=f"{name} (max)",
        period=PERIOD,
    )


def container_usage_metrics(catalog: Mapping[str, object] = metric_catalog.CATALOG) -> list[str]:
    """The container usage metrics the catalogue holds, which get an alarm each."""
    return [name for name in CONTAINER_USAGE_METRICS if name in catalog]


def fargate_vcpu_quota_use() -> cw.MathExpression:
    """Share of the account's Fargate On-Demand vCPU quota in use (0..1): AWS/Usage against SERVICE_QUOTA."""
    usage = cw.Metric(
        namespace="AWS/Usage",
        metric_name="ResourceCount",
        dimensions_map=FARGATE_VCPU_USAGE,
        statistic="Maximum",
        period=PERIOD,
    )
    return cw.MathExpression(
        expression="usage / SERVICE_QUOTA(usage)",
        using_metrics={"usage": usage},
        label="Fargate vCPU quota in use",
        period=PERIOD,
    )


class Monitoring(Construct):
    """`dashboard`, `topic` (alarm notifications) and `alarms` by name."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        apis: Mapping[str, apigw.RestApi],
        public_api: apigw.RestApi,
        functions: Mapping[str, lambda_.Function],
        launch: sfn.StateMachine,
        schedules: Schedules,
        alarm_email: str | None,
        runtime: str,
        internal_api: apigw.RestApi,
        tables: Mapping[str, dynamodb.Table],
    ) -> None:
        super().__init__(scope, construct_id)

        # CloudWatch publishes to an encrypted topic only with a customer managed key that lets it.
        key = kms.Key(
            self,
            "TopicKey",
            description="sandboxcp alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
            )
        )
        self.topic = sns.Topic(
            self, "Alarms", display_name="sandboxcp alarms", master_key=key, enforce_ssl=True
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.alarms: dict[str, cw.Alarm] = {}

        self._alarm(
            "PublicApi5xxRate",
            public_api.metric_server_error(statistic="Average", period=PERIOD),
            threshold=PUBLIC_5XX_RATE,
            description=f"More than {PUBLIC_5XX_RATE:.0%} of public API requests answered 5xx over 5 min",
        )
        self._alarm(
            "LaunchFailures",
            cw.MathExpression(
                expression="failed + timedOut + aborted",
                using_metrics={
                    "failed": launch.metric_failed(period=PERIOD),
                    "timedOut": launch.metric_timed_out(period=PERIOD),
                    "aborted": launch.metric_aborted(period=PERIOD),
                },
                period=PERIOD,
            ),
            description="Launch state machine executions failed, timed out or were aborted",
        )
        self._alarm(
            "SandboxStartFailures",
            custom_metric("SandboxStartFailures", runtime=runtime),
            description=f"The {runtime} runtime refused or failed to start sandboxes (e.g. RunTask failures)",
        )
        if runtime == "ecs":
            self._alarm(
                "FargateVcpuQuota",
                fargate_vcpu_quota_use(),
                threshold=FARGATE_VCPU_QUOTA_SHARE,
                description=f"More than {FARGATE_VCPU_QUOTA_SHARE:.0%} of the account's Fargate On-Demand "
                "vCPU quota in use: raise it (Service Quotas) before sandbox launches fail",
            )
        for name in container_usage_metrics():
            self._alarm(
                f"{name}High",
                custom_metric_max(name),
                threshold=CONTAINER_USAGE_PERCENT,
                description=f"A sandbox's {name} above {CONTAINER_USAGE_PERCENT}% over 5 min",
            )
        self._alarm(
            "ExecutionsCrashed",
            custom_metric("ExecutionsCrashed"),
            description="Executions lost their heartbeat (reaped as crashed) in the last 5 min",
        )
        self._alarm(
            "DeadLetters",
            schedules.dead_letter_queue.metric_approximate_number_of_messages_visible(
                statistic="Maximum", period=PERIOD
            ),
            description="A schedule could not start its job or sweeper (events in the dead-letter queue)",
        )
        for module, function in schedules.job_functions.items():
            self._alarm(
                f"{pascal(module)}Errors",
                function.metric_errors(period=PERIOD),
                description=f"The periodic job {module} failed",
            )
        for module, function in schedules.job_functions.items():
            # A job that stops running raises no error: alarm on its absence. Sub-minute jobs are invoked
            # by their sweeper, the others by their EventBridge rule: either way, at least once in 5 min.
            self._alarm(
                f"{pascal(module)}Stopped",
                function.metric_invocations(period=PERIOD),
                threshold=1,
                below=True,
                description=f"The periodic job {module} did not run in the last 5 min",
            )
        self._alarm(
            "InternalApi5xxRate",
            internal_api.metric_server_error(statistic="Average", period=PERIOD),
            threshold=PUBLIC_5XX_RATE,
            description="Executor callbacks answered 5xx (results or heartbeats may be lost) over 5 min",
        )
        self._alarm(
            "LambdaThrottles",
            # Account-wide: an alarm reads at most 10 metrics, and there is a function per route.
            cw.Metric(namespace="AWS/Lambda", metric_name="Throttles", statistic="Sum", period=PERIOD),
            description="Lambda throttled invocations in this account and region (concurrency quota)",
        )
        for name, table in tables.items():
            self._alarm(
                f"{pascal(name)}TableThrottles",
                cw.MathExpression(
                    expression="reads + writes",
                    using_metrics={
                        "reads": table.metric("ReadThrottleEvents", statistic="Sum", period=PERIOD),
                        "writes": table.metric("WriteThrottleEvents", statistic="Sum", period=PERIOD),
                    },
                    period=PERIOD,
                ),
                description=f"DynamoDB throttled requests to the {name} table",
            )
        for module, sweeper in schedules.sweepers.items():
            # A rule that stops starting its sweeper raises no error either (its job's Stopped alarm fires
            # too; this one names the sweeper).
            self._alarm(
                f"{pascal(module)}SweeperStopped",
                sweeper.metric_started(period=PERIOD),
                threshold=1,
                below=True,
                description=f"The sweeper running {module} was not started in the last 5 min",
            )
        for module, sweeper in schedules.sweepers.items():
            self._alarm(
                f"{pascal(module)}SweeperFailures",
                cw.MathExpression(
                    expression="failed + timedOut",
                    using_metrics={
                        "failed": sweeper.metric_failed(period=PERIOD),
                        "timedOut": sweeper.metric_timed_out(period=PERIOD),
                    },
                    period=PERIOD,
                ),
                description=f"The sweeper running {module} failed or timed out",
            )

        self.dashboard = cw.Dashboard(
            self, "Dashboard", dashboard_name=deployment_name(self), default_interval=Duration.hours(3)
        )
        self.dashboard.add_widgets(cw.TextWidget(markdown="# Sandbox Control Plane", width=24, height=1))
        for name, api in apis.items():
            self.dashboard.add_widgets(
                cw.GraphWidget(
                    title=f"{name}: 4xx / 5xx",
                    left=[
                        api.metric_client_error(period=PERIOD, label="4xx"),
                        api.metric_server_error(period=PERIOD, label="5xx"),
                    ],
                    width=WIDGET_WIDTH,
                ),
                cw.GraphWidget(
                    title=f"{name}: latency",
                    left=[
                        api.metric_latency(statistic=stat, period=PERIOD, label=f"latency {stat}")
                        for stat in ("p50", "p90", "p99")
                    ],
                    width=WIDGET_WIDTH,
                ),
            )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Lambda errors per function",
                left=[fn.metric_errors(period=PERIOD, label=module) for module, fn in functions.items()],
                width=WIDGET_WIDTH,
                height=8,
                legend_position=cw.LegendPosition.RIGHT,
            ),
            cw.GraphWidget(
                title="Lambda duration p90 per function",
                left=[
                    fn.metric_duration(statistic="p90", period=PERIOD, label=module)
                    for module, fn in functions.items()
                ],
                width=WIDGET_WIDTH,
                height=8,
                legend_position=cw.LegendPosition.RIGHT,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Launch and sweeper failures",
                left=[
                    launch.metric_failed(period=PERIOD, label="launch failed"),
                    launch.metric_timed_out(period=PERIOD, label="launch timed out"),
                    custom_metric("SandboxStartFailures", runtime=runtime),
                    *(
                        sweeper.metric_failed(period=PERIOD, label=f"{module} sweeper failed")
                        for module, sweeper in schedules.sweepers.items()
                    ),
                ],
                width=WIDGET_WIDTH,
            ),
            cw.GraphWidget(
                title="Sessions",
                left=[custom_metric("SessionsCreated"), custom_metric("SessionsTerminated")],
                right=[custom_metric("LaunchLatency", "p90", runtime=runtime)],
                width=WIDGET_WIDTH,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Executions completed by outcome",
                left=[custom_metric("ExecutionsCompleted", combine=False)],
                width=WIDGET_WIDTH,
            ),
            cw.GraphWidget(
                title="Execution duration and crashes",
                left=[
                    custom_metric("ExecutionDuration", "p50"),
                    custom_metric("ExecutionDuration", "p90"),
                ],
                right=[custom_metric("ExecutionsCrashed")],
                width=WIDGET_WIDTH,
            ),
        )

    def _alarm(
        self,
        name: str,
        metric: cw.Metric | cw.MathExpression,
        *,
        description: str,
        threshold: float = 0,
        below: bool = False,
    ) -> None:
        """Alarm when `metric` goes above `threshold` (missing data is fine: nothing happened), or with
        `below` when it falls under it (missing data breaches: something that must run stopped)."""
        alarm = metric.create_alarm(
            self,
            name,
            alarm_description=description,
            threshold=threshold,
            comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD
            if below
            else cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cw.TreatMissingData.BREACHING if below else cw.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        self.alarms[name] = alarm
