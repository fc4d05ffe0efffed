"""Per-tenant quotas on moto: live sessions, executions in flight, CPU, memory and requests per second each
answer 429 with Retry-After and the contract's error body; shares come back exactly once; admins set
quotas through PUT /tenants/{tenant_id}/quotas."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandboxcp.domain.models import Principal
from sandboxcp.domain.states import SessionStatus
from sandboxcp.services import auth
from sandboxcp.services import quotas as quota_service
from tests.functional.conftest import (
    SAMPLE_EXECUTION,
    SAMPLE_SESSION,
    TENANT,
    body,
    invoke,
    sample_event,
    seed_session,
    with_path,
)

ADMIN = Principal(tenant_id="ops", is_admin=True)


def _set(tenant: str = TENANT, *, admin: bool = True, **limits: Any) -> dict[str, Any]:
    event = with_path(sample_event("tenants_quotas_put"), tenant_id=tenant)
    event["body"] = json.dumps(limits)
    event["requestContext"]["authorizer"]["is_admin"] = "true" if admin else "false"
    return invoke("tenants_quotas_put", event)


def _get(tenant: str = TENANT, *, as_tenant: str = TENANT, admin: bool = False) -> dict[str, Any]:
    event = with_path(sample_event("tenants_quotas_get"), tenant_id=tenant)
    event["requestContext"]["authorizer"].update(
        tenant_id=as_tenant, principalId=as_tenant, is_admin="true" if admin else "false"
    )
    return invoke("tenants_quotas_get", event)


def _create(cpu: str = "1", memory: str = "512Mi") -> dict[str, Any]:
    event = sample_event("sessions_create")
    payload = json.loads(event["body"])
    payload["resources"] = {"cpu": cpu, "memory": memory, "disk": "1Gi"}
    event["body"] = json.dumps(payload)
    return invoke("sessions_create", event)


def _terminate(session_id: str) -> dict[str, Any]:
    return invoke("sessions_terminate", with_path(sample_event("sessions_terminate"), session_id=session_id))


def _submit() -> dict[str, Any]:
    return invoke("executions_submit", sample_event("executions_submit"))


def _assert_429(resp: dict[str, Any], *, detail: str, retry_after: str) -> None:
    assert resp["statusCode"] == 429, resp
    headers = {k.lower(): v for k, v in (resp.get("headers") or {}).items()}
    headers |= {k.lower(): v[-1] for k, v in (resp.get("multiValueHeaders") or {}).items()}
    assert headers.get("retry-after") == retry_after
    out = body(resp)
    assert out["error_code"] == "Sandbox.TooManyRequestsExection"
    assert detail in out["error_detail"]
    assert set(out) == {"error_code", "description", "error_detail", "solution", "request_id"}
    assert out["request_id"]


def _usage(deps, tenant: str = TENANT) -> dict[str, Any]:
    return deps.quotas.get(tenant).usage.model_dump()


def test_live_sessions_over_quota_get_429_and_nothing_is_recorded(deps):
    assert _set(max_sessions=2)["statusCode"] == 200
    first, second = _create(), _create()
    assert first["statusCode"] == 201 and second["statusCode"] == 201
    before = deps.sessions.list_for_tenant(TENANT, status=None, template_id=None, limit=50, offset=0).total
    _assert_429(_create(), detail="quota of 2 live sessions", retry_after="30")
    after = deps.sessions.list_for_tenant(TENANT, status=None, template_id=None, limit=50, offset=0).total
    assert after == before == 2
    # Ending a session gives its share back: the next create fits.
    assert _terminate(body(first)["session_id"])["statusCode"] == 200
    assert _create()["statusCode"] == 201


def test_cpu_quota_counts_the_live_sessions_resources(deps):
    _set(max_cpu=2.5)
    assert _create(cpu="2")["statusCode"] == 201
    _assert_429(_create(cpu="1"), detail="2.5 cores", retry_after="30")
    assert _create(cpu="0.5")["statusCode"] == 201
    assert _usage(deps)["cpu"] == 2.5


def test_memory_quota_counts_the_live_sessions_resources(deps):
    _set(max_memory_mb=1024)
    assert _create(memory="768Mi")["statusCode"] == 201
    _assert_429(_create(memory="512Mi"), detail="1024 MiB", retry_after="30")
    assert _create(memory="256Mi")["statusCode"] == 201
    assert _usage(deps)["memory_mb"] == 1024


def test_executions_in_flight_over_quota_get_429_until_one_ends(deps):
    seed_session(deps)
    _set(max_inflight_executions=1)
    first = _submit()
    assert first["statusCode"] == 200
    _assert_429(_submit(), detail="1 executions pending or running", retry_after="5")
    assert len(deps.executor.submitted) == 1
    # The executor reports the result: the execution leaves the in-flight states and gives its share back.
    event = with_path(sample_event("internal_execution_result"), execution_id=body(first)["execution_id"])
    event["headers"]["Idempotency-Key"] = body(first)["execution_id"]
    event["requestContext"]["authorizer"]["session_id"] = SAMPLE_SESSION
    assert invoke("internal_execution_result", event)["statusCode"] == 200
    assert _usage(deps)["inflight_executions"] == 0
    assert _submit()["statusCode"] == 200


def _report_result(execution_id: str) -> dict[str, Any]:
    event = with_path(sample_event("internal_execution_result"), execution_id=execution_id)
    event["headers"]["Idempotency-Key"] = execution_id
    event["requestContext"]["authorizer"]["session_id"] = SAMPLE_SESSION
    return invoke("internal_execution_result", event)


def test_a_sessions_executions_in_flight_are_bounded_in_the_submits_own_transaction(deps, monkeypatch):
    from sandboxcp.adapters.tables import SessionRecord
    from sandboxcp.services import executions

    seed_session(deps)
    monkeypatch.setattr(executions, "MAX_INFLIGHT_PER_SESSION", 2)
    first, second = _submit(), _submit()
    assert first["statusCode"] == second["statusCode"] == 200
    refused = _submit()
    assert refused["statusCode"] == 429, refused
    assert "already has 2 executions pending or running" in body(refused)["error_detail"]
    assert len(deps.executor.submitted) == 2  # nothing recorded or dispatched for the refused one
    assert deps.executions.count_inflight_for_session(SAMPLE_SESSION) == 2
    assert SessionRecord.get(SAMPLE_SESSION).executions_inflight == 2
    # A result gives the slot back exactly once, even when reported twice, and marks the session active.
    before = SessionRecord.get(SAMPLE_SESSION).last_activity_at
    assert _report_result(body(first)["execution_id"])["statusCode"] == 200
    assert _report_result(body(first)["execution_id"])["statusCode"] == 200
    assert SessionRecord.get(SAMPLE_SESSION).executions_inflight == 1
    assert SessionRecord.get(SAMPLE_SESSION).last_activity_at > before
    assert _submit()["statusCode"] == 200
    assert _submit()["statusCode"] == 429


def test_a_result_is_stored_even_when_its_session_item_is_gone(deps):
    """The slot's give-back is skipped, not the result, when the session's item no longer exists (TTL)."""
    from sandboxcp.adapters.tables import SessionRecord

    seed_session(deps)
    submitted = _submit()
    SessionRecord.get(SAMPLE_SESSION).delete()
    assert _report_result(body(submitted)["execution_id"])["statusCode"] == 200
    stored = deps.executions.get(body(submitted)["execution_id"])
    assert stored is not None and stored.status == "completed"
    assert _usage(deps)["inflight_executions"] == 0
    with pytest.raises(SessionRecord.DoesNotExist):  # and no item made up by the give-back
        SessionRecord.get(SAMPLE_SESSION)


def test_a_submit_to_a_session_that_ended_meanwhile_is_refused_with_nothing_recorded(deps, monkeypatch):
    """The session item's status is part of the create transaction's condition: a session ended between
    the submit's read and its write takes no execution."""
    from sandboxcp.services import executions

    seed_session(deps)
    real_create = deps.executions.create

    def end_session_first(execution, **kwargs):  # the race: the session ends after the submit read it
        deps.sessions.transition(SAMPLE_SESSION, SessionStatus.TERMINATED, now=execution.created_at)
        return real_create(execution, **kwargs)

    monkeypatch.setattr(deps.executions, "create", end_session_first)
    resp = invoke("executions_submit", sample_event("executions_submit"))
    assert resp["statusCode"] == 409, resp
    assert "no longer running" in body(resp)["error_detail"]
    assert deps.executor.submitted == []
    assert executions.MAX_INFLIGHT_PER_SESSION == 32
    assert _usage(deps)["inflight_executions"] == 0


def test_requests_per_second_over_quota_get_429_from_the_handler(deps, monkeypatch):
    _set(max_requests_per_second=2)
    secret = auth.issue_api_key(deps, ADMIN, TENANT, admin=False)
    monkeypatch.setattr(quota_service.time, "time", lambda: 1_800_000_000.25)
    contexts = []
    for _ in range(3):
        event = sample_event("authorizer_api_key")
        event["headers"] = {"Authorization": f"Bearer {secret}"}
        contexts.append(invoke("authorizer_api_key", event)["context"])
    assert [c.get(quota_service.THROTTLED_CONTEXT_KEY) for c in contexts] == [None, None, "1"]
    # The authorizer cannot answer 429 itself: the handler refuses what its context marks.
    event = sample_event("sessions_list")
    event["requestContext"]["authorizer"] = {**contexts[2], "principalId": TENANT}
    _assert_429(invoke("sessions_list", event), detail="requests per second", retry_after="1")
    # The next second is a new window.
    monkeypatch.setattr(quota_service.time, "time", lambda: 1_800_000_001.0)
    assert quota_service.count_request(deps, TENANT) is None


def test_request_counter_trusts_no_clock_behind_the_window(deps):
    _set(max_requests_per_second=1)
    assert quota_service.count_request(deps, TENANT, now_s=100) is None
    # Another function's clock half a second behind: counted in the current window, which is full.
    assert quota_service.count_request(deps, TENANT, now_s=99) == 2
    assert quota_service.count_request(deps, TENANT, now_s=100) == 1
    assert quota_service.count_request(deps, TENANT, now_s=101) is None


def test_a_request_whose_calls_are_overtaken_by_newer_windows_is_counted_in_them(deps, monkeypatch):
    """In a loaded process a thread's DynamoDB call can wait longer than a second: by the time each of its
    conditional writes runs, another request has opened a newer window. It counts in that window (which
    has room) instead of failing every attempt and answering a false "over quota"."""
    from sandboxcp.adapters.dynamo import request_tokens
    from sandboxcp.adapters.tables import TenantRecord

    _set(max_requests_per_second=100)
    assert quota_service.count_request(deps, TENANT, now_s=300) is None
    real_update_if, opened = request_tokens.update_if, []

    def overtaken_update_if(model, key, actions, condition, **kwargs):  # type: ignore[no-untyped-def]
        newer = 301 + len(opened)  # another request's newer second opens first, with its tokens all free
        TenantRecord(tenant_id=key).update(
            actions=[TenantRecord.rps_window.set(newer), TenantRecord.rps_free.set(100)]
        )
        opened.append(newer)
        return real_update_if(model, key, actions, condition, **kwargs)

    monkeypatch.setattr(request_tokens, "update_if", overtaken_update_if)
    other_instance = request_tokens.RequestTokens()  # no block of its own: it must write
    assert other_instance.take(TENANT, 300, deps.quotas.initialize) is None
    item = TenantRecord.get(TENANT)
    assert item.rps_window == opened[-1] and item.rps_free == 99  # counted in the newest window


def test_an_instance_takes_request_tokens_in_blocks_that_follow_its_demand(deps, aws_calls):
    _set(max_requests_per_second=100)  # blocks of at most 100 / 20 = 5
    aws_calls.clear()
    admitted = [quota_service.count_request(deps, TENANT, now_s=500) for _ in range(40)]
    assert admitted == [None] * 40
    writes = aws_calls.count("dynamodb.UpdateItem")
    assert writes <= 15, aws_calls  # 12 here; one write per request (40) before blocks
    tenant = deps.quotas  # the item says what was taken: every admitted request, and at most a block more
    from sandboxcp.adapters.tables import TenantRecord

    item = TenantRecord.get(TENANT)
    assert item.rps_window == 500 and 40 <= 100 - item.rps_free <= 45, (item.rps_window, item.rps_free)
    assert tenant.take_request(TENANT, 501) is None  # a new second opens a new window
    assert TenantRecord.get(TENANT).rps_window == 501


def test_instances_sharing_a_tenant_never_admit_more_than_its_limit(deps):
    from sandboxcp.adapters.dynamo.tenants import DynamoTenantQuotas

    _set(max_requests_per_second=100)
    instances = [
        deps.quotas,
        DynamoTenantQuotas(deps.quotas.defaults),
        DynamoTenantQuotas(deps.quotas.defaults),
    ]
    for i, instance in enumerate(instances):  # each had demand the second before: they take full blocks
        for _ in range(10 + i):
            instance.take_request(TENANT, 699)
    answers = [instances[n % 3].take_request(TENANT, 700) for n in range(300)]
    admitted = answers.count(None)
    # Never over the limit; under it by at most what the other instances hold unspent (a block each).
    assert 100 - 2 * 5 <= admitted <= 100, admitted
    assert set(answers) == {None, 1}
    assert all(instance.take_request(TENANT, 701) is None for instance in instances)


def test_a_share_comes_back_exactly_once(deps):
    _set(max_sessions=1)
    created = body(_create())
    assert _usage(deps)["sessions"] == 1 and _usage(deps)["cpu"] == 1.0
    assert _terminate(created["session_id"])["statusCode"] == 200
    assert _terminate(created["session_id"])["statusCode"] == 200  # a repeat changes nothing
    # A reaper racing the terminate loses its conditional write and gives nothing back.
    with pytest.raises(Exception, match="cannot move"):
        deps.sessions.transition(
            created["session_id"],
            SessionStatus.FAILED,
            now=deps.sessions.get(created["session_id"]).updated_at,
        )
    assert _usage(deps) == {"sessions": 0, "inflight_executions": 0, "cpu": 0.0, "memory_mb": 0}


def test_a_tenants_first_request_racing_another_that_gives_it_its_defaults_is_not_refused(deps, monkeypatch):
    """A's take fails (the tenant has no quota item yet); B writes the tenant's defaults before A reads the
    item again. A must take its share then, not answer a false "at its quota" (seen with 4 concurrent
    first creates)."""
    import sys

    from sandboxcp.adapters.dynamo import tenants as tenant_store

    real_get_item, raced = tenant_store.get_item, []

    def get_item_while_another_request_initializes(model, key):  # type: ignore[no-untyped-def]
        if not raced and sys._getframe(1).f_code.co_name == "save_with_share":
            raced.append(key)
            deps.quotas.initialize(key)  # what the concurrent first request does meanwhile
        return real_get_item(model, key)

    monkeypatch.setattr(tenant_store, "get_item", get_item_while_another_request_initializes)
    created = _create()
    assert raced == [TENANT]  # the race happened: the take failed, and the item changed before the read
    assert created["statusCode"] == 201, created
    assert _usage(deps)["sessions"] == 1


def test_defaults_apply_until_an_admin_sets_quotas(deps):
    resp = _get()
    assert resp["statusCode"] == 200
    out = body(resp)
    s = deps.settings
    assert out["defaults"] is True
    assert out["limits"] == {
        "max_sessions": s.quota_max_sessions,
        "max_inflight_executions": s.quota_max_inflight_executions,
        "max_cpu": s.quota_max_cpu,
        "max_memory_mb": s.quota_max_memory_mb,
        "max_requests_per_second": s.quota_max_requests_per_second,
    }
    seed_session(deps)  # counted although created before the tenant's item existed
    assert body(_get())["usage"]["sessions"] == 1
    put = _set(max_sessions=7)
    assert put["statusCode"] == 200
    assert body(put)["defaults"] is False
    assert body(put)["limits"]["max_sessions"] == 7
    assert body(put)["limits"]["max_cpu"] == s.quota_max_cpu  # fields left out keep their values
    assert body(put)["usage"]["sessions"] == 1


def test_lowering_a_quota_below_usage_keeps_usage_and_refuses_new_work(deps):
    _set(max_sessions=3)
    for _ in range(2):
        assert _create()["statusCode"] == 201
    out = body(_set(max_sessions=1))
    assert out["usage"]["sessions"] == 2 and out["limits"]["max_sessions"] == 1
    _assert_429(_create(), detail="quota of 1 live sessions", retry_after="30")


def test_quota_api_access_and_bad_input(deps):
    assert _set(admin=False, max_sessions=1)["statusCode"] == 403
    assert _get("tenant-b", as_tenant=TENANT)["statusCode"] == 403
    assert _get("tenant-b", as_tenant="ops", admin=True)["statusCode"] == 200
    for bad in (
        {},
        {"max_sessions": -1},
        {"max_sessions": "3"},
        {"max_requests_per_second": 0},
        {"max_cpu": 1e400},
        {"unknown": 1},
        {"max_sessions": 10**9},
    ):
        resp = _set(**bad) if bad != {"max_cpu": 1e400} else _raw_put('{"max_cpu": 1e400}')
        assert resp["statusCode"] == 400, bad
        assert body(resp)["error_code"] == "Sandbox.InvalidParameter"
    for tenant in ("-" * 65, "a b", "é", "a/b"):  # ids no tenant can have: 404, before any lookup
        resp = _get(tenant, as_tenant="ops", admin=True)
        assert resp["statusCode"] == 404 and body(resp)["error_code"] == "Sandbox.NotFound"
        assert _set(tenant, max_sessions=1)["statusCode"] == 404


def _raw_put(raw: str) -> dict[str, Any]:
    event = with_path(sample_event("tenants_quotas_put"), tenant_id=TENANT)
    event["body"] = raw
    return invoke("tenants_quotas_put", event)


def test_suspended_tenant_gets_429_for_everything_counted(deps):
    seed_session(deps)
    _set(max_sessions=0, max_inflight_executions=0)
    _assert_429(_create(), detail="quota of 0 live sessions", retry_after="30")
    _assert_429(_submit(), detail="0 executions", retry_after="5")
    assert SAMPLE_EXECUTION  # the sample id is unused: nothing was recorded
    assert deps.executor.submitted == []
