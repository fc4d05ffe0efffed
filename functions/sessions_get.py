"""GET /api/v1/sessions/{session_id}: one session of the caller's tenant. With `wait` (up to 20 s), a session
still `creating` is answered as soon as it leaves that state (running, failed, terminated): one request
instead of polling while it launches."""

from typing import Annotated

from sandboxcp.api.params import Query
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.sessions import SessionResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.sessions import MAX_WAIT_S, wait_for_session

app = make_resolver()
ROUTE = route_for("sessions_get")


@app.get(resolver_path(ROUTE.path))
def get(
    session_id: str,
    wait: Annotated[
        float | None,
        Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait while the session is `creating` (default 0)"),
    ] = None,
) -> SessionResponse:
    return SessionResponse.of(wait_for_session(get_deps(), caller(app), session_id, wait_s=wait or 0.0))


handler = lambda_entry(app)
