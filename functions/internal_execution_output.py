"""POST /internal/executions/{execution_id}/output: a batch of the running execution's stdout/stderr chunks
(consecutive seqs). Idempotent per seq; at most 1 MiB per stream is stored, the rest dropped after one
truncation marker; 409 once the execution ended."""

from typing import Annotated

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import callback_session, lambda_entry, make_resolver
from sandboxcp.api.schemas.output import OutputStored
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.output import OutputBatch, record_execution_output

app = make_resolver()
ROUTE = route_for("internal_execution_output")


@app.post(resolver_path(ROUTE.path))
def post_output(execution_id: str, body: Annotated[OutputBatch, Body()]) -> OutputStored:
    stored = record_execution_output(get_deps(), callback_session(app), execution_id, body)
    return OutputStored(stored=len(stored))


handler = lambda_entry(app)
