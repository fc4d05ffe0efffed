"""PUT /api/v1/tenants/{tenant_id}/quotas (admin): set a tenant's limits; fields left out keep their
values. Usage is kept: below a lowered limit, new work is refused until enough ends."""

from typing import Annotated

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.domain.quotas import TenantQuota
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.quotas import SetQuotasRequest, set_quotas

app = make_resolver()
ROUTE = route_for("tenants_quotas_put")


@app.put(resolver_path(ROUTE.path))
def put(tenant_id: str, body: Annotated[SetQuotasRequest, Body()]) -> TenantQuota:
    return set_quotas(get_deps(), caller(app), tenant_id, body)


handler = lambda_entry(app)
