"""Launch step 2: start the sandbox with its callback token; the workflow waits on `task_token`."""

from typing import Any

from sandboxcp.observability import logger
from sandboxcp.services.deps import get_deps
from sandboxcp.services.launch import start_sandbox


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(session_id=event["session_id"])
    return start_sandbox(get_deps(), event["session_id"], event["task_token"])
