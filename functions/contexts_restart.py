"""POST /api/v1/sessions/{session_id}/contexts/{context_id}/restart: a fresh interpreter for the context
(after a crash, or to drop its state); the id stays, its variables are gone."""

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.contexts import ContextResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.contexts import restart_context
from sandboxcp.services.deps import get_deps

app = make_resolver()
ROUTE = route_for("contexts_restart")


@app.post(resolver_path(ROUTE.path))
def restart(session_id: str, context_id: str) -> ContextResponse:
    return ContextResponse.of(restart_context(get_deps(), caller(app), session_id, context_id))


handler = lambda_entry(app)
