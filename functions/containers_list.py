"""GET /api/v1/containers: sandboxes by status and runtime (tenants: their own; admins: every tenant's)."""

from typing import Annotated

from sandboxcp.api.params import Query
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.containers import ContainerInfo, ContainerList
from sandboxcp.domain.states import SessionStatus
from sandboxcp.observability import bind_request
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.containers import RuntimeFilter, container_usage, list_containers
from sandboxcp.services.deps import get_deps

app = make_resolver()
ROUTE = route_for("containers_list")


@app.get(resolver_path(ROUTE.path))
def list_(
    status: Annotated[SessionStatus | None, Query()] = None,
    runtime_type: Annotated[RuntimeFilter | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10000)] = 0,
) -> ContainerList:
    who = caller(app)
    bind_request(tenant_id=who.tenant_id)
    deps = get_deps()
    page = list_containers(deps, who, status=status, runtime_type=runtime_type, limit=limit, offset=offset)
    usage = container_usage(deps, page.items)
    return ContainerList(
        containers=[ContainerInfo.of(s, usage=usage.get(s.container_id or "")) for s in page.items],
        total=page.total,
    )


handler = lambda_entry(app)
