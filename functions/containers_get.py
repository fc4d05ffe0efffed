"""GET /api/v1/containers/{container_id}: one sandbox (by container id or session id)."""

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.containers import ContainerInfo
from sandboxcp.observability import bind_request
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.containers import container_usage, get_container
from sandboxcp.services.deps import get_deps

app = make_resolver()
ROUTE = route_for("containers_get")


@app.get(resolver_path(ROUTE.path))
def get(container_id: str) -> ContainerInfo:
    who = caller(app)
    bind_request(tenant_id=who.tenant_id, container_id=container_id)
    deps = get_deps()
    session = get_container(deps, who, container_id)
    return ContainerInfo.of(session, usage=container_usage(deps, [session]).get(session.container_id or ""))


handler = lambda_entry(app)
