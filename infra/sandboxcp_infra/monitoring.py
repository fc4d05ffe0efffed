"""One CloudWatch dashboard and the alarms worth waking someone for, all notifying one encrypted SNS topic.

Custom metrics are the functions' powertools Metrics (sandboxcp/observability.py): namespace
`SandboxControlPlane`, every metric carrying the `service` dimension powertools adds."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy, Stack
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
from sandboxcp_infra.naming import pascal
from sandboxcp_infra.schedules import Schedules

METRICS_SERVICE = metric_catalog.SERVICE  # the `service` dimension powertools adds to every metric
PERIOD = Duration.minutes(5)
PUBLIC_5XX_RATE = 0.05  # API Gateway's 5XXError averaged over requests is the share of 5xx answers
WIDGET_WIDTH = 12


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
            self, "Dashboard", dashboard_name=Stack.of(self).stack_name, default_interval=Duration.hours(3)
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
                title="State machines: failures",
                left=[
                    launch.metric_failed(period=PERIOD, label="launch failed"),
                    launch.metric_timed_out(period=PERIOD, label="launch timed out"),
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
