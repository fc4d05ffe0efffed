"""POST /internal/executions/{execution_id}/status: the executor started (or lost) an execution."""

from typing import Annotated

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import callback_session, lambda_entry, make_resolver
from sandboxcp.api.schemas.common import MessageResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.callbacks import execution_status
from sandboxcp.services.deps import get_deps
from sandboxcp.services.requests.reports import ExecutionStatusReport

app = make_resolver()
ROUTE = route_for("internal_execution_status")


@app.post(resolver_path(ROUTE.path))
def status(execution_id: str, body: Annotated[ExecutionStatusReport, Body()]) -> MessageResponse:
    execution = execution_status(get_deps(), callback_session(app), execution_id, body)
    return MessageResponse(message=f"Execution {execution.status}")


handler = lambda_entry(app)
