"""Launch step 2: start the sandbox with its callback token; the workflow waits on `task_token`."""

from typing import Any

from sandboxcp.observability import job_entry, logger
from sandboxcp.services.deps import get_deps
from sandboxcp.services.launch import start_sandbox


@job_entry
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(session_id=event["session_id"])
    return start_sandbox(get_deps(), event["session_id"], event["task_token"])
