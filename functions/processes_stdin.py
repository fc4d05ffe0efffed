"""POST /api/v1/sessions/{session_id}/processes/{process_id}/stdin: write text to a running process's stdin
(`eof` closes it after); 409 once the process exited or its stdin is closed."""

from typing import Annotated

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.processes import StdinWritten
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.processes import write_stdin
from sandboxcp.services.requests.interactive import StdinRequest

app = make_resolver()
ROUTE = route_for("processes_stdin")


@app.post(resolver_path(ROUTE.path))
def stdin(session_id: str, process_id: str, body: Annotated[StdinRequest, Body()]) -> StdinWritten:
    written = write_stdin(get_deps(), caller(app), session_id, process_id, body.data, body.eof)
    return StdinWritten(process_id=process_id, written=written)


handler = lambda_entry(app)
