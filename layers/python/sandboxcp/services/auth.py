"""API keys and per-session callback tokens. Secrets are shown once and stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac

from sandboxcp.domain import clock
from sandboxcp.domain.errors import Forbidden, InvalidParameter, Unauthorized
from sandboxcp.domain.ids import SESSION_ID_RE, new_secret
from sandboxcp.domain.models import ApiKey, Principal
from sandboxcp.domain.states import ACTIVE_SESSION_STATUSES
from sandboxcp.services.deps import Dependencies

API_KEY_PREFIX = "sk_"
CALLBACK_PREFIX = "cb_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer(authorization: str | None) -> str:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("Missing 'Authorization: Bearer <token>' header")
    token = authorization[7:].strip()
    if not token:
        raise Unauthorized("Empty bearer token")
    return token


def authenticate_api_key(deps: Dependencies, authorization: str | None) -> Principal:
    token = bearer(authorization)
    key = deps.api_keys.get(hash_secret(token))
    if key is None:
        raise Unauthorized("Invalid API key")
    return Principal(tenant_id=key.tenant_id, is_admin=key.is_admin)


def issue_api_key(deps: Dependencies, caller: Principal, tenant_id: str, *, admin: bool) -> str:
    if not caller.is_admin:
        raise Forbidden("Only an admin key can issue keys")
    if not tenant_id or len(tenant_id) > 64 or not tenant_id.replace("-", "").replace("_", "").isalnum():
        raise InvalidParameter("tenant_id must be 1-64 letters, digits, '-' or '_'")
    secret = new_secret(API_KEY_PREFIX)
    deps.api_keys.put(
        ApiKey(key_hash=hash_secret(secret), tenant_id=tenant_id, is_admin=admin, created_at=clock.now())
    )
    return secret


def ensure_api_key(deps: Dependencies, secret: str, tenant_id: str, *, admin: bool) -> None:
    """Register a known secret (local mode's admin key); a no-op when it is already registered."""
    if deps.api_keys.get(hash_secret(secret)) is None:
        deps.api_keys.put(
            ApiKey(key_hash=hash_secret(secret), tenant_id=tenant_id, is_admin=admin, created_at=clock.now())
        )


def new_callback_token(session_id: str) -> str:
    """`cb_<session_id>.<random>`: the session id lets the authorizer find the one hash to compare."""
    return new_secret(f"{CALLBACK_PREFIX}{session_id}.")


def authenticate_callback(deps: Dependencies, authorization: str | None) -> str:
    """Return the session id whose callback token this is; the token is valid for that session only."""
    token = bearer(authorization)
    session_id = token.removeprefix(CALLBACK_PREFIX).split(".", 1)[0]
    if not token.startswith(CALLBACK_PREFIX) or not SESSION_ID_RE.fullmatch(session_id):
        raise Unauthorized("Malformed callback token")
    session = deps.sessions.get(session_id)
    if (
        session is None
        or session.callback_token_hash is None
        or not hmac.compare_digest(session.callback_token_hash, hash_secret(token))
    ):
        raise Unauthorized("Invalid callback token")
    if session.status not in ACTIVE_SESSION_STATUSES:
        raise Unauthorized(
            f"Session '{session_id}' is {session.status}; its callback token is no longer valid"
        )
    return session_id
