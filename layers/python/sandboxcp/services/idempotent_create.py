"""Idempotent session create: `POST /api/v1/sessions` with an `Idempotency-Key` header.

- The same key with the same body within 24 h returns the session the first request created (the stored
  response: the handler answers 200 instead of 201) and starts no second sandbox.
- The same key with a different body is refused with 422 `Sandbox.IdempotencyKeyReused`.
- Keys are scoped per tenant: two tenants using the same key never see each other's sessions.
- A key whose first request is still running answers 409 `Sandbox.StateConflict` (retry with the same key);
  a first request that failed (400, 503...) leaves no record, so a retry runs again.

"The same body" is compared after validation (defaults filled in), so `{"template_id": "python-basic"}`
and the same with `"timeout": 300` are one request. Built on powertools' Idempotency utility and its
DynamoDB table (`IDEMPOTENCY_TABLE`); without a key the plain `create_session` runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from sandboxcp.adapters.dynamo.idempotency import persistence_layer
from sandboxcp.domain.errors import InvalidParameter, SandboxError, StateConflict
from sandboxcp.domain.models import Principal, Session
from sandboxcp.observability import audit
from sandboxcp.once import cache_once
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.requests.sessions import CreateSessionRequest
from sandboxcp.services.sessions import create_session

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_TTL_S = 24 * 3600
# Visible ASCII, 1-255 characters: UUIDs, ULIDs and most client-made keys fit.
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
# Fields never kept in the idempotency table (none is set at creation; excluded all the same).
_PRIVATE_FIELDS = {"callback_token_hash", "task_token", "executor_url"}


class IdempotencyKeyReused(SandboxError):
    """The key was used before with another request body (same tenant, within 24 h)."""

    status_code = 422
    error_code = "Sandbox.IdempotencyKeyReused"
    description = "Idempotency key reused with a different request"
    solution = (
        "Resend the original request body with this Idempotency-Key, or use a new key for a new request"
    )


@dataclass(frozen=True)
class CreateOutcome:
    session: Session
    replayed: bool  # True: the stored result of an earlier request with the same key and body


def _mark_replayed(response: Any, idempotent_data: DataRecord) -> Any:
    """Powertools calls this only when it answers from the store (a replay)."""
    return {**response, "replayed": True} if isinstance(response, dict) else response


_config = IdempotencyConfig(
    event_key_jmespath="[tenant_id, idempotency_key]",
    payload_validation_jmespath="body",
    expires_after_seconds=IDEMPOTENCY_TTL_S,
    response_hook=_mark_replayed,
)


def register_lambda_context(context: Any) -> None:
    """Lets powertools expire an in-progress record when the invocation that wrote it times out (without
    it a key whose first request died mid-way would answer 409 until the record expires)."""
    _config.register_lambda_context(context)


def _create(request: dict[str, Any], deps: Dependencies) -> dict[str, Any]:
    caller = Principal(tenant_id=request["tenant_id"], is_admin=request["is_admin"])
    body = CreateSessionRequest.model_validate(request["body"])
    session = create_session(deps, caller, body)
    return {"session": session.model_dump(mode="json", exclude=_PRIVATE_FIELDS), "replayed": False}


@cache_once
def _idempotent_create(table_name: str) -> Callable[..., dict[str, Any]]:
    store = persistence_layer(table_name)
    wrapped: Callable[..., dict[str, Any]] = idempotent_function(
        data_keyword_argument="request", config=_config, persistence_store=store
    )(_create)
    return wrapped


def create_session_once(
    deps: Dependencies, caller: Principal, req: CreateSessionRequest, idempotency_key: str | None
) -> CreateOutcome:
    """Create a session; with an idempotency key, at most once per (tenant, key) within 24 h."""
    if idempotency_key is None:
        return CreateOutcome(create_session(deps, caller, req), replayed=False)
    if not IDEMPOTENCY_KEY_RE.match(idempotency_key):
        raise InvalidParameter(
            f"The {IDEMPOTENCY_HEADER} header must be 1-255 visible ASCII characters",
            solution="Send a UUID (or another unique token) as the Idempotency-Key",
        )
    request = {
        "tenant_id": caller.tenant_id,
        "is_admin": caller.is_admin,
        "idempotency_key": idempotency_key,
        "body": req.model_dump(mode="json"),
    }
    try:
        stored = _idempotent_create(deps.settings.idempotency_table)(request=request, deps=deps)
    except IdempotencyValidationError as err:
        audit("session.create", "refused", reason="idempotency key reused")
        raise IdempotencyKeyReused(
            f"The {IDEMPOTENCY_HEADER} '{idempotency_key}' was used with a different request body"
            " in the last 24 hours"
        ) from err
    except IdempotencyAlreadyInProgressError as err:
        raise StateConflict(
            f"A request with the {IDEMPOTENCY_HEADER} '{idempotency_key}' is still in progress",
            solution="Retry in a moment with the same Idempotency-Key and body",
        ) from err
    session = Session.model_validate(stored["session"])
    if stored.get("replayed"):
        audit("session.create", "success", session_id=session.session_id, replayed=True)
    return CreateOutcome(session, replayed=bool(stored.get("replayed")))
