"""Execution endpoints on moto with their sample events."""

from __future__ import annotations

import json
import re

import pytest

from sandboxcp.domain import clock
from sandboxcp.domain.models import ExecutionOutcome
from sandboxcp.domain.states import ExecutionStatus, SessionStatus
from tests.functional.conftest import SAMPLE_SESSION, body, invoke, sample_event, seed_session, with_path


def _submit(deps, payload=None):
    event = sample_event("executions_submit")
    if payload is not None:
        event["body"] = json.dumps(payload)
    return invoke("executions_submit", event)


def test_submit_records_pending_and_hands_it_to_the_executor(deps):
    seed_session(deps)
    resp = _submit(deps)
    assert resp["statusCode"] == 200
    out = body(resp)
    assert re.fullmatch(r"exec_[0-9]{8}_[a-z0-9]{8}", out["execution_id"])
    assert out["status"] == "pending"
    [(url, execution)] = deps.executor.submitted
    assert url == f"unix:///tmp/{SAMPLE_SESSION}.sock"
    assert execution.event == {"x": 21} and execution.language == "python"
    stored = deps.executions.get(out["execution_id"])
    assert stored is not None and stored.status == ExecutionStatus.PENDING


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"code": "x" * (100 * 1024 + 1), "language": "python"}, "100 KB"),
        ({"code": "print(1)", "language": "python", "timeout": 0}, "timeout"),
        ({"code": "print(1)", "language": "python", "timeout": 3601}, "timeout"),
        ({"code": "print(1)", "language": "cobol"}, "language"),
        ({"code": "", "language": "python"}, "code"),
        ({"language": "python"}, "code"),
        ({"code": "print(1)", "language": "python", "event": [1]}, "event"),
    ],
)
def test_bad_submissions_get_400(deps, payload, detail):
    seed_session(deps)
    resp = _submit(deps, payload)
    assert resp["statusCode"] == 400
    assert body(resp)["error_code"] == "Sandbox.InvalidParameter"
    assert detail in body(resp)["error_detail"]
    assert deps.executor.submitted == []


def test_submit_to_a_session_that_is_not_running_is_a_conflict(deps):
    seed_session(deps, status=SessionStatus.TERMINATED)
    resp = _submit(deps)
    assert resp["statusCode"] == 409
    assert "terminated" in body(resp)["error_detail"]


def test_status_result_detail_and_listing(deps):
    seed_session(deps)
    eid = body(_submit(deps))["execution_id"]

    def read(module, path_id=eid):
        return invoke(module, with_path(sample_event(module), execution_id=path_id))

    assert body(read("executions_status"))["status"] == "pending"
    early = read("executions_result")
    assert early["statusCode"] == 409
    outcome = ExecutionOutcome.model_validate(json.loads(sample_event("internal_execution_result")["body"]))
    deps.executions.record_outcome(eid, outcome, now=clock.now())
    result = body(read("executions_result"))
    assert result["return_value"] == 42 and result["stdout"] == "hi\n" and result["exit_code"] == 0
    assert result["metrics"]["duration_ms"] == 12.0
    detail = body(read("executions_get"))
    assert detail["status"] == "completed" and detail["code"].startswith("def handler")
    assert detail["result"]["status"] == "success"
    listed = body(invoke("executions_list", sample_event("executions_list")))
    assert listed["total"] == 1 and listed["executions"][0]["id"] == eid
    assert read("executions_get", "exec_20990101_zzzzzzzz")["statusCode"] == 404


def test_executions_of_another_tenant_are_not_found(deps):
    seed_session(deps)
    eid = body(_submit(deps))["execution_id"]
    event = with_path(sample_event("executions_status"), execution_id=eid)
    event["requestContext"]["authorizer"]["tenant_id"] = "tenant-other"
    resp = invoke("executions_status", event)
    assert resp["statusCode"] == 404
    assert body(resp)["error_code"] == "Sandbox.ExecutionNotFound"


class _AnsweringExecutor:
    """Stands in for the sandbox (not the subject here): reports an outcome as soon as it gets the run."""

    def __init__(self, deps):
        self.deps = deps

    def submit(self, executor_url, execution, workspace=None, *, executor_key="", wait_s=0.0):
        outcome = ExecutionOutcome.model_validate(
            json.loads(sample_event("internal_execution_result")["body"])
        )
        self.deps.executions.record_outcome(execution.execution_id, outcome, now=clock.now())


def test_execute_sync_returns_the_result_when_it_is_ready(deps):
    seed_session(deps)
    deps.executor = _AnsweringExecutor(deps)
    resp = invoke("executions_submit_sync", sample_event("executions_submit_sync"))
    assert resp["statusCode"] == 200
    assert body(resp)["return_value"] == 42 and body(resp)["status"] == "success"


class _ExecutorAnsweringWithTheResult:
    """An executor that ends the run within the wait and answers /execute with the result (no callback)."""

    def __init__(self, answer):
        self.answer = answer
        self.waits: list[float] = []

    def submit(self, executor_url, execution, workspace=None, *, executor_key="", wait_s=0.0):
        self.waits.append(wait_s)
        return self.answer if wait_s > 0 else None


def test_execute_sync_stores_the_result_the_executor_answers_with(deps):
    from sandboxcp.adapters.tables import SessionRecord

    seed_session(deps)
    deps.executor = _ExecutorAnsweringWithTheResult(
        json.loads(sample_event("internal_execution_result")["body"])
    )
    resp = invoke("executions_submit_sync", sample_event("executions_submit_sync"))
    assert resp["statusCode"] == 200, resp
    assert body(resp)["return_value"] == 42 and body(resp)["status"] == "success"
    assert 0 < deps.executor.waits[0] <= 25
    stored = deps.executions.get(body(resp)["execution_id"])
    assert stored is not None and stored.status == ExecutionStatus.COMPLETED
    assert stored.outcome is not None and stored.outcome.return_value == 42
    # Stored as the callback would have: the tenant's and the session's in-flight slots are back.
    assert deps.quotas.get("tenant-a").usage.inflight_executions == 0
    assert SessionRecord.get(SAMPLE_SESSION).executions_inflight == 0
    # An async submit never waits: its result comes by callback.
    assert invoke("executions_submit", sample_event("executions_submit"))["statusCode"] == 200
    assert deps.executor.waits[-1] == 0


def test_a_malformed_result_in_the_executors_answer_fails_the_execution_saying_so(deps):
    seed_session(deps)
    deps.executor = _ExecutorAnsweringWithTheResult({"status": "success", "exit_code": "not a number"})
    resp = invoke("executions_submit_sync", sample_event("executions_submit_sync"))
    assert resp["statusCode"] == 202, resp  # ended without an outcome: the execution's record, as polled
    assert body(resp)["status"] == "failed"
    stored = deps.executions.get(body(resp)["execution_id"])
    assert stored is not None and stored.status == ExecutionStatus.FAILED
    assert "invalid result" in (stored.error_message or "")
    assert deps.quotas.get("tenant-a").usage.inflight_executions == 0


def test_execute_sync_hands_back_the_id_past_its_bound(deps):
    from sandboxcp.domain.models import Principal
    from sandboxcp.services.executions import execute_and_wait
    from sandboxcp.services.requests.executions import ExecuteRequest

    seed_session(deps)
    req = ExecuteRequest(code="def handler(e): return 1", language="python")
    execution = execute_and_wait(deps, Principal(tenant_id="tenant-a"), SAMPLE_SESSION, req, wait_s=0.2)
    assert execution.status == ExecutionStatus.PENDING and execution.outcome is None
