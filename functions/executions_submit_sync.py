"""POST /api/v1/sessions/{session_id}/execute-sync: submit and wait for the result up to 25 s; past that,
202 with the execution id to poll."""

from typing import Annotated

from sandboxcp.api.params import Body, Response
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.executions import ExecuteResponse, ExecutionResultResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.executions import execute_and_wait
from sandboxcp.services.requests.executions import ExecuteRequest

app = make_resolver()
ROUTE = route_for("executions_submit_sync")


@app.post(resolver_path(ROUTE.path))
def submit_and_wait(
    session_id: str, body: Annotated[ExecuteRequest, Body()]
) -> Response[ExecutionResultResponse | ExecuteResponse]:
    execution = execute_and_wait(get_deps(), caller(app), session_id, body)
    if execution.outcome is not None:
        return Response(200, "application/json", ExecutionResultResponse.of(execution))
    pending = ExecuteResponse(
        execution_id=execution.execution_id,
        status=execution.status,
        submitted_at=execution.created_at,
        context_id=execution.context_id,
    )
    return Response(202, "application/json", pending)


handler = lambda_entry(app)
