"""POST /internal/sessions/{session_id}/container_exited: the sandbox stopped on its own; fail and release
the session unless it already ended."""

from typing import Annotated

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import callback_session, lambda_entry, make_resolver
from sandboxcp.api.schemas.common import MessageResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.callbacks import container_exited
from sandboxcp.services.deps import get_deps
from sandboxcp.services.requests.reports import ContainerExitedReport

app = make_resolver()
ROUTE = route_for("internal_container_exited")


@app.post(resolver_path(ROUTE.path))
def exited(session_id: str, body: Annotated[ContainerExitedReport, Body()]) -> MessageResponse:
    return MessageResponse(message=container_exited(get_deps(), callback_session(app), session_id, body))


handler = lambda_entry(app)
