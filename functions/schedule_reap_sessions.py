"""Every 10 s: fail sessions whose sandbox died or never became ready, expire idle and over-age sessions."""

from typing import Any

from sandboxcp.observability import job_entry, logger, metrics
from sandboxcp.services.deps import get_deps
from sandboxcp.services.session_reaper import reap_sessions


@job_entry
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = reap_sessions(get_deps())
    metrics.add_metric(
        name="SessionsReaped", unit="Count", value=len(report.failed + report.expired + report.idle)
    )
    if report.failed or report.expired or report.idle:
        logger.info("sessions reaped", extra=report.__dict__)
    return report.__dict__
