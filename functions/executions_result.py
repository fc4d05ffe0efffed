"""GET /api/v1/executions/{execution_id}/result: stdout, stderr, exit code, return value, metrics."""

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.executions import ExecutionResultResponse
from sandboxcp.domain.errors import StateConflict
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.executions import get_execution

app = make_resolver()
ROUTE = route_for("executions_result")


@app.get(resolver_path(ROUTE.path))
def result(execution_id: str) -> ExecutionResultResponse:
    execution = get_execution(get_deps(), caller(app), execution_id)
    if execution.outcome is None:
        raise StateConflict(
            f"Execution '{execution_id}' is {execution.status}; it has no result yet",
            solution="Poll GET /api/v1/executions/{id}/status until it is completed, failed or timeout",
        )
    return ExecutionResultResponse.of(execution)


handler = lambda_entry(app)
