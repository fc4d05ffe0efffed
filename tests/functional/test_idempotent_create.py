"""POST /api/v1/sessions with an Idempotency-Key (powertools Idempotency on moto): one session per tenant
and key, the stored body replayed with 200, another body refused with 422 and the contract's error body."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import boto3
import pytest

from sandboxcp.services.deps import Dependencies
from sandboxcp.services.idempotent_create import IDEMPOTENCY_TTL_S
from tests.functional.conftest import ERROR_FIELDS, body, invoke, sample_event


def _create(payload: dict[str, Any] | None = None, *, key: str | None, tenant: str = "tenant-a") -> dict:
    event = sample_event("sessions_create")
    if payload is not None:
        event["body"] = json.dumps(payload)
    if key is not None:
        event["headers"]["Idempotency-Key"] = key
        event["multiValueHeaders"]["Idempotency-Key"] = [key]
    event["requestContext"]["authorizer"]["tenant_id"] = tenant
    return invoke("sessions_create", event)


def _launches(deps: Dependencies) -> list[str]:
    sfn = boto3.client("stepfunctions")
    runs = sfn.list_executions(stateMachineArn=deps.settings.launch_state_machine_arn)["executions"]
    return sorted(r["name"] for r in runs)


def _sessions_of(deps: Dependencies, tenant: str) -> list[str]:
    page = deps.sessions.list_for_tenant(tenant, status=None, template_id=None, limit=50, offset=0)
    return [s.session_id for s in page.items]


def test_same_key_and_body_returns_the_stored_session_once(deps):
    first = _create(key="key-1")
    assert first["statusCode"] == 201, first
    again = _create(key="key-1")
    assert again["statusCode"] == 200, again
    assert body(again) == body(first)
    sid = body(first)["session_id"]
    assert _launches(deps) == [sid]  # one launch workflow, so one sandbox
    assert _sessions_of(deps, "tenant-a") == [sid]


def test_same_key_with_another_body_is_422_with_the_contract_error_body(deps):
    assert _create({"template_id": "python-basic"}, key="key-2")["statusCode"] == 201
    resp = _create({"template_id": "python-basic", "timeout": 600}, key="key-2")
    assert resp["statusCode"] == 422, resp
    err = body(resp)
    assert set(err) >= ERROR_FIELDS
    assert err["error_code"] == "Sandbox.IdempotencyKeyReused"
    assert "key-2" in err["error_detail"] and "different request body" in err["error_detail"]
    assert "new key" in err["solution"]
    assert err["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert len(_launches(deps)) == 1


def test_bodies_are_compared_after_defaults_are_filled_in(deps):
    first = _create({"template_id": "python-basic"}, key="key-3")
    same = _create({"timeout": 300, "template_id": "python-basic", "env_vars": {}}, key="key-3")
    assert (first["statusCode"], same["statusCode"]) == (201, 200)
    assert body(same)["session_id"] == body(first)["session_id"]


def test_keys_are_scoped_per_tenant(deps):
    a = _create(key="shared-key", tenant="tenant-a")
    b = _create(key="shared-key", tenant="tenant-b")
    assert (a["statusCode"], b["statusCode"]) == (201, 201)
    assert body(a)["session_id"] != body(b)["session_id"]
    assert _sessions_of(deps, "tenant-b") == [body(b)["session_id"]]
    # tenant-b's replay is tenant-b's own session
    assert body(_create(key="shared-key", tenant="tenant-b"))["session_id"] == body(b)["session_id"]


def test_without_a_key_each_request_creates_a_session(deps):
    ids = {body(_create(key=None))["session_id"] for _ in range(2)}
    assert len(ids) == 2 and len(_launches(deps)) == 2


def test_a_failed_first_request_leaves_no_record(deps):
    bad = _create({"template_id": "no-such-template"}, key="key-4")
    assert bad["statusCode"] == 400
    fixed = _create({"template_id": "no-such-template"}, key="key-4")
    assert fixed["statusCode"] == 400  # ran again, not a replay of nothing
    assert _create({"template_id": "python-basic"}, key="key-4")["statusCode"] == 201


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "naïve"])
def test_malformed_keys_are_400(deps, key):
    resp = _create(key=key)
    assert resp["statusCode"] == 400, resp
    assert body(resp)["error_code"] == "Sandbox.InvalidParameter"
    assert "Idempotency-Key" in body(resp)["error_detail"]


def test_the_header_name_is_case_insensitive(deps):
    event = sample_event("sessions_create")
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers["idempotency-key"] = "lower" if headers is event["headers"] else ["lower"]
    first = invoke("sessions_create", copy.deepcopy(event))
    second = invoke("sessions_create", event)
    assert (first["statusCode"], second["statusCode"]) == (201, 200)


def test_records_expire_after_24_hours(deps):
    _create(key="key-5")
    table = boto3.resource("dynamodb").Table(deps.settings.idempotency_table)
    [item] = table.scan()["Items"]  # test-only: the record powertools wrote
    assert item["status"] == "COMPLETED"
    ttl = int(item["expiration"])
    assert IDEMPOTENCY_TTL_S - 60 <= ttl - time.time() <= IDEMPOTENCY_TTL_S + 60
    assert "callback_token_hash" not in item["data"]
