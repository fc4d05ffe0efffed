"""DELETE /api/v1/sessions/{session_id}: mark the session terminated and destroy its sandbox."""

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.common import MessageResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.sessions import terminate_session

app = make_resolver()
ROUTE = route_for("sessions_terminate")


@app.delete(resolver_path(ROUTE.path))
def terminate(session_id: str) -> MessageResponse:
    session = terminate_session(get_deps(), caller(app), session_id)
    return MessageResponse(message=f"Session {session.status}")


handler = lambda_entry(app)
