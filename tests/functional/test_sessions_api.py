"""Session endpoints on moto with their sample events."""

from __future__ import annotations

import copy
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from sandboxcp.domain.states import SessionStatus
from tests.functional.conftest import (
    ERROR_FIELDS,
    SAMPLE_SESSION,
    body,
    invoke,
    sample_event,
    seed_session,
    with_path,
)


def _with_body(module: str, payload: object) -> dict:
    event = sample_event(module)
    event["body"] = payload if isinstance(payload, str) or payload is None else json.dumps(payload)
    return event


def test_health_answers_without_a_key(deps):
    resp = invoke("health", sample_event("health"))
    assert resp["statusCode"] == 200
    assert body(resp)["status"] in ("healthy", "degraded")  # checks in detail: test_health_metrics.py


def test_create_session_records_creating_and_starts_the_launch_workflow(deps):
    resp = invoke("sessions_create", sample_event("sessions_create"))
    assert resp["statusCode"] == 201
    created = body(resp)
    assert re.fullmatch(r"sess_[a-z0-9]{16}", created["session_id"])
    assert created["status"] == "creating"
    assert created["workspace_path"].endswith(f"/workspace/{created['session_id']}/")
    sfn = boto3.client("stepfunctions")
    runs = sfn.list_executions(stateMachineArn=deps.settings.launch_state_machine_arn)["executions"]
    assert [r["name"] for r in runs] == [created["session_id"]]
    stored = deps.sessions.get(created["session_id"])
    assert stored is not None and stored.tenant_id == "tenant-a" and stored.env_vars == {"LOG_LEVEL": "info"}


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"template_id": "no-such-template"}, "no-such-template"),
        ("{not json", "not valid JSON"),
        (None, "required"),
        ({}, "template_id"),
        ({"template_id": 12}, "template_id"),
        ({"template_id": "python-basic", "timeout": 10}, "timeout"),
        ({"template_id": "python-basic", "timeout": "long"}, "timeout"),
        ({"template_id": "python-basic", "resources": {"cpu": "64", "memory": "1Gi", "disk": "1Gi"}}, "cpu"),
        ({"template_id": "python-basic", "env_vars": {"AWS_SECRET_ACCESS_KEY": "x"}}, "reserved"),
        ([1, 2], "body"),
    ],
)
def test_bad_create_requests_get_400_with_the_contract_error_body(deps, payload, detail):
    resp = invoke("sessions_create", _with_body("sessions_create", payload))
    assert resp["statusCode"] == 400, resp
    err = body(resp)
    assert set(err) >= ERROR_FIELDS
    assert err["error_code"] == "Sandbox.InvalidParameter"
    assert detail in err["error_detail"]
    assert err["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


def test_get_session_of_the_callers_tenant(deps):
    seed_session(deps)
    resp = invoke("sessions_get", sample_event("sessions_get"))
    assert resp["statusCode"] == 200
    assert body(resp)["status"] == "running"
    assert body(resp)["container_id"] == f"proc-{SAMPLE_SESSION}"


def test_another_tenants_session_is_not_found(deps):
    seed_session(deps, tenant="tenant-other")
    for module in ("sessions_get", "sessions_terminate", "executions_list", "executions_submit"):
        resp = invoke(module, sample_event(module))
        assert resp["statusCode"] == 404, module
        assert body(resp)["error_code"] == "Sandbox.SessionNotFound"
    assert deps.runtime.destroyed == []


def test_malformed_session_id_is_not_found(deps):
    event = with_path(sample_event("sessions_get"), session_id="sess_..%2F..%2Fetc")
    assert invoke("sessions_get", event)["statusCode"] == 404


def test_list_sessions_filters_by_status_through_the_index(deps):
    seed_session(deps, "sess_0000000000000001")
    seed_session(deps, "sess_0000000000000002", status=SessionStatus.TERMINATED)
    seed_session(deps, "sess_0000000000000003", tenant="tenant-other")
    resp = invoke("sessions_list", sample_event("sessions_list"))
    assert resp["statusCode"] == 200
    listed = body(resp)
    assert listed["total"] == 1
    assert [s["session_id"] for s in listed["sessions"]] == ["sess_0000000000000001"]
    everything = sample_event("sessions_list")
    everything["queryStringParameters"] = None
    everything["multiValueQueryStringParameters"] = None
    assert body(invoke("sessions_list", everything))["total"] == 2


@pytest.mark.parametrize(
    "query", [{"limit": "0"}, {"limit": "201"}, {"status": "sleeping"}, {"offset": "-1"}]
)
def test_list_sessions_rejects_bad_paging(deps, query):
    event = sample_event("sessions_list")
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    resp = invoke("sessions_list", event)
    assert resp["statusCode"] == 400
    assert body(resp)["error_code"] == "Sandbox.InvalidParameter"


def test_terminate_marks_terminated_and_destroys_the_sandbox(deps):
    seed_session(deps)
    resp = invoke("sessions_terminate", sample_event("sessions_terminate"))
    assert resp["statusCode"] == 200
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert stored is not None and stored.status == SessionStatus.TERMINATED and stored.terminated_at
    assert deps.runtime.destroyed == [f"proc-{SAMPLE_SESSION}"]
    again = invoke("sessions_terminate", copy.deepcopy(sample_event("sessions_terminate")))
    assert again["statusCode"] == 200


def test_session_creation_is_audited_and_counted(deps, caplog):
    from sandboxcp.observability import prom_name

    caplog.set_level("INFO")
    resp = invoke("sessions_create", sample_event("sessions_create"))
    sid = body(resp)["session_id"]
    [entry] = [r for r in caplog.records if getattr(r, "audit", False) and r.action == "session.create"]
    assert entry.outcome == "success" and entry.tenant == "tenant-a" and entry.session_id == sid
    assert entry.request_id == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef" and entry.time
    everything = " ".join(str(r.__dict__) for r in caplog.records)
    assert "sk_sample" not in everything and "Bearer" not in everything
    metrics = invoke("metrics_prometheus", sample_event("metrics_prometheus"))["body"]
    assert f"{prom_name('SessionsCreated')}_total" in metrics


def _get_waiting(wait: str) -> dict:
    event = sample_event("sessions_get")
    event["queryStringParameters"] = {"wait": wait}
    event["multiValueQueryStringParameters"] = {"wait": [wait]}
    return event


def _get_while(change: str, wait: str) -> tuple[dict, float]:
    """GET with `wait` on a launching session while another request (`change`: the executor's
    container_ready, or the client's terminate) changes it 0.5 s later: the answer and how long it took."""
    module = "internal_container_ready" if change == "ready" else "sessions_terminate"
    event = sample_event(module)

    def change_later() -> dict:
        time.sleep(0.5)
        return invoke(module, event)

    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        changed = pool.submit(change_later)
        resp = invoke("sessions_get", _get_waiting(wait))
        took = time.monotonic() - started
        assert changed.result()["statusCode"] == 200
    return resp, took


@pytest.mark.parametrize(("change", "status"), [("ready", "running"), ("terminate", "terminated")])
def test_a_get_with_wait_answers_once_the_session_leaves_creating(deps, change, status):
    """One request instead of polling: answered after the change, well before the wait is over."""
    seed_session(deps, status=SessionStatus.CREATING)
    resp, took = _get_while(change, "15")
    assert resp["statusCode"] == 200, body(resp)
    assert body(resp)["status"] == status
    assert 0.5 <= took < 10


def test_a_get_with_wait_on_a_session_that_stays_creating_answers_creating_when_the_wait_ends(deps):
    seed_session(deps, status=SessionStatus.CREATING)
    started = time.monotonic()
    resp = invoke("sessions_get", _get_waiting("0.4"))
    assert resp["statusCode"] == 200 and body(resp)["status"] == "creating"
    assert time.monotonic() - started >= 0.4


def test_a_get_with_wait_on_a_running_session_answers_at_once(deps):
    seed_session(deps)
    started = time.monotonic()
    resp = invoke("sessions_get", _get_waiting("20"))
    assert resp["statusCode"] == 200 and body(resp)["status"] == "running"
    assert time.monotonic() - started < 10


def test_a_get_with_wait_on_another_tenants_session_is_not_found_without_waiting(deps):
    seed_session(deps, tenant="tenant-other", status=SessionStatus.CREATING)
    started = time.monotonic()
    resp = invoke("sessions_get", _get_waiting("20"))
    assert resp["statusCode"] == 404 and body(resp)["error_code"] == "Sandbox.SessionNotFound"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("wait", ["-1", "20.5", "soon", ""])
def test_a_bad_wait_gets_400_with_the_contract_error_body(deps, wait):
    seed_session(deps, status=SessionStatus.CREATING)
    resp = invoke("sessions_get", _get_waiting(wait))
    assert resp["statusCode"] == 400
    assert set(ERROR_FIELDS) <= set(body(resp)) and body(resp)["error_code"] == "Sandbox.InvalidParameter"
