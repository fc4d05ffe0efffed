"""Launch failure path: mark the session failed and destroy whatever sandbox was started."""

from typing import Any

from sandboxcp.observability import job_entry, logger
from sandboxcp.services.deps import get_deps
from sandboxcp.services.launch import mark_launch_failed


@job_entry
def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    logger.append_keys(session_id=event["session_id"])
    logger.warning("launch failed", extra={"error": event.get("error")})
    return mark_launch_failed(get_deps(), event["session_id"], event.get("error"))
