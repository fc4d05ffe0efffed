"""REQUEST authorizer of the live-output WebSocket API's $connect (infra/sandboxcp_infra/streaming.py): the
bearer API key -> the tenant, which API Gateway then passes to every message of the connection."""

from typing import Any

from sandboxcp.domain.errors import Unauthorized
from sandboxcp.observability import logger
from sandboxcp.services.auth import authenticate_api_key
from sandboxcp.services.deps import get_deps


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        principal = authenticate_api_key(get_deps(), headers.get("authorization"))
    except Unauthorized as err:
        logger.info("credential refused", extra={"reason": err.detail})
        raise Exception("Unauthorized") from err  # API Gateway's contract for a 401
    # The policy names this connection's $connect only: the WebSocket method ARN has no verb/path to widen.
    statement = {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}
    return {
        "principalId": principal.tenant_id,
        "policyDocument": {"Version": "2012-10-17", "Statement": [statement]},
        "context": {"tenant_id": principal.tenant_id},
    }
