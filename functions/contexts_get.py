"""GET /api/v1/sessions/{session_id}/contexts/{context_id}: a code context, its status as the sandbox
reports it now while the session runs (ready, busy, dead), else as last seen."""

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.contexts import ContextResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.contexts import get_context
from sandboxcp.services.deps import get_deps

app = make_resolver()
ROUTE = route_for("contexts_get")


@app.get(resolver_path(ROUTE.path))
def get(session_id: str, context_id: str) -> ContextResponse:
    return ContextResponse.of(get_context(get_deps(), caller(app), session_id, context_id))


handler = lambda_entry(app)
