"""$connect of the live-output WebSocket API: the authorizer (ws_authorizer) already accepted the key;
nothing is subscribed until the client sends `{"action": "subscribe", ...}` (docs/streaming.md)."""

from typing import Any

from sandboxcp.observability import logger


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200}
