"""Lambda REQUEST authorizer of the public API: the bearer API key -> tenant and admin flag."""

from typing import Any

from sandboxcp.api.authorizer import authorize
from sandboxcp.observability import logger
from sandboxcp.services.auth import authenticate_api_key
from sandboxcp.services.deps import get_deps


def _tenant(authorization: str | None) -> tuple[str, dict[str, str]]:
    principal = authenticate_api_key(get_deps(), authorization)
    return principal.tenant_id, {
        "tenant_id": principal.tenant_id,
        "is_admin": "true" if principal.is_admin else "false",
    }


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return authorize(event, _tenant)
