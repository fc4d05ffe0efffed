"""GET /api/v1/sessions/{session_id}: one session of the caller's tenant."""

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.sessions import SessionResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.sessions import get_session

app = make_resolver()
ROUTE = route_for("sessions_get")


@app.get(resolver_path(ROUTE.path))
def get(session_id: str) -> SessionResponse:
    return SessionResponse.of(get_session(get_deps(), caller(app), session_id))


handler = lambda_entry(app)
