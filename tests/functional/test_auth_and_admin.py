"""Authorizers (API keys, callback tokens) and the admin-only keys endpoint."""

from __future__ import annotations

import json

import pytest

from sandboxcp.domain.models import Principal
from sandboxcp.domain.states import SessionStatus
from sandboxcp.services import auth
from tests.functional.conftest import SAMPLE_SESSION, body, invoke, sample_event, seed_session


def _authorize(module: str, token: str | None) -> dict:
    event = sample_event(module)
    event["headers"] = {"Authorization": f"Bearer {token}"} if token is not None else {}
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    return invoke(module, event)


def test_api_key_authorizer_resolves_the_tenant(deps):
    secret = auth.issue_api_key(deps, Principal(tenant_id="root", is_admin=True), "tenant-a", admin=False)
    policy = _authorize("authorizer_api_key", secret)
    assert policy["principalId"] == "tenant-a"
    assert policy["context"] == {"tenant_id": "tenant-a", "is_admin": "false"}
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    stored = [k for k in deps.api_keys.__class__.__mro__]  # the secret itself is never stored
    assert deps.api_keys.get(secret) is None and deps.api_keys.get(auth.hash_secret(secret)) is not None
    assert stored


@pytest.mark.parametrize("token", [None, "", "sk_wrong", "cb_" + SAMPLE_SESSION + ".x"])
def test_api_key_authorizer_refuses_missing_and_bad_keys(deps, token):
    with pytest.raises(Exception, match="Unauthorized"):
        _authorize("authorizer_api_key", token)


def test_callback_authorizer_accepts_only_the_sessions_own_live_token(deps):
    token = auth.new_callback_token(SAMPLE_SESSION)
    seed_session(deps, token_hash=auth.hash_secret(token))
    policy = _authorize("authorizer_callback", token)
    assert policy["context"] == {"session_id": SAMPLE_SESSION}
    forged = token[:-4] + "AAAA"
    with pytest.raises(Exception, match="Unauthorized"):
        _authorize("authorizer_callback", forged)
    with pytest.raises(Exception, match="Unauthorized"):
        _authorize("authorizer_callback", "sk_some_api_key")
    deps.sessions.transition(
        SAMPLE_SESSION, SessionStatus.TERMINATED, now=deps.sessions.get(SAMPLE_SESSION).updated_at
    )
    with pytest.raises(Exception, match="Unauthorized"):
        _authorize("authorizer_callback", token)


def test_admin_issues_keys_and_others_cannot(deps):
    resp = invoke("keys_create", sample_event("keys_create"))
    assert resp["statusCode"] == 201
    issued = body(resp)
    assert issued["tenant_id"] == "tenant-b" and issued["api_key"].startswith("sk_")
    assert auth.authenticate_api_key(deps, f"Bearer {issued['api_key']}").tenant_id == "tenant-b"
    event = sample_event("keys_create")
    event["requestContext"]["authorizer"]["is_admin"] = "false"
    refused = invoke("keys_create", event)
    assert refused["statusCode"] == 403
    bad = sample_event("keys_create")
    bad["body"] = json.dumps({"tenant_id": "no spaces allowed"})
    assert invoke("keys_create", bad)["statusCode"] == 400


def test_header_names_are_case_insensitive(deps):
    secret = auth.issue_api_key(deps, Principal(tenant_id="root", is_admin=True), "tenant-a", admin=False)
    event = sample_event("authorizer_api_key")
    event["headers"] = {"authorization": f"Bearer {secret}"}
    event["multiValueHeaders"] = {"authorization": [f"Bearer {secret}"]}
    assert invoke("authorizer_api_key", event)["principalId"] == "tenant-a"


def test_a_found_key_is_read_again_after_its_ttl_and_a_missing_one_on_every_request(deps, monkeypatch):
    """The authorizer remembers a key it found for a while (one read saved per request), never a miss."""
    from sandboxcp.adapters.dynamo import api_keys
    from sandboxcp.adapters.tables import ApiKeyRecord
    from sandboxcp.domain.errors import Unauthorized

    auth_service = auth

    secret = auth_service.issue_api_key(deps, Principal(tenant_id="ops", is_admin=True), "t1", admin=False)
    now = [1000.0]
    monkeypatch.setattr(api_keys.time, "monotonic", lambda: now[0])
    assert auth_service.authenticate_api_key(deps, f"Bearer {secret}").tenant_id == "t1"
    ApiKeyRecord.get(auth_service.hash_secret(secret)).delete()  # revoked by deleting its item
    assert auth_service.authenticate_api_key(deps, f"Bearer {secret}").tenant_id == "t1"  # remembered
    now[0] += api_keys.FOUND_KEY_TTL_S + 1
    with pytest.raises(Unauthorized):
        auth_service.authenticate_api_key(deps, f"Bearer {secret}")
    # A key not found is not remembered: issued now, it works on the next request.
    later = "sk_" + "x" * 43
    with pytest.raises(Unauthorized):
        auth_service.authenticate_api_key(deps, f"Bearer {later}")
    auth_service.ensure_api_key(deps, later, "t2", admin=False)
    assert auth_service.authenticate_api_key(deps, f"Bearer {later}").tenant_id == "t2"
