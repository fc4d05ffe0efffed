"""Lambda REQUEST authorizer of the public API: the bearer API key -> tenant and admin flag; counts the
request against the tenant's requests-per-second quota."""

from typing import Any

from sandboxcp.api.authorizer import authorize
from sandboxcp.observability import job_entry
from sandboxcp.services.auth import authenticate_api_key
from sandboxcp.services.deps import get_deps
from sandboxcp.services.quotas import THROTTLED_CONTEXT_KEY, count_request


def _tenant(authorization: str | None) -> tuple[str, dict[str, str]]:
    deps = get_deps()
    principal = authenticate_api_key(deps, authorization)
    context = {"tenant_id": principal.tenant_id, "is_admin": "true" if principal.is_admin else "false"}
    # Requests per second per tenant: counted here, on every request (results are never cached); an
    # authorizer cannot answer 429, so the handler refuses what the context marks (sandboxcp.api.resolver).
    retry_after = count_request(deps, principal.tenant_id)
    if retry_after is not None:
        context[THROTTLED_CONTEXT_KEY] = str(retry_after)
    return principal.tenant_id, context


@job_entry
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return authorize(event, _tenant)
