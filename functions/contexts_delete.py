"""DELETE /api/v1/sessions/{session_id}/contexts/{context_id}: stop the context's interpreter and mark it
deleted (executions can no longer name it); deleting it again changes nothing."""

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.contexts import ContextResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.contexts import delete_context
from sandboxcp.services.deps import get_deps

app = make_resolver()
ROUTE = route_for("contexts_delete")


@app.delete(resolver_path(ROUTE.path))
def delete(session_id: str, context_id: str) -> ContextResponse:
    return ContextResponse.of(delete_context(get_deps(), caller(app), session_id, context_id))


handler = lambda_entry(app)
