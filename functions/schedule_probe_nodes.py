"""Every 10 s: probe the runtime nodes; 3 consecutive failures -> unhealthy, one success -> healthy."""

from typing import Any

from sandboxcp.observability import job_entry, logger
from sandboxcp.services.deps import get_deps
from sandboxcp.services.nodes import probe_nodes


@job_entry
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = probe_nodes(get_deps())
    if report.became_unhealthy or report.became_healthy:
        logger.info("node health changed", extra=report.__dict__)
    return report.__dict__
