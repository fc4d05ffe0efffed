"""GET /api/v1/executions/{execution_id}: the execution with its code and, once finished, its result."""

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.executions import ExecutionDetail
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.executions import get_execution

app = make_resolver()
ROUTE = route_for("executions_get")


@app.get(resolver_path(ROUTE.path))
def get(execution_id: str) -> ExecutionDetail:
    return ExecutionDetail.of(get_execution(get_deps(), caller(app), execution_id))


handler = lambda_entry(app)
