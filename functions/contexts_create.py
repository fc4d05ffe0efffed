"""POST /api/v1/sessions/{session_id}/contexts: a code context, a persistent python or javascript
interpreter in the running session's sandbox (201). Executions that name it run in it as notebook cells.
At most 8 per session (429 with Retry-After)."""

from typing import Annotated

from sandboxcp.api.params import Body, Response
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.contexts import ContextResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.contexts import create_context
from sandboxcp.services.deps import get_deps
from sandboxcp.services.requests.interactive import CreateContextRequest

app = make_resolver()
ROUTE = route_for("contexts_create")


@app.post(resolver_path(ROUTE.path))
def create(session_id: str, body: Annotated[CreateContextRequest, Body()]) -> Response[ContextResponse]:
    context = create_context(get_deps(), caller(app), session_id, body)
    return Response(201, "application/json", ContextResponse.of(context))


handler = lambda_entry(app)
