"""GET /api/v1/sessions/{session_id}/processes/{process_id}: a background process: status, pid, exit code
or signal (refreshed from the sandbox while the session runs)."""

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.processes import ProcessResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.processes import get_process

app = make_resolver()
ROUTE = route_for("processes_get")


@app.get(resolver_path(ROUTE.path))
def get(session_id: str, process_id: str) -> ProcessResponse:
    return ProcessResponse.of(get_process(get_deps(), caller(app), session_id, process_id))


handler = lambda_entry(app)
