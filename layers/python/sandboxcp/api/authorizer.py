"""The Lambda REQUEST authorizers' shared shape: read the bearer header, authenticate, answer an IAM
policy with a context, or raise "Unauthorized" (API Gateway's contract for a 401)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)

from sandboxcp.domain.errors import Unauthorized
from sandboxcp.observability import logger


def authorize(
    event: dict[str, Any], authenticate: Callable[[str | None], tuple[str, dict[str, str]]]
) -> dict[str, Any]:
    """`authenticate(authorization header) -> (principal id, context)`; raises Unauthorized to refuse."""
    request = APIGatewayAuthorizerRequestEvent(event)
    try:
        principal_id, context = authenticate(request.headers.get("Authorization"))
    except Unauthorized as err:
        logger.info("credential refused", extra={"reason": err.detail})
        raise Exception("Unauthorized") from err
    arn = request.parsed_arn
    policy = APIGatewayAuthorizerResponse(
        principal_id=principal_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context=context,
    )
    policy.allow_all_routes()
    return policy.asdict()
