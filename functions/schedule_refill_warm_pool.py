"""Every 10 s: size each warm pool (SANDBOX_WARM_POOL) to its demand between floor and ceiling, retire
dead and surplus warm sandboxes, start new ones where placement puts them (services/warm_pool.py)."""

from typing import Any

from sandboxcp.observability import job_entry, logger
from sandboxcp.services.deps import get_deps
from sandboxcp.services.warm_pool import refill


@job_entry
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = refill(get_deps())
    if report.started or report.retired:
        logger.info("warm pool refilled", extra=report.__dict__)
    return report.__dict__
