"""POST /api/v1/templates (admin): create a template; ids are unique (409 on a duplicate)."""

from typing import Annotated

from sandboxcp.api.params import Body, Response
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.templates import TemplateResponse
from sandboxcp.observability import bind_request
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.templates import CreateTemplateRequest, create_template

app = make_resolver()
ROUTE = route_for("templates_create")


@app.post(resolver_path(ROUTE.path))
def create(body: Annotated[CreateTemplateRequest, Body()]) -> Response[TemplateResponse]:
    who = caller(app)
    bind_request(tenant_id=who.tenant_id, template_id=body.id)
    template = create_template(get_deps(), who, body)
    return Response(201, "application/json", TemplateResponse.of(template))


handler = lambda_entry(app)
