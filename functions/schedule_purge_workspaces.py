"""Every minute: delete the workspaces of sessions that ended more than 24 h ago (FR-007)."""

from typing import Any

from sandboxcp.observability import job_entry, logger
from sandboxcp.services.deps import get_deps
from sandboxcp.services.files import purge_due_workspaces


@job_entry
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    purged = purge_due_workspaces(get_deps())
    if purged:
        logger.info("workspaces purged", extra={"sessions": purged})
    return {"purged": purged}
