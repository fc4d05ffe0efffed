"""POST /internal/sessions/{session_id}/container_ready: the executor is up; the session becomes running
and the launch workflow's task token is released."""

from typing import Annotated

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import callback_session, lambda_entry, make_resolver
from sandboxcp.api.schemas.common import MessageResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.callbacks import container_ready
from sandboxcp.services.deps import get_deps
from sandboxcp.services.requests.reports import ContainerReadyReport

app = make_resolver()
ROUTE = route_for("internal_container_ready")


@app.post(resolver_path(ROUTE.path))
def ready(session_id: str, body: Annotated[ContainerReadyReport, Body()]) -> MessageResponse:
    return MessageResponse(message=container_ready(get_deps(), callback_session(app), session_id, body))


handler = lambda_entry(app)
