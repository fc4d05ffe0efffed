"""Internal (executor callback) endpoints: ownership by callback token, state changes, idempotent results."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from sandboxcp.domain.states import ExecutionStatus, SessionStatus
from tests.functional.conftest import (
    SAMPLE_EXECUTION,
    SAMPLE_SESSION,
    body,
    invoke,
    sample_event,
    seed_session,
    with_path,
)


def _seed_execution(deps):
    from sandboxcp.domain import clock
    from sandboxcp.domain.models import Execution

    deps.executions.create(
        Execution(
            execution_id=SAMPLE_EXECUTION,
            session_id=SAMPLE_SESSION,
            tenant_id="tenant-a",
            status=ExecutionStatus.PENDING,
            code="def handler(e): return 42",
            language="python",
            timeout=30,
            created_at=clock.now(),
        )
    )


def test_container_ready_makes_the_session_running_and_releases_the_task_token(deps):
    seed_session(deps, status=SessionStatus.CREATING)
    resp = invoke("internal_container_ready", sample_event("internal_container_ready"))
    assert resp["statusCode"] == 200
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert stored is not None and stored.status == SessionStatus.RUNNING and stored.started_at
    assert deps.launch.ready == [("task-token-1", {"session_id": SAMPLE_SESSION, "status": "running"})]
    again = invoke("internal_container_ready", sample_event("internal_container_ready"))
    assert again["statusCode"] == 200 and len(deps.launch.ready) == 1


def _ready_with(report: object) -> dict:
    event = sample_event("internal_container_ready")
    event["body"] = json.dumps(report)
    return event


def test_container_ready_keeps_the_features_the_executor_announces(deps):
    """Known features only (an unknown one is dropped); a later report, as a pooled executor bound by
    an inline claim sends to a session already running, updates them."""
    seed_session(deps, status=SessionStatus.CREATING)
    report = {"container_id": "c", "features": ["from-the-future", "workspace-presign-on-demand"]}
    assert invoke("internal_container_ready", _ready_with(report))["statusCode"] == 200
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert stored is not None and stored.executor_features == ["workspace-presign-on-demand"]
    assert invoke("internal_container_ready", _ready_with({"container_id": "c"}))["statusCode"] == 200
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert stored is not None and stored.status == SessionStatus.RUNNING and stored.executor_features == []
    assert invoke("internal_container_ready", _ready_with(report))["statusCode"] == 200
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert stored is not None and stored.executor_features == ["workspace-presign-on-demand"]


def test_container_ready_refuses_malformed_features(deps):
    seed_session(deps, status=SessionStatus.CREATING)
    for features in ("workspace-presign-on-demand", [1], [None], ["x" * 65], ["f"] * 17, {"a": 1}):
        resp = invoke("internal_container_ready", _ready_with({"container_id": "c", "features": features}))
        assert resp["statusCode"] == 400, features
        assert set(body(resp)) >= {"error_code", "description", "error_detail", "solution", "request_id"}
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert stored is not None and stored.status == SessionStatus.CREATING  # nothing recorded


def test_a_callback_token_is_refused_on_another_sessions_resources(deps):
    other = "sess_0000000000000002"
    seed_session(deps, status=SessionStatus.CREATING)
    seed_session(deps, other, status=SessionStatus.CREATING)
    event = with_path(sample_event("internal_container_ready"), session_id=other)
    resp = invoke("internal_container_ready", event)
    assert resp["statusCode"] == 403
    assert body(resp)["error_code"] == "Sandbox.Forbidden"
    stored = deps.sessions.get(other)
    assert stored is not None and stored.status == SessionStatus.CREATING

    _seed_execution(deps)
    for module in ("internal_execution_status", "internal_heartbeat", "internal_execution_result"):
        event = sample_event(module)
        event["requestContext"]["authorizer"]["session_id"] = other
        assert invoke(module, event)["statusCode"] == 403, module
    execution = deps.executions.get(SAMPLE_EXECUTION)
    assert execution is not None and execution.status == ExecutionStatus.PENDING


def test_container_exited_fails_the_session_and_destroys_the_sandbox(deps):
    seed_session(deps)
    resp = invoke("internal_container_exited", sample_event("internal_container_exited"))
    assert resp["statusCode"] == 200
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert stored is not None and stored.status == SessionStatus.FAILED
    assert "137" in (stored.error_message or "")
    assert deps.runtime.destroyed == [f"proc-{SAMPLE_SESSION}"]


def test_status_heartbeat_then_result(deps):
    seed_session(deps)
    _seed_execution(deps)
    assert invoke("internal_execution_status", sample_event("internal_execution_status"))["statusCode"] == 200
    assert invoke("internal_heartbeat", sample_event("internal_heartbeat"))["statusCode"] == 200
    running = deps.executions.get(SAMPLE_EXECUTION)
    assert running is not None and running.status == ExecutionStatus.RUNNING and running.last_heartbeat_at
    resp = invoke("internal_execution_result", sample_event("internal_execution_result"))
    assert resp["statusCode"] == 200
    assert body(resp)["message"] == "Result created successfully"
    done = deps.executions.get(SAMPLE_EXECUTION)
    assert done is not None and done.status == ExecutionStatus.COMPLETED and done.outcome is not None
    assert done.outcome.return_value == 42
    late_beat = invoke("internal_heartbeat", sample_event("internal_heartbeat"))
    assert late_beat["statusCode"] == 409


def test_repeated_result_changes_nothing_and_returns_the_stored_outcome(deps):
    seed_session(deps)
    _seed_execution(deps)
    first = invoke("internal_execution_result", sample_event("internal_execution_result"))
    assert first["statusCode"] == 200
    repeat = invoke("internal_execution_result", sample_event("internal_execution_result"))
    assert body(repeat) == body(first)

    different = sample_event("internal_execution_result")
    payload = json.loads(different["body"])
    payload.update(status="failed", stdout="tampered", exit_code=1, return_value=None)
    different["body"] = json.dumps(payload)
    different["headers"]["Idempotency-Key"] = "another-key"
    resp = invoke("internal_execution_result", different)
    assert resp["statusCode"] == 200
    assert body(resp)["message"] == "Result already recorded" and body(resp)["status"] == "completed"
    stored = deps.executions.get(SAMPLE_EXECUTION)
    assert stored is not None and stored.outcome is not None
    assert stored.outcome.stdout == "hi\n" and stored.outcome.return_value == 42


def test_concurrent_results_store_one_outcome(deps, atomic_writes):
    seed_session(deps)
    _seed_execution(deps)
    from sandboxcp.domain.models import ExecutionOutcome
    from sandboxcp.services.callbacks import record_result

    base = json.loads(sample_event("internal_execution_result")["body"])
    outcomes = [ExecutionOutcome.model_validate({**base, "stdout": f"run {i}\n"}) for i in range(10)]
    with ThreadPoolExecutor(10) as pool:
        created = list(
            pool.map(lambda o: record_result(deps, SAMPLE_SESSION, SAMPLE_EXECUTION, o)[1], outcomes)
        )
    assert created.count(True) == 1
    stored = deps.executions.get(SAMPLE_EXECUTION)
    assert stored is not None and stored.outcome is not None
    assert stored.outcome.stdout == f"run {created.index(True)}\n"


def test_result_without_idempotency_key_is_refused(deps):
    seed_session(deps)
    _seed_execution(deps)
    event = sample_event("internal_execution_result")
    del event["headers"]["Idempotency-Key"]
    del event["multiValueHeaders"]["Idempotency-Key"]
    resp = invoke("internal_execution_result", event)
    assert resp["statusCode"] == 400
    assert "Idempotency-Key" in body(resp)["error_detail"]


def _ready_reporting(address: str) -> dict:
    event = sample_event("internal_container_ready")
    event["body"] = json.dumps({"container_id": f"proc-{SAMPLE_SESSION}", "executor_url": address})
    return event


def test_an_address_reported_by_the_sandbox_is_never_used(deps):
    """The trust boundary (4): the executor's address comes from the runtime. A sandbox that reports
    another address (another sandbox's executor, a host service) changes nothing."""
    seed_session(deps, status=SessionStatus.CREATING)
    resp = invoke("internal_container_ready", _ready_reporting("http://169.254.169.254:80"))
    assert resp["statusCode"] == 200
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert stored is not None and stored.status == SessionStatus.RUNNING
    assert stored.executor_url == f"unix:///tmp/{SAMPLE_SESSION}.sock"  # what the runtime's start gave


def test_without_an_address_from_start_the_runtime_is_asked_not_the_sandbox(deps):
    seed_session(deps, status=SessionStatus.CREATING)
    deps.sessions.update_fields(SAMPLE_SESSION, {"executor_url": None}, only_if=[SessionStatus.CREATING])
    asked = []

    def executor_url(container_id: str) -> str:
        asked.append(container_id)
        return "http://10.0.3.7:8080"  # e.g. the Pod IP, from the Kubernetes API

    deps.runtime.executor_url = executor_url
    deps.runtime.addresses_at_start = False  # eks: the Pod IP is known only once it runs
    resp = invoke("internal_container_ready", _ready_reporting("http://10.0.9.9:8080"))
    assert resp["statusCode"] == 200 and asked == [f"proc-{SAMPLE_SESSION}"]
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert stored is not None and stored.executor_url == "http://10.0.3.7:8080"
