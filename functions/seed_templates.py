"""Seed the default templates (python-basic, python-datascience, nodejs-basic); safe to run again."""

from typing import Any

from sandboxcp.observability import job_entry, logger
from sandboxcp.services.deps import get_deps
from sandboxcp.services.templates import seed_default_templates


@job_entry
def handler(event: dict[str, Any], context: Any) -> dict[str, list[str]]:
    created = seed_default_templates(get_deps())
    logger.info("templates seeded", extra={"templates_created": created})
    return {"created": created}
