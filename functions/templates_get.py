"""GET /api/v1/templates/{template_id}: one template."""

from sandboxcp.api.resolver import lambda_entry, make_resolver
from sandboxcp.api.schemas.templates import TemplateResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.templates import get_template

app = make_resolver()
ROUTE = route_for("templates_get")


@app.get(resolver_path(ROUTE.path))
def get(template_id: str) -> TemplateResponse:
    return TemplateResponse.of(get_template(get_deps(), template_id))


handler = lambda_entry(app)
