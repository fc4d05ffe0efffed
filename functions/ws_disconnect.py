"""$disconnect of the live-output WebSocket API: drop the connection's subscriptions (their rows also
expire after API Gateway's 2-hour connection limit)."""

from typing import Any

from sandboxcp.observability import logger
from sandboxcp.services.deps import get_deps


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    get_deps().output_push.unsubscribe(str(event["requestContext"]["connectionId"]))
    return {"statusCode": 200}
