"""Lambda REQUEST authorizer of the internal API: a session's callback token -> that session id.
Handlers then refuse (403) any resource of another session."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)

from sandboxcp.domain.errors import Unauthorized
from sandboxcp.observability import logger
from sandboxcp.services.auth import authenticate_callback
from sandboxcp.services.deps import get_deps


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = APIGatewayAuthorizerRequestEvent(event)
    try:
        session_id = authenticate_callback(get_deps(), request.headers.get("Authorization"))
    except Unauthorized as err:
        logger.info("callback token refused", extra={"reason": err.detail})
        raise Exception("Unauthorized") from err
    arn = request.parsed_arn
    policy = APIGatewayAuthorizerResponse(
        principal_id=session_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context={"session_id": session_id},
    )
    policy.allow_all_routes()
    return policy.asdict()
