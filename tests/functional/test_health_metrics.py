"""GET /health (dependency checks), GET /metrics (Prometheus text), record_metric, audit, bind_request."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from sandboxcp.adapters.probes import AwsHealthChecks
from sandboxcp.domain.models import Execution
from sandboxcp.domain.states import ExecutionStatus, SessionStatus
from sandboxcp.observability import (
    REGISTRY,
    audit,
    bind_request,
    logger,
    metrics,
    prom_name,
    record_metric,
)
from sandboxcp.services.health import check_health
from tests.functional.conftest import RecordingRuntime, body, invoke, sample_event, seed_session


class PingRuntime(RecordingRuntime):
    def __init__(self, answer: bool | Exception = True) -> None:
        super().__init__()
        self.answer = answer

    def ping(self) -> bool:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class FakeChecks:
    def __init__(self, **failing: Any) -> None:
        self.failing = failing

    def _run(self, name: str) -> None:
        what = self.failing.get(name)
        if isinstance(what, float):
            time.sleep(what)
        elif what is not None:
            raise what

    def dynamodb(self) -> None:
        self._run("dynamodb")

    def storage(self) -> None:
        self._run("storage")

    def runtime(self) -> None:
        self._run("runtime")


LogReader = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_lines() -> Iterator[LogReader]:
    """Read back the JSON lines the powertools logger writes (captured with its own formatter)."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logger.registered_formatter)
    logger._logger.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in buf.getvalue().splitlines() if line.startswith("{")]
    finally:
        logger._logger.removeHandler(handler)


# -- health -------------------------------------------------------------------------------------------------
def test_health_checks_dynamodb_s3_and_the_runtime(deps):
    deps.runtime = PingRuntime(True)
    resp = invoke("health", sample_event("health"))
    assert resp["statusCode"] == 200
    result = body(resp)
    assert result["status"] == "healthy"
    assert set(result["checks"]) == {"dynamodb", "s3", "runtime"}
    for check in result["checks"].values():
        assert check["status"] == "healthy" and check["latency_ms"] >= 0
    assert result["checks"]["runtime"]["runtime"] == "process"


def test_health_is_degraded_when_s3_or_the_runtime_fails(deps):
    deps.runtime = PingRuntime(False)
    resp = invoke("health", sample_event("health"))
    assert resp["statusCode"] == 200
    result = body(resp)
    assert result["status"] == "degraded"
    assert result["checks"]["runtime"] == {
        "status": "unhealthy",
        "latency_ms": result["checks"]["runtime"]["latency_ms"],
        "error": "RuntimeError",
        "runtime": "process",
    }
    deps.runtime = PingRuntime(True)
    deps.health_checks = AwsHealthChecks(
        deps.settings.model_copy(update={"workspace_bucket": "no-such-bucket"}), lambda: deps.runtime
    )
    result = body(invoke("health", sample_event("health")))
    assert result["status"] == "degraded" and result["checks"]["s3"]["status"] == "unhealthy"
    assert result["checks"]["dynamodb"]["status"] == "healthy"


def test_health_is_503_only_when_dynamodb_is_down(deps):
    deps.health_checks = AwsHealthChecks(
        deps.settings.model_copy(update={"templates_table": "no-such-table"}), lambda: PingRuntime(True)
    )
    resp = invoke("health", sample_event("health"))
    assert resp["statusCode"] == 503
    result = body(resp)
    assert result["status"] == "unhealthy" and result["checks"]["dynamodb"]["status"] == "unhealthy"
    assert result["checks"]["dynamodb"]["error"] == "ResourceNotFoundException"
    assert result["checks"]["s3"]["status"] == "healthy"


def test_each_check_has_a_short_timeout(deps):
    deps.health_checks = FakeChecks(storage=5.0, runtime=ValueError("boom"))
    started = time.monotonic()
    status, result = check_health(deps, timeout_s=0.2)
    assert time.monotonic() - started < 4.0  # did not wait for the hung check
    assert status == 200 and result["status"] == "degraded"
    assert result["checks"]["s3"]["error"] == "Timeout"
    assert result["checks"]["runtime"]["error"] == "ValueError"
    assert "boom" not in json.dumps(result)  # the open endpoint tells the error type, not its text


# -- metrics endpoint ---------------------------------------------------------------------------------------
def _metrics(tenant: str = "tenant-a", *, admin: bool = False) -> dict[str, Any]:
    event = sample_event("metrics_prometheus")
    event["requestContext"]["authorizer"].update(
        tenant_id=tenant, principalId=tenant, is_admin="true" if admin else "false"
    )
    return invoke("metrics_prometheus", event)


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _execution(deps: Any, n: int, session_id: str, tenant: str, status: ExecutionStatus) -> None:
    eid = f"exec_20260101_{n:08d}"
    deps.executions.create(
        Execution(
            execution_id=eid,
            session_id=session_id,
            tenant_id=tenant,
            status=ExecutionStatus.PENDING,
            code="x",
            language="python",
            timeout=30,
            created_at=datetime.now(UTC),
        )
    )
    if status != ExecutionStatus.PENDING:
        deps.executions.transition(eid, status, now=datetime.now(UTC))


def test_metrics_endpoint_serves_prometheus_text(deps):
    REGISTRY.clear()
    for sid, status in [
        ("sess_0000000000000001", SessionStatus.RUNNING),
        ("sess_0000000000000002", SessionStatus.RUNNING),
        ("sess_0000000000000003", SessionStatus.CREATING),
        ("sess_0000000000000004", SessionStatus.TERMINATED),
    ]:
        seed_session(deps, sid, status=status)
    for i, state in enumerate([ExecutionStatus.PENDING, ExecutionStatus.PENDING, ExecutionStatus.RUNNING]):
        _execution(deps, i, "sess_0000000000000001", "tenant-a", state)
    record_metric("SessionsCreated", 1, tenant="tenant-a")
    record_metric("SessionsCreated", 2, tenant="tenant-a")
    record_metric("SessionsCreated", 1, tenant='we"ird\\')
    for ms in range(1, 101):
        record_metric("ExecutionDuration", ms, unit="Milliseconds", language="python")

    resp = _metrics(admin=True)
    assert resp["statusCode"] == 200
    assert resp["multiValueHeaders"]["Content-Type"] == ["text/plain; version=0.0.4; charset=utf-8"]
    text = resp["body"]
    assert text.endswith("\n")
    samples = _samples(text)
    assert samples['sandboxcp_sessions_active{status="running"}'] == 2
    assert samples['sandboxcp_sessions_active{status="creating"}'] == 1
    assert samples["sandboxcp_executions_inflight"] == 3
    assert samples['sandboxcp_sessions_created_total{tenant="tenant-a"}'] == 3
    assert samples['sandboxcp_sessions_created_total{tenant="we\\"ird\\\\"}'] == 1
    duration = "sandboxcp_execution_duration_milliseconds"
    assert samples[f'{duration}{{language="python",quantile="0.5"}}'] == 50
    assert samples[f'{duration}{{language="python",quantile="0.95"}}'] == 95
    assert samples['sandboxcp_execution_duration_milliseconds{language="python",quantile="0.99"}'] == 99
    assert samples['sandboxcp_execution_duration_milliseconds_count{language="python"}'] == 100
    assert samples['sandboxcp_execution_duration_milliseconds_sum{language="python"}'] == 5050
    assert "# TYPE sandboxcp_sessions_created_total counter" in text
    assert "# TYPE sandboxcp_execution_duration_milliseconds summary" in text
    assert "# TYPE sandboxcp_sessions_active gauge" in text
    # Each metric family's HELP/TYPE appears once, before its samples (format 0.0.4).
    types = re.findall(r"^# TYPE (\S+) ", text, flags=re.M)
    assert len(types) == len(set(types))
    # A tenant's view is the same format, over its own figures.
    mine = _metrics("tenant-a")["body"]
    assert _samples(mine)['sandboxcp_sessions_created_total{tenant="tenant-a"}'] == 3
    types = re.findall(r"^# TYPE (\S+) ", mine, flags=re.M)
    assert len(types) == len(set(types)) and mine.endswith("\n")


def test_metrics_with_no_activity(deps):
    REGISTRY.clear()
    assert _samples(_metrics()["body"]) == {
        'sandboxcp_sessions_active{status="creating",tenant="tenant-a"}': 0,
        'sandboxcp_sessions_active{status="running",tenant="tenant-a"}': 0,
        'sandboxcp_executions_inflight{tenant="tenant-a"}': 0,
    }
    assert _samples(_metrics(admin=True)["body"]) == {
        'sandboxcp_sessions_active{status="creating"}': 0,
        'sandboxcp_sessions_active{status="running"}': 0,
        "sandboxcp_executions_inflight": 0,
    }


def _create_session(tenant: str) -> str:
    event = sample_event("sessions_create")
    event["requestContext"]["authorizer"].update(tenant_id=tenant, principalId=tenant)
    resp = invoke("sessions_create", event)
    assert resp["statusCode"] == 201, resp["body"]
    return str(body(resp)["session_id"])


def test_a_tenant_sees_only_its_own_figures(deps):
    """Counters recorded by the real service (sessions created through the handler) and summaries as the
    callbacks record them; gauges over each tenant's own sessions and executions. tenant-b has more of
    everything, so any leak shows in tenant-a's figures."""
    REGISTRY.clear()
    _create_session("tenant-a")
    b_sids = [_create_session("tenant-b") for _ in range(2)]
    seed_session(deps, "sess_00000000000000a1", tenant="tenant-a", status=SessionStatus.RUNNING)
    seed_session(deps, "sess_00000000000000b1", tenant="tenant-b", status=SessionStatus.RUNNING)
    seed_session(deps, "sess_00000000000000b2", tenant="tenant-b", status=SessionStatus.RUNNING)
    _execution(deps, 1, "sess_00000000000000a1", "tenant-a", ExecutionStatus.RUNNING)
    for n in range(2, 5):
        _execution(deps, n, "sess_00000000000000b1", "tenant-b", ExecutionStatus.PENDING)
    record_metric("ExecutionDuration", 7, unit="Milliseconds", language="python", tenant="tenant-a")
    record_metric("ExecutionDuration", 900, unit="Milliseconds", language="python", tenant="tenant-b")
    record_metric("LaunchLatency", 1234, unit="Milliseconds", runtime="process", tenant="tenant-b")

    a_text = _metrics("tenant-a")["body"]
    a = _samples(a_text)
    assert "tenant-b" not in a_text
    assert not any(sid in a_text for sid in [*b_sids, "sess_00000000000000b1", "sess_00000000000000b2"])
    assert "launch_latency" not in a_text and "900" not in a_text
    labelled = [name for name in a if "{" in name]
    assert labelled and all('tenant="tenant-a"' in name for name in labelled), labelled
    assert all("{" in name for name in a), "every series a tenant sees is labelled with its tenant"
    assert a['sandboxcp_sessions_created_total{template="python-basic",tenant="tenant-a"}'] == 1
    assert a['sandboxcp_sessions_active{status="creating",tenant="tenant-a"}'] == 1
    assert a['sandboxcp_sessions_active{status="running",tenant="tenant-a"}'] == 1
    assert a['sandboxcp_executions_inflight{tenant="tenant-a"}'] == 1
    assert a['sandboxcp_execution_duration_milliseconds_sum{language="python",tenant="tenant-a"}'] == 7

    b = _samples(_metrics("tenant-b")["body"])
    assert b['sandboxcp_sessions_created_total{template="python-basic",tenant="tenant-b"}'] == 2
    assert b['sandboxcp_sessions_active{status="creating",tenant="tenant-b"}'] == 2
    assert b['sandboxcp_sessions_active{status="running",tenant="tenant-b"}'] == 2
    assert b['sandboxcp_executions_inflight{tenant="tenant-b"}'] == 3
    assert not any("tenant-a" in name for name in b)

    admin_text = _metrics("operator", admin=True)["body"]
    admin = _samples(admin_text)
    assert admin['sandboxcp_sessions_created_total{template="python-basic",tenant="tenant-a"}'] == 1
    assert admin['sandboxcp_sessions_created_total{template="python-basic",tenant="tenant-b"}'] == 2
    assert admin['sandboxcp_launch_latency_milliseconds_count{runtime="process",tenant="tenant-b"}'] == 1
    assert admin['sandboxcp_sessions_active{status="creating"}'] == 3
    assert admin['sandboxcp_sessions_active{status="running"}'] == 3
    assert admin["sandboxcp_executions_inflight"] == 4


def test_operator_figures_are_for_admins_only(deps):
    REGISTRY.clear()
    event = sample_event("templates_create")
    assert invoke("templates_create", event)["statusCode"] == 201
    assert invoke("templates_create", event)["statusCode"] == 409
    record_metric("NodeStatusChanges", 1, status="unhealthy")
    samples = _samples(_metrics(admin=True)["body"])
    assert samples['sandboxcp_template_changes_total{action="create",outcome="success"}'] == 1
    assert samples['sandboxcp_template_changes_total{action="create",outcome="refused"}'] == 1
    assert samples['sandboxcp_node_status_changes_total{status="unhealthy"}'] == 1
    tenant_view = _metrics("tenant-a")["body"]
    assert "template_changes" not in tenant_view and "node_status_changes" not in tenant_view


# -- record_metric, audit, bind_request ----------------------------------------------------------------------
def test_prometheus_names():
    assert prom_name("SessionsCreated") == "sandboxcp_sessions_created"
    assert prom_name("HTTPRequests") == "sandboxcp_http_requests"
    assert prom_name("executions_submitted") == "sandboxcp_executions_submitted"
    assert prom_name("Exec-Latency p95") == "sandboxcp_exec_latency_p95"


def test_record_metric_feeds_cloudwatch_emf(deps, monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.clear_metrics()
    record_metric("SessionsCreated", 1)
    assert metrics.metric_set["SessionsCreated"]["Value"] == [1.0]
    record_metric("ExecutionsFinished", 1, outcome="success", language="python")
    emf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "SandboxControlPlane"
    assert directive["Metrics"] == [{"Name": "ExecutionsFinished", "Unit": "Count"}]
    assert sorted(directive["Dimensions"][0]) == ["language", "outcome", "service"]
    assert emf["outcome"] == "success" and emf["ExecutionsFinished"] == [1.0]
    assert "ExecutionsFinished" not in metrics.metric_set  # dimensions never leak onto the shared set
    # A tenant is EMF metadata (searchable in Logs Insights), not a dimension: no metric per tenant.
    record_metric("SessionsTerminated", 1, tenant="tenant-a")
    emf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert emf["tenant"] == "tenant-a" and emf["SessionsTerminated"] == [1.0]
    assert "SessionsTerminated" not in metrics.metric_set
    metrics.clear_metrics()


def test_record_metric_is_thread_safe():
    REGISTRY.clear()

    def work() -> None:
        for _ in range(500):
            record_metric("Hits", 1, route="x")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert REGISTRY.counter("Hits", route="x") == 4000
    metrics.clear_metrics()


def test_audit_lines_are_structured(log_lines):
    bind_request(tenant_id="tenant-a", session_id="sess_0000000000000001")
    try:
        audit("session.create", "success", template_id="python-basic")
        audit("session.terminate", "denied", tenant="tenant-z")
    finally:
        logger.remove_keys(["tenant_id", "session_id"])
    first, second = log_lines()[-2:]
    assert first["audit"] is True and first["level"] == "INFO"
    assert (first["action"], first["outcome"], first["tenant"]) == ("session.create", "success", "tenant-a")
    assert first["template_id"] == "python-basic" and first["session_id"] == "sess_0000000000000001"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", first["time"])
    assert (second["tenant"], second["outcome"]) == ("tenant-z", "denied")


@pytest.mark.parametrize(
    "field",
    ["token", "callback_token", "api_key", "apiKey", "secret", "client_secret", "password", "Authorization"],
)
def test_audit_refuses_fields_named_like_secrets(log_lines, field):
    with pytest.raises(ValueError, match="secrets"):
        audit("execution.submit", "success", **{field: "x", "execution_id": "exec_1"})
    assert log_lines() == []
    with pytest.raises(ValueError):
        bind_request(tenant_id="t", **{field: "x"})


def test_bind_request_tags_every_line_of_the_invocation(deps, log_lines):
    event = sample_event("containers_get")  # no such container: the refusal is logged
    assert invoke("containers_get", event)["statusCode"] == 404
    lines = [line for line in log_lines() if line.get("function_name") == "containers_get"]
    assert lines, "the handler logged nothing"
    assert all(line["tenant_id"] == "tenant-a" for line in lines)
    assert all(line["container_id"] == "proc-sess_0000000000000001" for line in lines)
    # The next invocation starts clean (inject_lambda_context clear_state).
    invoke("health", sample_event("health"))
    logger.info("after")
    assert "tenant_id" not in log_lines()[-1]
