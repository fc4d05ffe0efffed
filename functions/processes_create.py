"""POST /api/v1/sessions/{session_id}/processes: start a background process (a shell command line) in the
running session's sandbox (201). It runs until it exits, is signalled or the session ends; its output is
read with GET .../processes/{process_id}/output. At most 16 running per session (429 with Retry-After)."""

from typing import Annotated

from sandboxcp.api.params import Body, Response
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.processes import ProcessResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.processes import start_process
from sandboxcp.services.requests.interactive import CreateProcessRequest

app = make_resolver()
ROUTE = route_for("processes_create")


@app.post(resolver_path(ROUTE.path))
def create(session_id: str, body: Annotated[CreateProcessRequest, Body()]) -> Response[ProcessResponse]:
    process = start_process(get_deps(), caller(app), session_id, body)
    return Response(201, "application/json", ProcessResponse.of(process))


handler = lambda_entry(app)
