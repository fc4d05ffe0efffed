"""GET /api/v1/sessions/{session_id}/processes/{process_id}/output: the process's stdout/stderr chunks
after `after`, in order, as GET /executions/{id}/output answers them; with `wait` (up to 20 s) it answers
as soon as one arrives. `complete` once the process ended and every chunk was read."""

from typing import Annotated

from sandboxcp.api.params import Query
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.processes import ProcessOutput
from sandboxcp.domain.output import MAX_SEQ
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.output import MAX_WAIT_S
from sandboxcp.services.processes import read_process_output

app = make_resolver()
ROUTE = route_for("processes_output")


@app.get(resolver_path(ROUTE.path))
def output(
    session_id: str,
    process_id: str,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="Chunks with a greater seq")] = 0,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait for one")] = 0.0,
) -> ProcessOutput:
    page = read_process_output(get_deps(), caller(app), session_id, process_id, after=after, wait_s=wait)
    return ProcessOutput.of(process_id, page)


handler = lambda_entry(app)
