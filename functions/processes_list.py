"""GET /api/v1/sessions/{session_id}/processes: the session's background processes, newest first (running
ones checked with the sandbox while the session runs)."""

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.processes import ProcessList, ProcessResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.processes import list_processes

app = make_resolver()
ROUTE = route_for("processes_list")


@app.get(resolver_path(ROUTE.path))
def list_(session_id: str) -> ProcessList:
    processes = list_processes(get_deps(), caller(app), session_id)
    return ProcessList(processes=[ProcessResponse.of(p) for p in processes], total=len(processes))


handler = lambda_entry(app)
