"""Per-tenant quotas (sandboxcp.domain.quotas): reading and setting them (admin API) and counting API
requests per second. Sessions and executions are counted by their repositories, in the same transaction
as their own writes (see sandboxcp.adapters.dynamo.tenants)."""

from __future__ import annotations

import re
import time

from pydantic import Field

from sandboxcp.domain.errors import Forbidden, InvalidParameter
from sandboxcp.domain.inputs import RequestBody
from sandboxcp.domain.models import Principal
from sandboxcp.domain.quotas import (
    MAX_CPU_LIMIT,
    MAX_INFLIGHT_LIMIT,
    MAX_MEMORY_LIMIT_MB,
    MAX_RPS_LIMIT,
    MAX_SESSIONS_LIMIT,
    QuotaExceeded,
    TenantQuota,
)
from sandboxcp.observability import audit, logger
from sandboxcp.services.deps import Dependencies

TENANT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as POST /keys accepts them
# The authorizer's context key that tells the handler the request is over the tenant's rate.
THROTTLED_CONTEXT_KEY = "throttled_retry_after"


class SetQuotasRequest(RequestBody):
    """New limits; a field left out keeps its current value. 0 refuses everything of that kind."""

    max_sessions: int | None = Field(default=None, ge=0, le=MAX_SESSIONS_LIMIT)
    max_inflight_executions: int | None = Field(default=None, ge=0, le=MAX_INFLIGHT_LIMIT)
    max_cpu: float | None = Field(default=None, ge=0, le=MAX_CPU_LIMIT, description="Cores")
    max_memory_mb: int | None = Field(default=None, ge=0, le=MAX_MEMORY_LIMIT_MB)
    max_requests_per_second: int | None = Field(default=None, ge=1, le=MAX_RPS_LIMIT)


def _check_tenant(tenant_id: str) -> None:
    if not TENANT_ID_RE.fullmatch(tenant_id):
        raise InvalidParameter("tenant_id must be 1-64 letters, digits, '-' or '_'")


def get_quotas(deps: Dependencies, caller: Principal, tenant_id: str) -> TenantQuota:
    """A tenant reads its own quotas; an admin reads anyone's."""
    _check_tenant(tenant_id)
    if tenant_id != caller.tenant_id and not caller.is_admin:
        raise Forbidden("Only an admin key can read another tenant's quotas")
    return deps.quotas.get(tenant_id)


def set_quotas(deps: Dependencies, caller: Principal, tenant_id: str, req: SetQuotasRequest) -> TenantQuota:
    if not caller.is_admin:
        raise Forbidden("Only an admin key can set quotas")
    _check_tenant(tenant_id)
    current = deps.quotas.get(tenant_id).limits
    changes = req.model_dump(exclude_none=True)
    if not changes:
        raise InvalidParameter("Give at least one limit to change", solution="See docs/api.md, Quotas")
    stored = deps.quotas.set_limits(tenant_id, current.model_copy(update=changes))
    audit("tenant.quotas.set", "success", target_tenant=tenant_id, **changes)
    return stored


def count_request(deps: Dependencies, tenant_id: str, *, now_s: int | None = None) -> int | None:
    """Count one API request against the tenant's requests-per-second quota: None if it fits, else the
    seconds to wait. Fails open: a counter that cannot be written never refuses a request."""
    try:
        return deps.quotas.take_request(tenant_id, int(time.time()) if now_s is None else now_s)
    except Exception:
        logger.warning("request rate not counted", extra={"tenant_id": tenant_id}, exc_info=True)
        return None


def refuse_if_throttled(authorizer_context: dict[str, object]) -> None:
    """Raise the 429 the authorizer decided on (it counts; the handler answers with the error body)."""
    value = authorizer_context.get(THROTTLED_CONTEXT_KEY)
    if value is None or value == "":
        return
    try:
        retry_after = max(1, int(str(value)))
    except ValueError:
        retry_after = 1
    tenant = authorizer_context.get("tenant_id", "")
    raise QuotaExceeded(
        "requests_per_second",
        f"Tenant '{tenant}' is over its quota of API requests per second",
        retry_after=retry_after,
    )
