"""Lambda REQUEST authorizer of the public API: the bearer API key -> tenant and admin flag."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)

from sandboxcp.domain.errors import Unauthorized
from sandboxcp.observability import logger
from sandboxcp.services.auth import authenticate_api_key
from sandboxcp.services.deps import get_deps


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = APIGatewayAuthorizerRequestEvent(event)
    try:
        principal = authenticate_api_key(get_deps(), request.headers.get("Authorization"))
    except Unauthorized as err:
        logger.info("api key refused", extra={"reason": err.detail})
        raise Exception("Unauthorized") from err  # API Gateway's contract for a 401
    arn = request.parsed_arn
    policy = APIGatewayAuthorizerResponse(
        principal_id=principal.tenant_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context={"tenant_id": principal.tenant_id, "is_admin": "true" if principal.is_admin else "false"},
    )
    policy.allow_all_routes()
    return policy.asdict()
