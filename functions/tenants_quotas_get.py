"""GET /api/v1/tenants/{tenant_id}/quotas: a tenant's quotas and what it uses now (its own with any key,
any tenant's with an admin key)."""

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.domain.quotas import TenantQuota
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.quotas import get_quotas

app = make_resolver()
ROUTE = route_for("tenants_quotas_get")


@app.get(resolver_path(ROUTE.path))
def get(tenant_id: str) -> TenantQuota:
    return get_quotas(get_deps(), caller(app), tenant_id)


handler = lambda_entry(app)
