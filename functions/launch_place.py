"""Launch step 1: choose the runtime and node for the session."""

from typing import Any

from sandboxcp.observability import logger
from sandboxcp.services.deps import get_deps
from sandboxcp.services.launch import place_session


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    logger.append_keys(session_id=event["session_id"])
    return place_session(get_deps(), event["session_id"])
