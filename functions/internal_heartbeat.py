"""POST /internal/executions/{execution_id}/heartbeat: the executor is still running this execution."""

from typing import Annotated

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import callback_session, lambda_entry, make_resolver
from sandboxcp.api.schemas.common import MessageResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.callbacks import heartbeat
from sandboxcp.services.deps import get_deps
from sandboxcp.services.requests.reports import HeartbeatReport

app = make_resolver()
ROUTE = route_for("internal_heartbeat")


@app.post(resolver_path(ROUTE.path))
def beat(execution_id: str, body: Annotated[HeartbeatReport, Body()]) -> MessageResponse:
    heartbeat(get_deps(), callback_session(app), execution_id)
    return MessageResponse(message="Heartbeat recorded")


handler = lambda_entry(app)
