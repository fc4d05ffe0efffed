"""POST /api/v1/sessions/{session_id}/processes/{process_id}/signal: send a signal (SIGTERM, SIGKILL,
SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2) to a running process; 409 once it exited. The answer is the
process as known right after; its exit shows once the sandbox reports it."""

from typing import Annotated

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.processes import ProcessResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.processes import signal_process
from sandboxcp.services.requests.interactive import SignalRequest

app = make_resolver()
ROUTE = route_for("processes_signal")


@app.post(resolver_path(ROUTE.path))
def signal(session_id: str, process_id: str, body: Annotated[SignalRequest, Body()]) -> ProcessResponse:
    process = signal_process(get_deps(), caller(app), session_id, process_id, body.signal)
    return ProcessResponse.of(process)


handler = lambda_entry(app)
