"""GET /api/v1/sessions: the caller's sessions, newest first, filtered by status and template."""

from typing import Annotated

from sandboxcp.api.params import Query
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.sessions import SessionList, SessionResponse
from sandboxcp.domain.states import SessionStatus
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.sessions import list_sessions

app = make_resolver()
ROUTE = route_for("sessions_list")


@app.get(resolver_path(ROUTE.path))
def list_(
    status: Annotated[SessionStatus | None, Query()] = None,
    template_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10000)] = 0,
    next_token: Annotated[
        str | None,
        Query(min_length=1, max_length=4096, description="A page's `next_token` (instead of offset)"),
    ] = None,
) -> SessionList:
    page = list_sessions(
        get_deps(),
        caller(app),
        status=status,
        template_id=template_id,
        limit=limit,
        offset=offset,
        next_token=next_token,
    )
    return SessionList(
        sessions=[SessionResponse.of(s) for s in page.items], total=page.total, next_token=page.next_token
    )


handler = lambda_entry(app)
