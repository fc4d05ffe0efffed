"""POST /api/v1/keys (admin): issue an API key for a tenant. The secret is returned once."""

from typing import Annotated

from sandboxcp.api.params import Body, Response
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.keys import ApiKeyResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.auth import issue_api_key
from sandboxcp.services.deps import get_deps
from sandboxcp.services.requests.keys import CreateKeyRequest

app = make_resolver()
ROUTE = route_for("keys_create")


@app.post(resolver_path(ROUTE.path))
def create(body: Annotated[CreateKeyRequest, Body()]) -> Response[ApiKeyResponse]:
    secret = issue_api_key(get_deps(), caller(app), body.tenant_id, admin=body.admin)
    return Response(
        201, "application/json", ApiKeyResponse(api_key=secret, tenant_id=body.tenant_id, admin=body.admin)
    )


handler = lambda_entry(app)
