"""PUT /api/v1/templates/{template_id} (admin): partial update; `{"deprecated": true}` hides a template
from new sessions and keeps it for existing ones."""

from typing import Annotated

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.templates import TemplateResponse
from sandboxcp.observability import bind_request
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.templates import UpdateTemplateRequest, update_template

app = make_resolver()
ROUTE = route_for("templates_update")


@app.put(resolver_path(ROUTE.path))
def update(template_id: str, body: Annotated[UpdateTemplateRequest, Body()]) -> TemplateResponse:
    who = caller(app)
    bind_request(tenant_id=who.tenant_id, template_id=template_id)
    return TemplateResponse.of(update_template(get_deps(), who, template_id, body))


handler = lambda_entry(app)
