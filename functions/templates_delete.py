"""DELETE /api/v1/templates/{template_id} (admin): 204; refused (400) while active sessions use it."""

from sandboxcp.api.params import Response
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.observability import bind_request
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.templates import delete_template

app = make_resolver()
ROUTE = route_for("templates_delete")


@app.delete(resolver_path(ROUTE.path))
def delete(template_id: str) -> Response[None]:
    who = caller(app)
    bind_request(tenant_id=who.tenant_id, template_id=template_id)
    delete_template(get_deps(), who, template_id)
    return Response(204, None, None)


handler = lambda_entry(app)
