"""GET /api/v1/executions/{execution_id}/status: where the execution is in its lifecycle."""

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.executions import ExecutionStatusResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.executions import get_execution

app = make_resolver()
ROUTE = route_for("executions_status")


@app.get(resolver_path(ROUTE.path))
def status(execution_id: str) -> ExecutionStatusResponse:
    return ExecutionStatusResponse.of(
        get_execution(get_deps(), caller(app), execution_id, with_outcome=False)
    )


handler = lambda_entry(app)
