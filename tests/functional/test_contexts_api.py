"""Code contexts (issue #12) on moto with their sample events: create, list, get, delete, restart; executions
that name a context; the per-session limit; isolation between sessions and tenants; contexts ending with
their session; notebook outputs on an execution's result."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from sandboxcp.domain import clock
from sandboxcp.domain.models import ExecutionOutcome
from sandboxcp.domain.states import SessionStatus
from tests.functional.conftest import (
    ERROR_FIELDS,
    SAMPLE_SESSION,
    TENANT,
    body,
    invoke,
    sample_event,
    seed_session,
    with_path,
)

URL = f"unix:///tmp/{SAMPLE_SESSION}.sock"
OTHER_SESSION = "sess_0000000000000002"


def _create(
    session_id: str = SAMPLE_SESSION, payload: dict[str, Any] | None = None, tenant: str = TENANT
) -> Any:
    event = with_path(sample_event("contexts_create"), session_id=session_id)
    if payload is not None:
        event["body"] = json.dumps(payload)
    event["requestContext"]["authorizer"]["tenant_id"] = tenant
    return invoke("contexts_create", event)


def _call(module: str, context_id: str, session_id: str = SAMPLE_SESSION, tenant: str = TENANT) -> Any:
    event = with_path(sample_event(module), session_id=session_id, context_id=context_id)
    event["requestContext"]["authorizer"]["tenant_id"] = tenant
    return invoke(module, event)


def _submit(payload: dict[str, Any], module: str = "executions_submit") -> Any:
    event = sample_event(module)
    event["body"] = json.dumps(payload)
    return invoke(module, event)


def retry_after(resp: Any) -> str | None:
    headers = {k.lower(): v for k, v in (resp.get("headers") or {}).items()}
    headers |= {k.lower(): v[-1] for k, v in (resp.get("multiValueHeaders") or {}).items()}
    return headers.get("retry-after")


def _error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp["statusCode"] == status, resp["body"]
    out = body(resp)
    assert set(out) == ERROR_FIELDS and out["error_code"] == code, out
    assert out["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    return out


@pytest.fixture
def running(deps: Any) -> Any:
    seed_session(deps, token_hash="executor-key-1")
    return deps


def test_create_list_get_restart_delete(running):
    resp = _create()
    assert resp["statusCode"] == 201, resp["body"]
    ctx = body(resp)
    assert re.fullmatch(r"ctx-[a-z0-9]{16}", ctx["context_id"])
    assert ctx["status"] == "ready" and ctx["language"] == "python" and ctx["cwd"] == "/workspace"
    assert ctx["session_id"] == SAMPLE_SESSION and ctx["executions"] == 0 and ctx["restarts"] == 0
    cid = ctx["context_id"]
    [call] = running.executor.interactive_calls
    assert call == ("create_context", URL, (cid, "python", "/workspace"), "executor-key-1")

    listed = body(invoke("contexts_list", sample_event("contexts_list")))
    assert listed["total"] == 1 and [c["context_id"] for c in listed["contexts"]] == [cid]

    # GET asks the sandbox while the session runs
    running.executor.contexts[URL, cid] = running.executor.contexts[URL, cid].model_copy(
        update={"status": "busy", "executions": 3}
    )
    got = body(_call("contexts_get", cid))
    assert got["status"] == "busy" and got["executions"] == 3
    assert running.contexts.get(cid).status == "busy"  # recorded

    restarted = _call("contexts_restart", cid)
    assert restarted["statusCode"] == 200
    assert body(restarted)["status"] == "ready" and body(restarted)["restarts"] == 1

    deleted = _call("contexts_delete", cid)
    assert deleted["statusCode"] == 200 and body(deleted)["status"] == "deleted"
    assert body(deleted)["ended_at"] is not None
    assert (URL, cid) not in running.executor.contexts
    again = _call("contexts_delete", cid)  # deleting again changes nothing
    assert again["statusCode"] == 200 and body(again)["status"] == "deleted"
    assert body(_call("contexts_get", cid))["status"] == "deleted"
    _error(_call("contexts_restart", cid), 404, "Sandbox.ContextNotFound")
    assert [c[0] for c in running.executor.interactive_calls].count("delete_context") == 1


def test_javascript_context_with_a_relative_cwd(running):
    resp = _create(payload={"language": "javascript", "cwd": "app/src/../lib"})
    assert resp["statusCode"] == 201
    assert body(resp)["language"] == "javascript" and body(resp)["cwd"] == "/workspace/app/lib"


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"language": "shell"}, "language"),
        ({"language": "ruby"}, "language"),
        ({}, "language"),
        ({"language": "python", "cwd": "/etc"}, "inside /workspace"),
        ({"language": "python", "cwd": "../.."}, "inside /workspace"),
        ({"language": "python", "cwd": "a\u0000b"}, "control"),
        ({"language": "python", "cwd": 7}, "cwd"),
        ({"language": "python", "extra": 1}, "extra"),
    ],
)
def test_bad_create_requests_get_400_and_record_nothing(running, payload, detail):
    out = _error(_create(payload=payload), 400, "Sandbox.InvalidParameter")
    assert detail in out["error_detail"]
    assert running.executor.interactive_calls == []
    assert running.contexts.list_for_session(SAMPLE_SESSION) == []


def test_contexts_need_a_running_session(deps):
    seed_session(deps, status=SessionStatus.TERMINATED)
    out = _error(_create(), 409, "Sandbox.StateConflict")
    assert "terminated" in out["error_detail"]
    assert deps.contexts.list_for_session(SAMPLE_SESSION) == []


def test_a_ninth_context_is_refused_with_retry_after(running):
    ids = [body(_create())["context_id"] for _ in range(8)]
    resp = _create()
    out = _error(resp, 429, "Sandbox.TooManyRequestsExection")
    assert "limit 8" in out["error_detail"]
    assert retry_after(resp) == "10"
    assert len(running.contexts.list_for_session(SAMPLE_SESSION)) == 8
    # deleting one frees its slot
    assert _call("contexts_delete", ids[0])["statusCode"] == 200
    assert _create()["statusCode"] == 201


def test_the_executors_own_limit_is_a_429_and_leaves_no_record(running):
    running.executor.MAX_CONTEXTS = 0
    resp = _create()
    _error(resp, 429, "Sandbox.TooManyRequestsExection")
    assert retry_after(resp) == "5"
    assert running.contexts.list_for_session(SAMPLE_SESSION) == []


def test_contexts_of_another_session_or_tenant_are_not_found(running):
    cid = body(_create())["context_id"]
    seed_session(running, OTHER_SESSION)  # same tenant, another session
    seed_session(running, "sess_0000000000000003", tenant="tenant-b")
    for module in ("contexts_get", "contexts_delete", "contexts_restart"):
        _error(_call(module, cid, session_id=OTHER_SESSION), 404, "Sandbox.ContextNotFound")
        # another tenant does not even see the session
        _error(_call(module, cid, tenant="tenant-b"), 404, "Sandbox.SessionNotFound")
        _error(_call(module, cid, "sess_0000000000000003", "tenant-b"), 404, "Sandbox.ContextNotFound")
        _error(_call(module, "ctx-0000000000000099"), 404, "Sandbox.ContextNotFound")
        _error(_call(module, "ctx-../../x"), 404, "Sandbox.ContextNotFound")
    assert body(_call("contexts_get", cid))["status"] == "ready"  # untouched
    listed = body(invoke("contexts_list", with_path(sample_event("contexts_list"), session_id=OTHER_SESSION)))
    assert listed == {"contexts": [], "total": 0}


def test_an_execution_in_a_context_is_sent_with_its_id(running):
    cid = body(_create())["context_id"]
    resp = _submit({"code": "x = 1\nx", "language": "python", "context_id": cid})
    assert resp["statusCode"] == 200, resp["body"]
    assert body(resp)["context_id"] == cid
    [(url, execution)] = running.executor.submitted
    assert url == URL and execution.context_id == cid
    eid = body(resp)["execution_id"]
    detail = body(invoke("executions_get", with_path(sample_event("executions_get"), execution_id=eid)))
    assert detail["context_id"] == cid
    listed = body(invoke("executions_list", sample_event("executions_list")))
    assert listed["executions"][0]["context_id"] == cid

    sync = _submit({"code": "x += 1", "language": "python", "context_id": cid}, "executions_submit_sync")
    assert sync["statusCode"] in (200, 202)
    assert running.executor.submitted[-1][1].context_id == cid


def test_handler_style_executions_send_no_context(running):
    resp = _submit({"code": "def handler(event):\n    return 1", "language": "python"})
    assert resp["statusCode"] == 200 and body(resp)["context_id"] is None
    assert running.executor.submitted[0][1].context_id is None


def test_executions_naming_a_bad_context_are_refused_before_anything_is_recorded(running):
    cid = body(_create())["context_id"]
    seed_session(running, OTHER_SESSION)
    event = with_path(sample_event("contexts_create"), session_id=OTHER_SESSION)
    other = body(invoke("contexts_create", event))["context_id"]
    gone = body(_create())["context_id"]
    _call("contexts_delete", gone)

    cases = [
        ("ctx-0000000000000099", "python", 404, "Sandbox.ContextNotFound"),
        ("not-a-context-id", "python", 404, "Sandbox.ContextNotFound"),
        (other, "python", 404, "Sandbox.ContextNotFound"),  # another session's
        (gone, "python", 404, "Sandbox.ContextNotFound"),  # deleted
        (cid, "javascript", 400, "Sandbox.InvalidParameter"),  # language mismatch
        (cid, "shell", 400, "Sandbox.InvalidParameter"),
        ("x" * 65, "python", 400, "Sandbox.InvalidParameter"),  # over-long
    ]
    for context_id, language, status, code in cases:
        for module in ("executions_submit", "executions_submit_sync"):
            resp = _submit({"code": "1", "language": language, "context_id": context_id}, module)
            _error(resp, status, code)
    assert running.executor.submitted == []
    assert running.executions.list_for_session(SAMPLE_SESSION, status=None, limit=10, offset=0).total == 0


def test_contexts_end_with_their_session(running):
    cid = body(_create())["context_id"]
    gone = body(_create())["context_id"]
    _call("contexts_delete", gone)
    resp = invoke("sessions_terminate", sample_event("sessions_terminate"))
    assert resp["statusCode"] == 200
    ended = running.contexts.get(cid)
    assert ended.status == "ended" and ended.ended_at is not None
    assert running.contexts.get(gone).status == "deleted"  # a deleted one stays deleted
    assert running.contexts.count_live(SAMPLE_SESSION) == 0
    assert body(_call("contexts_get", cid))["status"] == "ended"
    _error(_call("contexts_restart", cid), 409, "Sandbox.StateConflict")  # the session is not running


def test_the_reaper_ends_an_idle_sessions_contexts(running):
    from datetime import timedelta

    from sandboxcp.services.session_reaper import reap_sessions

    cid = body(_create())["context_id"]
    report = reap_sessions(running, now=clock.now() + timedelta(minutes=31))
    assert SAMPLE_SESSION in report.idle + report.expired
    assert running.contexts.get(cid).status == "ended"


def test_a_live_context_of_an_ended_session_is_settled_when_read(running):
    cid = body(_create())["context_id"]
    # the session ends without the hook (a writer that does not know about contexts)
    running.sessions.transition(SAMPLE_SESSION, SessionStatus.FAILED, now=clock.now())
    assert running.contexts.get(cid).status == "ready"
    listed = body(invoke("contexts_list", sample_event("contexts_list")))
    assert listed["contexts"][0]["status"] == "ended"
    assert running.contexts.get(cid).status == "ended"


def test_a_context_the_sandbox_lost_is_ended_on_read(running):
    cid = body(_create())["context_id"]
    del running.executor.contexts[URL, cid]
    got = body(_call("contexts_get", cid))
    assert got["status"] == "ended" and "no longer" in got["error_message"]
    _error(_submit({"code": "1", "language": "python", "context_id": cid}), 404, "Sandbox.ContextNotFound")


# --- notebook outputs on the result -------------------------------------------------------------------


def _report(eid: str, outcome: dict[str, Any]) -> Any:
    event = with_path(sample_event("internal_execution_result"), execution_id=eid)
    event["body"] = json.dumps(outcome)
    event["headers"]["Idempotency-Key"] = eid
    return invoke("internal_execution_result", event)


def _outcome(**extra: Any) -> dict[str, Any]:
    base = json.loads(sample_event("internal_execution_result")["body"])
    return {**base, **extra}


def test_a_cells_outputs_are_stored_and_returned_with_the_result(running):
    cid = body(_create())["context_id"]
    eid = body(_submit({"code": "import x\nx.plot()", "language": "python", "context_id": cid}))[
        "execution_id"
    ]
    outputs = [
        {"type": "display", "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}},
        {"type": "display", "data": {"application/json": {"a": [1, 2.5, None]}, "text/html": "<b>x</b>"}},
        {"type": "result", "data": {"text/plain": "42", "image/svg+xml": "<svg/>"}},
    ]
    resp = _report(eid, _outcome(outputs=outputs))
    assert resp["statusCode"] == 200, resp["body"]
    result = body(invoke("executions_result", with_path(sample_event("executions_result"), execution_id=eid)))
    assert result["outputs"] == outputs and result["outputs_truncated"] is False
    detail = body(invoke("executions_get", with_path(sample_event("executions_get"), execution_id=eid)))
    assert detail["result"]["outputs"] == outputs


def test_a_crashed_context_cell_is_recorded(running):
    cid = body(_create())["context_id"]
    eid = body(_submit({"code": "import os; os._exit(1)", "language": "python", "context_id": cid}))[
        "execution_id"
    ]
    crashed = _outcome(status="crashed", exit_code=-11, stderr="the context's interpreter died (SIGSEGV)")
    assert _report(eid, crashed)["statusCode"] == 200
    result = body(invoke("executions_result", with_path(sample_event("executions_result"), execution_id=eid)))
    assert result["status"] == "crashed" and result["error_code"] == "Sandbox.ExecException"
    assert "SIGSEGV" in result["stderr"] and result["outputs"] == []


def test_outputs_past_the_limits_are_dropped_not_the_result(running):
    eid = body(_submit({"code": "1", "language": "python"}))["execution_id"]
    big = "A" * (700 * 1024)
    outputs = [
        {"type": "display", "data": {"image/png": big}},
        {"type": "display", "data": {"image/png": big}},
        {"type": "display", "data": {"image/png": big}},  # past 2 MiB in all: dropped
        {"type": "display", "data": {"text/markdown": "# no"}},  # unknown type only: dropped
        {"type": "result", "data": {"text/plain": 42, "text/html": "<i>ok</i>"}},  # non-string value dropped
        {"type": "stream", "data": {"text/plain": "x"}},  # unknown bundle type: dropped
    ]
    resp = _report(eid, _outcome(outputs=outputs))
    assert resp["statusCode"] == 200, resp["body"]
    stored = running.executions.get(eid)
    assert stored.outcome is not None and stored.outcome.outputs_truncated is True
    kept = [o.model_dump() for o in stored.outcome.outputs]
    assert kept == [outputs[0], outputs[1], {"type": "result", "data": {"text/html": "<i>ok</i>"}}]
    result = body(invoke("executions_result", with_path(sample_event("executions_result"), execution_id=eid)))
    assert result["outputs_truncated"] is True and len(result["outputs"]) == 3
    assert len(resp["body"]) < 1000 and len(json.dumps(result)) < 6_000_000  # within Lambda's 6 MB


def test_outputs_survive_the_outcome_round_trip_through_s3(running):
    """An outcome over 64 KiB is stored in S3: its outputs come back the same."""
    outcome = ExecutionOutcome.model_validate(
        _outcome(outputs=[{"type": "display", "data": {"image/png": "B" * (200 * 1024)}}])
    )
    eid = body(_submit({"code": "1", "language": "python"}))["execution_id"]
    running.executions.record_outcome(eid, outcome, now=clock.now())
    stored = running.executions.get(eid)
    assert (
        stored.outcome.outputs == outcome.outputs and stored.outcome.outputs[0].data["image/png"][:3] == "BBB"
    )
