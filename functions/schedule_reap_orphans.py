"""Every 60 s: destroy sandboxes the runtime manages that no creating/running session owns."""

from typing import Any

from sandboxcp.observability import job_entry, logger
from sandboxcp.services.deps import get_deps
from sandboxcp.services.orphans import reap_orphans


@job_entry
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = reap_orphans(get_deps())
    if report.destroyed or report.errors:
        logger.info("orphans reaped", extra=report.__dict__)
    return report.__dict__
