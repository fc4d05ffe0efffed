"""POST /api/v1/sessions/{session_id}/execute: record the execution (`pending`), hand it to the executor."""

from typing import Annotated

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.executions import ExecuteResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.executions import submit_execution
from sandboxcp.services.requests.executions import ExecuteRequest

app = make_resolver()
ROUTE = route_for("executions_submit")


@app.post(resolver_path(ROUTE.path))
def submit(session_id: str, body: Annotated[ExecuteRequest, Body()]) -> ExecuteResponse:
    execution = submit_execution(get_deps(), caller(app), session_id, body)
    return ExecuteResponse(
        execution_id=execution.execution_id,
        status=execution.status,
        submitted_at=execution.created_at,
        context_id=execution.context_id,
    )


handler = lambda_entry(app)
