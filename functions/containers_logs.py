"""GET /api/v1/containers/{container_id}/logs: the sandbox's last `tail` log lines as text/plain."""

from datetime import datetime
from typing import Annotated

from sandboxcp.api.params import Query, Response
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.observability import bind_request
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.containers import MAX_TAIL, container_logs
from sandboxcp.services.deps import get_deps

app = make_resolver()
ROUTE = route_for("containers_logs")


@app.get(resolver_path(ROUTE.path))
def logs(
    container_id: str,
    tail: Annotated[int, Query(ge=1, le=MAX_TAIL)] = 100,
    since: Annotated[datetime | None, Query()] = None,
) -> Response[str]:
    who = caller(app)
    bind_request(tenant_id=who.tenant_id, container_id=container_id)
    lines = container_logs(get_deps(), who, container_id, tail=tail, since=since)
    return Response(200, "text/plain; charset=utf-8", "".join(f"{line}\n" for line in lines))


handler = lambda_entry(app)
