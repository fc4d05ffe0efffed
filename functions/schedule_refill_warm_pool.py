"""Every 10 s: keep each warm pool (SANDBOX_WARM_POOL) at its size, retiring dead warm sandboxes."""

from typing import Any

from sandboxcp.observability import logger
from sandboxcp.services.deps import get_deps
from sandboxcp.services.warm_pool import refill


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = refill(get_deps())
    if report.started or report.retired:
        logger.info("warm pool refilled", extra=report.__dict__)
    return report.__dict__
