"""The dashboard, the alarms and the encrypted topic they notify."""

from __future__ import annotations

import json
import re
from typing import Any

from sandboxcp import metric_catalog, observability
from sandboxcp.routes import JOBS, all_modules
from sandboxcp_infra.functions import METRICS_NAMESPACE
from sandboxcp_infra.monitoring import METRICS_SERVICE
from sandboxcp_infra.naming import pascal
from tests.infra import helpers as h
from tests.infra.conftest import Synthesized

CUSTOM_METRICS = (
    "SandboxStartFailures",
    "SessionsCreated",
    "SessionsTerminated",
    "ExecutionsCompleted",
    "LaunchLatency",
    "ExecutionDuration",
    "ExecutionsCrashed",
)
SEARCH = re.compile(r"SEARCH\('\{([^}]*)\} MetricName=\\?\"(\w+)\\?\"")


def _alarm(synth: Synthesized, name: str) -> dict[str, Any]:
    alarm = synth.stack.monitoring.alarms[name]
    props: dict[str, Any] = synth.resources[synth.logical_id(alarm)]["Properties"]
    return props


def _metric_names(alarm: dict[str, Any]) -> set[str]:
    if "MetricName" in alarm:
        return {alarm["MetricName"]}
    return {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}


def test_metric_names_match_the_code() -> None:
    assert observability.metrics.namespace == METRICS_NAMESPACE
    assert observability.SERVICE == METRICS_SERVICE


def test_alarm_topic_is_encrypted_and_tls_only(synthesized: Synthesized) -> None:
    topic_id = synthesized.logical_id(synthesized.stack.monitoring.topic)
    topic = synthesized.resources[topic_id]["Properties"]
    (key_id,) = h.refs(topic["KmsMasterKeyId"])
    key = synthesized.resources[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    cloudwatch = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch and set(h.as_list(cloudwatch[0]["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in h.of_type(synthesized, "AWS::SNS::TopicPolicy").values()
        if {"Ref": topic_id} in p["Properties"]["Topics"]
    ]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in policy
    )


def test_every_alarm_notifies_the_topic(synthesized: Synthesized) -> None:
    topic_id = synthesized.logical_id(synthesized.stack.monitoring.topic)
    alarms = h.of_type(synthesized, "AWS::CloudWatch::Alarm")
    assert len(alarms) == len(synthesized.stack.monitoring.alarms)
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
        # Absence alarms (a job that stopped) breach on missing data; the others do not.
        stopped = alarm["Properties"]["ComparisonOperator"] == "LessThanThreshold"
        assert alarm["Properties"]["TreatMissingData"] == ("breaching" if stopped else "notBreaching")


def test_public_api_5xx_rate_alarm(synthesized: Synthesized) -> None:
    alarm = _alarm(synthesized, "PublicApi5xxRate")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "AWS/ApiGateway",
        "5XXError",
        "Average",
    )
    assert alarm["Dimensions"] == [{"Name": "ApiName", "Value": "SandboxControlPlane-PublicApi"}]
    assert alarm["Threshold"] == 0.05 and alarm["Period"] == 300


def test_launch_failure_alarm(synthesized: Synthesized) -> None:
    alarm = _alarm(synthesized, "LaunchFailures")
    assert _metric_names(alarm) == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    launch_id = synthesized.logical_id(synthesized.stack.workflow.state_machine)
    for metric in alarm["Metrics"]:
        if "MetricStat" in metric:
            (dimension,) = metric["MetricStat"]["Metric"]["Dimensions"]
            assert dimension == {"Name": "StateMachineArn", "Value": {"Ref": launch_id}}
    assert alarm["Threshold"] == 0


def test_crashed_executions_alarm(synthesized: Synthesized) -> None:
    alarm = _alarm(synthesized, "ExecutionsCrashed")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        METRICS_NAMESPACE,
        "ExecutionsCrashed",
        "Sum",
    )
    assert alarm["Dimensions"] == [{"Name": "service", "Value": METRICS_SERVICE}]
    assert (alarm["Period"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        300,
        0,
        "GreaterThanThreshold",
    )


def test_periodic_jobs_sweepers_and_dead_letters_alarm(synthesized: Synthesized) -> None:
    function_ids = h.function_ids(synthesized)
    for job in (j for j in JOBS if j.every_s is not None):
        alarm = _alarm(synthesized, f"{pascal(job.module)}Errors")
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
        assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_ids[job.module]}}]
    for module, sweeper in synthesized.stack.schedules.sweepers.items():
        alarm = _alarm(synthesized, f"{pascal(module)}SweeperFailures")
        assert _metric_names(alarm) == {"ExecutionsFailed", "ExecutionsTimedOut"}
        assert synthesized.logical_id(sweeper) in h.refs(alarm["Metrics"])
    alarm = _alarm(synthesized, "DeadLetters")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    queue_id = synthesized.logical_id(synthesized.stack.schedules.dead_letter_queue)
    assert h.refs(alarm["Dimensions"]) == {queue_id}


def test_dashboard_covers_apis_functions_state_machines_and_custom_metrics(synthesized: Synthesized) -> None:
    (dashboard,) = h.of_type(synthesized, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    referenced = h.refs(body)
    text = json.dumps(body)
    # One widget per metric family, built by loops: every function, the launch and every sweeper machine.
    assert set(h.function_ids(synthesized).values()) <= referenced
    assert synthesized.logical_id(synthesized.stack.workflow.state_machine) in referenced
    assert {synthesized.logical_id(s) for s in synthesized.stack.schedules.sweepers.values()} <= referenced
    for api in (synthesized.stack.public_api, synthesized.stack.internal_api):
        assert api.rest_api.rest_api_name in text
    for metric in (
        "4XXError",
        "5XXError",
        "Latency",
        "Errors",
        "Duration",
        "ExecutionsFailed",
        *CUSTOM_METRICS,
    ):
        assert metric in text, metric
    assert "outcome" in text  # ExecutionsCompleted by its outcome dimension (a SEARCH expression)
    assert len(all_modules()) == len(h.function_ids(synthesized))


def _dashboard_json(synth: Synthesized) -> dict[str, Any]:
    """The dashboard body as CloudWatch gets it, with every CloudFormation reference as a placeholder."""
    (dashboard,) = h.of_type(synth, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    return dict(json.loads("".join(p if isinstance(p, str) else "REF" for p in parts)))


def _custom_metrics_read(synth: Synthesized) -> list[tuple[str, set[str]]]:
    """(metric name, dimension names) of every custom metric the dashboard and the alarms read."""
    read: list[tuple[str, set[str]]] = []
    for widget in _dashboard_json(synth)["widgets"]:
        for entry in widget.get("properties", {}).get("metrics", []):
            if isinstance(entry[-1], dict) and "expression" in entry[-1]:
                for schema, name in SEARCH.findall(entry[-1]["expression"]):
                    namespace, *dims = schema.split(",")
                    if namespace == METRICS_NAMESPACE:
                        read.append((name, set(dims)))
            elif entry[0] == METRICS_NAMESPACE:
                fields = [f for f in entry[2:] if not isinstance(f, dict)]
                read.append((entry[1], set(fields[0::2])))
    for alarm in h.of_type(synth, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        stats = (
            [props]
            if "MetricName" in props
            else [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        )
        for stat in stats:
            if stat.get("Namespace") == METRICS_NAMESPACE:
                read.append((stat["MetricName"], {d["Name"] for d in stat.get("Dimensions", [])}))
    return read


def test_the_dashboard_and_alarms_read_what_the_code_emits(synthesized: Synthesized) -> None:
    """Each custom series is the metric the code emits with exactly its dimension set (+ service): a
    renamed metric or another dimension set is another CloudWatch metric, and its series stays empty."""
    read = _custom_metrics_read(synthesized)
    assert {name for name, _ in read} >= set(CUSTOM_METRICS)
    for name, dims in read:
        spec = metric_catalog.CATALOG.get(name)
        assert spec is not None, f"{name} is read but never emitted"
        assert dims == {"service", *spec.dimensions}, (name, dims)


def test_a_job_that_stops_running_alarms(synthesized: Synthesized) -> None:
    periodic = synthesized.stack.schedules.job_functions
    assert set(periodic) == {job.module for job in JOBS if job.every_s}
    for module in periodic:
        alarm = _alarm(synthesized, f"{pascal(module)}Stopped")
        assert (alarm["MetricName"], alarm["Statistic"], alarm["Threshold"]) == ("Invocations", "Sum", 1)
        assert alarm["ComparisonOperator"] == "LessThanThreshold" and alarm["TreatMissingData"] == "breaching"
        function_id = synthesized.logical_id(periodic[module])
        assert h.refs(alarm["Dimensions"]) == {function_id}


def test_internal_api_lambda_and_dynamodb_throttle_alarms(synthesized: Synthesized) -> None:
    internal = _alarm(synthesized, "InternalApi5xxRate")
    assert internal["Dimensions"] == [
        {"Name": "ApiName", "Value": synthesized.stack.internal_api.rest_api.rest_api_name}
    ]
    throttles = _alarm(synthesized, "LambdaThrottles")
    assert (throttles["Namespace"], throttles["MetricName"], throttles.get("Dimensions")) == (
        "AWS/Lambda",
        "Throttles",
        None,
    )
    for name, table in synthesized.stack.data.tables.items():
        alarm = _alarm(synthesized, f"{pascal(name)}TableThrottles")
        assert _metric_names(alarm) == {"ReadThrottleEvents", "WriteThrottleEvents"}
        refs = set().union(
            *(h.refs(m["MetricStat"]["Metric"]["Dimensions"]) for m in alarm["Metrics"] if "MetricStat" in m)
        )
        assert refs == {synthesized.logical_id(table)}


def test_sandbox_start_failures_alarm(variant: Synthesized) -> None:
    """launch.start_sandbox counts a runtime's refusal (RunTask failures among them) per runtime."""
    alarm = _alarm(variant, "SandboxStartFailures")
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        METRICS_NAMESPACE,
        "SandboxStartFailures",
        "Sum",
    )
    assert sorted(alarm["Dimensions"], key=lambda d: d["Name"]) == [
        {"Name": "runtime", "Value": variant.variant},
        {"Name": "service", "Value": METRICS_SERVICE},
    ]
    assert (alarm["Threshold"], alarm["TreatMissingData"]) == (0, "notBreaching")


def test_fargate_vcpu_quota_alarm_on_ecs_only(variant: Synthesized) -> None:
    if variant.variant != "ecs":
        assert "FargateVcpuQuota" not in variant.stack.monitoring.alarms
        return
    alarm = _alarm(variant, "FargateVcpuQuota")
    (usage,) = [m for m in alarm["Metrics"] if "MetricStat" in m]
    (expression,) = [m for m in alarm["Metrics"] if "Expression" in m]
    metric = usage["MetricStat"]["Metric"]
    assert (metric["Namespace"], metric["MetricName"]) == ("AWS/Usage", "ResourceCount")
    assert {d["Name"]: d["Value"] for d in metric["Dimensions"]} == {
        "Service": "Fargate",
        "Type": "Resource",
        "Resource": "vCPU",
        "Class": "Standard/OnDemand",
    }
    assert expression["Expression"] == f"{usage['Id']} / SERVICE_QUOTA({usage['Id']})"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0.8, "GreaterThanThreshold")


def test_a_sweeper_that_stops_starting_alarms(synthesized: Synthesized) -> None:
    for module, sweeper in synthesized.stack.schedules.sweepers.items():
        alarm = _alarm(synthesized, f"{pascal(module)}SweeperStopped")
        assert (alarm["MetricName"], alarm["Threshold"]) == ("ExecutionsStarted", 1)
        assert alarm["ComparisonOperator"] == "LessThanThreshold" and alarm["TreatMissingData"] == "breaching"
        assert h.refs(alarm["Dimensions"]) == {synthesized.logical_id(sweeper)}


def test_container_usage_alarms_follow_the_catalogue(synthesized: Synthesized) -> None:
    """An alarm above 80 % for each of ContainerCpu/Memory/DiskPercent the catalogue holds, none otherwise."""
    from sandboxcp.metric_catalog import MetricSpec
    from sandboxcp_infra.monitoring import (
        CONTAINER_USAGE_METRICS,
        container_usage_metrics,
        custom_metric_max,
    )

    fake = {name: MetricSpec(name, "Percent") for name in CONTAINER_USAGE_METRICS[:2]}
    assert container_usage_metrics(fake) == list(CONTAINER_USAGE_METRICS[:2])
    assert container_usage_metrics({}) == []
    catalogued = container_usage_metrics()
    alarms = synthesized.stack.monitoring.alarms
    assert {f"{name}High" for name in CONTAINER_USAGE_METRICS} & set(alarms) == {
        f"{name}High" for name in catalogued
    }
    for name in catalogued:
        alarm = _alarm(synthesized, f"{name}High")
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (80, "GreaterThanThreshold")
        assert name in json.dumps(alarm)

    # Alarms take no SEARCH: a metric with dimensions is read through a Metrics Insights query instead.
    metric_catalog.CATALOG["ContainerCpuPercent__probe"] = MetricSpec(
        "ContainerCpuPercent__probe", "Percent", ("template",)
    )
    try:
        query = custom_metric_max("ContainerCpuPercent__probe")
        assert query.expression == (
            'SELECT MAX(ContainerCpuPercent__probe) FROM SCHEMA("SandboxControlPlane", service, template)'
            f" WHERE service = '{METRICS_SERVICE}'"
        )
    finally:
        del metric_catalog.CATALOG["ContainerCpuPercent__probe"]


def test_alarm_email_is_required_or_explicitly_declined() -> None:
    import pytest
    from aws_cdk import App

    from sandboxcp_infra.config import ConfigError, DeploymentConfig
    from tests.infra.conftest import cdk_context

    def config(**context: Any) -> DeploymentConfig:
        return DeploymentConfig.from_context(App(context=cdk_context(**context)).node)

    context = cdk_context()
    del context["alarm_email"]
    with pytest.raises(ConfigError, match=r"'alarm_email' is required.*-c alarm_email=none"):
        DeploymentConfig.from_context(App(context=context).node)
    with pytest.raises(ConfigError, match="must be an email address"):
        config(alarm_email="oncall")
    assert config(alarm_email="none").alarm_email is None
    assert config(alarm_email="NONE").alarm_email is None
    assert config(alarm_email="oncall@example.com").alarm_email == "oncall@example.com"


def test_the_synthesized_topic_has_no_subscription_when_declined(variant: Synthesized) -> None:
    assert h.of_type(variant, "AWS::SNS::Subscription") == {}  # the test context says alarm_email=none
