"""Launch step 1: choose the runtime and node for the session (services/placement.py scoring); the start step
starts the sandbox on that node."""

from typing import Any

from sandboxcp.observability import job_entry, logger
from sandboxcp.services.deps import get_deps
from sandboxcp.services.launch import place_session


@job_entry
def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    logger.append_keys(session_id=event["session_id"])
    return place_session(get_deps(), event["session_id"])
