"""GET /api/v1/sessions/{session_id}/contexts: the session's code contexts, newest first, each with the
status last seen (GET of one context asks the sandbox)."""

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.contexts import ContextList, ContextResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.contexts import list_contexts
from sandboxcp.services.deps import get_deps

app = make_resolver()
ROUTE = route_for("contexts_list")


@app.get(resolver_path(ROUTE.path))
def list_(session_id: str) -> ContextList:
    contexts = list_contexts(get_deps(), caller(app), session_id)
    return ContextList(contexts=[ContextResponse.of(c) for c in contexts], total=len(contexts))


handler = lambda_entry(app)
