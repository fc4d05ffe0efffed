"""Listings page with `next_token` beside the contract's offset: opaque, signed and bound to its listing
(garbage, tampered or foreign tokens -> 400), and pages after the first read O(page) items."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandboxcp.adapters.tables import SessionRecord
from sandboxcp.domain.models import Execution, Session
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.states import ExecutionStatus, SessionStatus
from tests.functional.conftest import SAMPLE_SESSION, TENANT, body, invoke, sample_event, seed_session


def _sessions(deps, n: int, *, tenant: str = TENANT) -> list[str]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    ids = []
    for i in range(n):
        sid = f"sess_{tenant[-1]}{i:015d}"
        at = base + timedelta(minutes=i)
        deps.sessions.create(
            Session(
                session_id=sid,
                tenant_id=tenant,
                template_id="python-basic",
                status=SessionStatus.CREATING,
                runtime_type="process",
                workspace_path=f"s3://b/workspace/{sid}/",
                resources=ResourceLimit(),
                timeout=300,
                created_at=at,
                updated_at=at,
                last_activity_at=at,
            )
        )
        ids.append(sid)
    return ids


def _list(module: str, params: dict[str, Any], *, tenant: str = TENANT, **path: str) -> dict[str, Any]:
    event = sample_event(module)
    event["queryStringParameters"] = {k: str(v) for k, v in params.items()}
    event["multiValueQueryStringParameters"] = {k: [str(v)] for k, v in params.items()}
    event["requestContext"]["authorizer"].update(tenant_id=tenant, principalId=tenant)
    return invoke(module, event)


def _walk(module: str, key: str, limit: int, **extra: Any) -> tuple[list[str], list[int]]:
    seen: list[str] = []
    totals: list[int] = []
    params: dict[str, Any] = {"limit": limit, **extra}
    while True:
        resp = _list(module, params)
        assert resp["statusCode"] == 200, resp
        out = body(resp)
        seen += [item.get("session_id") or item.get("id") for item in out[key]]
        totals.append(out["total"])
        if out["next_token"] is None:
            return seen, totals
        params = {"limit": limit, **extra, "next_token": out["next_token"]}


def test_sessions_page_by_cursor_newest_first(deps):
    ids = _sessions(deps, 7)
    seen, totals = _walk("sessions_list", "sessions", 3)
    assert seen == list(reversed(ids))
    assert totals == [7, 7, 7]
    # The offset still works, and its page carries a token for what follows it.
    out = body(_list("sessions_list", {"limit": 2, "offset": 4}))
    assert [s["session_id"] for s in out["sessions"]] == [ids[2], ids[1]]
    rest = body(_list("sessions_list", {"limit": 5, "next_token": out["next_token"]}))
    assert [s["session_id"] for s in rest["sessions"]] == [ids[0]] and rest["next_token"] is None


def test_filters_are_kept_and_bound_to_the_token(deps):
    ids = _sessions(deps, 4)
    for sid in ids[:3]:
        deps.sessions.transition(sid, SessionStatus.FAILED, now=datetime.now(UTC))
    seen, totals = _walk("sessions_list", "sessions", 2, status="failed")
    assert seen == [ids[2], ids[1], ids[0]] and totals == [3, 3]
    first = body(_list("sessions_list", {"limit": 1, "status": "failed"}))
    other_filter = _list(
        "sessions_list", {"limit": 1, "status": "creating", "next_token": first["next_token"]}
    )
    assert other_filter["statusCode"] == 400


def test_executions_and_templates_page_by_cursor(deps):
    seed_session(deps)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    eids = []
    for i in range(5):
        eid = f"exec_20260101_{i:08d}"
        deps.executions.create(
            Execution(
                execution_id=eid,
                session_id=SAMPLE_SESSION,
                tenant_id=TENANT,
                status=ExecutionStatus.PENDING,
                code="print(1)",
                language="python",
                timeout=30,
                created_at=base + timedelta(seconds=i),
            )
        )
        eids.append(eid)
    seen, totals = _walk("executions_list", "executions", 2)
    assert seen == list(reversed(eids)) and totals == [5, 5, 5]
    templates, totals = _walk("templates_list", "templates", 1)
    assert len(templates) == len(set(templates)) == totals[0] >= 2
    assert templates == sorted(templates)


def test_pages_after_the_first_read_o_page_items_and_count_nothing(deps):
    _sessions(deps, 40)
    first = body(_list("sessions_list", {"limit": 5, "offset": 20}))
    calls: list[tuple[str, str, int]] = []
    client = SessionRecord._get_connection().connection.client

    def count(http_response: Any, parsed: Any, model: Any, params: Any = None, **kwargs: Any) -> None:
        calls.append((model.name, (params or {}).get("Select", ""), len(parsed.get("Items", []))))

    client.meta.events.register("after-call.dynamodb", count)
    try:
        resp = _list("sessions_list", {"limit": 5, "next_token": first["next_token"]})
    finally:
        client.meta.events.unregister("after-call.dynamodb", count)
    assert resp["statusCode"] == 200 and len(body(resp)["sessions"]) == 5
    queries = [c for c in calls if c[0] == "Query"]
    assert all(select != "COUNT" for _, select, _ in queries)  # no count: the total rides in the token
    assert sum(items for _, _, items in queries) <= 6  # the page and one more, never the 25 before it
    assert body(resp)["total"] == 40


def _tampered(token: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    payload = json.loads(raw[16:])
    payload["t"] = 1
    forged = bytes(raw[:16]) + json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(forged).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    ["garbage", "!!!", "A" * 40, "eyJrIjp7fX0", "x" * 4097, "tampered", "other-tenant", "with-offset"],
)
def test_bad_tokens_get_400(deps, token):
    _sessions(deps, 3)
    _sessions(deps, 3, tenant="tenant-b")
    good = body(_list("sessions_list", {"limit": 1}))["next_token"]
    params: dict[str, Any] = {"limit": 1, "next_token": token}
    tenant = TENANT
    if token == "tampered":
        params["next_token"] = _tampered(good)
    elif token == "other-tenant":
        params["next_token"], tenant = good, "tenant-b"
    elif token == "with-offset":
        params.update(next_token=good, offset=1)
    resp = _list("sessions_list", params, tenant=tenant)
    assert resp["statusCode"] == 400, resp
    assert body(resp)["error_code"] == "Sandbox.InvalidParameter"
    assert "next_token" in body(resp)["error_detail"]


def test_a_token_of_one_listing_is_refused_by_another(deps):
    seed_session(deps)
    _sessions(deps, 3)
    good = body(_list("sessions_list", {"limit": 1}))["next_token"]
    event = sample_event("executions_list")
    event["queryStringParameters"] = {"next_token": good}
    event["multiValueQueryStringParameters"] = {"next_token": [good]}
    assert invoke("executions_list", event)["statusCode"] == 400
    assert _list("templates_list", {"next_token": good})["statusCode"] == 400
