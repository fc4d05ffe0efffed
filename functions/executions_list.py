"""GET /api/v1/sessions/{session_id}/executions: a session's executions, newest first."""

from typing import Annotated

from sandboxcp.api.params import Query
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.executions import ExecutionList, ExecutionSummary
from sandboxcp.domain.states import ExecutionStatus
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.executions import list_executions

app = make_resolver()
ROUTE = route_for("executions_list")


@app.get(resolver_path(ROUTE.path))
def list_(
    session_id: str,
    status: Annotated[ExecutionStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10000)] = 0,
    next_token: Annotated[
        str | None,
        Query(min_length=1, max_length=4096, description="A page's `next_token` (instead of offset)"),
    ] = None,
) -> ExecutionList:
    page = list_executions(
        get_deps(), caller(app), session_id, status=status, limit=limit, offset=offset, next_token=next_token
    )
    return ExecutionList(
        executions=[ExecutionSummary.of(e) for e in page.items], total=page.total, next_token=page.next_token
    )


handler = lambda_entry(app)
