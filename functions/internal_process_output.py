"""POST /internal/processes/{process_id}/output: a batch of a background process's stdout/stderr chunks
(as for executions: consecutive seqs, idempotent per seq, 1 MiB per stream) and, on the last post only,
its exit (exit code or signal, ended_at), which is recorded on the process. The process must belong to the
callback token's session."""

from typing import Annotated

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import callback_session, lambda_entry, make_resolver
from sandboxcp.api.schemas.processes import ProcessOutputStored
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.processes import ProcessOutputReport, record_process_output

app = make_resolver()
ROUTE = route_for("internal_process_output")


@app.post(resolver_path(ROUTE.path))
def post_output(process_id: str, body: Annotated[ProcessOutputReport, Body()]) -> ProcessOutputStored:
    stored, process = record_process_output(get_deps(), callback_session(app), process_id, body)
    return ProcessOutputStored(stored=stored, status=process.status)


handler = lambda_entry(app)
