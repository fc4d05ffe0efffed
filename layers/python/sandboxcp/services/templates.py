"""Template use cases and the default templates (seeded idempotently)."""

from __future__ import annotations

from sandboxcp.domain import clock
from sandboxcp.domain.errors import TemplateNotFound
from sandboxcp.domain.models import Template
from sandboxcp.domain.ports import Page
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.services.deps import Dependencies

_DEFAULTS: tuple[dict[str, object], ...] = (
    {
        "id": "python-basic",
        "name": "Python 3.11 basic",
        "image": "sandboxcp/python-basic:latest",
        "base_image": "debian:12-slim",
        "languages": ["python", "shell"],
        "default_resources": ResourceLimit(cpu="1", memory="512Mi", disk="1Gi"),
    },
    {
        "id": "python-datascience",
        "name": "Python 3.11 data science",
        "image": "sandboxcp/python-datascience:latest",
        "base_image": "debian:12-slim",
        "pre_installed_packages": ["numpy", "pandas"],
        "languages": ["python", "shell"],
        "default_resources": ResourceLimit(cpu="2", memory="2Gi", disk="5Gi"),
    },
    {
        "id": "nodejs-basic",
        "name": "Node.js 20 basic",
        "image": "sandboxcp/nodejs-basic:latest",
        "base_image": "debian:12-slim",
        "languages": ["javascript", "shell"],
        "default_resources": ResourceLimit(cpu="1", memory="512Mi", disk="1Gi"),
    },
)


def default_templates() -> list[Template]:
    now = clock.now()
    return [
        Template.model_validate(
            {
                **spec,
                "security_context": {
                    "run_as_user": 1000,
                    "run_as_group": 1000,
                    "network_enabled": False,
                    "max_processes": 128,
                },
                "created_at": now,
                "updated_at": now,
            }
        )
        for spec in _DEFAULTS
    ]


def seed_default_templates(deps: Dependencies) -> list[str]:
    """Create the default templates that are missing; existing ones (maybe edited) are left alone."""
    return [t.id for t in default_templates() if deps.templates.put_if_absent(t)]


def get_template(deps: Dependencies, template_id: str) -> Template:
    template = deps.templates.get(template_id)
    if template is None:
        raise TemplateNotFound(f"Template '{template_id}' does not exist")
    return template


def list_templates(deps: Dependencies, *, limit: int, offset: int) -> Page[Template]:
    return deps.templates.list(limit=limit, offset=offset)
