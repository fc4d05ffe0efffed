"""Every 5 s: executions without a heartbeat for 15 s become crashed and are retried; running executions
past their timeout become timeout."""

from typing import Any

from sandboxcp.observability import job_entry, logger, metrics
from sandboxcp.services.deps import get_deps
from sandboxcp.services.reaper import reap_executions


@job_entry
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = reap_executions(get_deps())
    metrics.add_metric(name="ExecutionsCrashed", unit="Count", value=len(report.crashed))
    metrics.add_metric(name="ExecutionsTimedOutByControlPlane", unit="Count", value=len(report.timed_out))
    if report.crashed or report.timed_out:
        logger.warning("executions reaped", extra=report.__dict__)
    return {
        "examined": report.examined,
        "crashed": report.crashed,
        "timed_out": report.timed_out,
        "retried": report.retried,
        "scheduled": report.scheduled,
    }
