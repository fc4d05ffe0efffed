"""GET /api/v1/executions/{execution_id}/output: the execution's stdout/stderr chunks after `after`, in
order; with `wait` (up to 20 s) it answers as soon as one arrives. `stream=sse` answers text/event-stream
(one event per chunk, `id` = seq; `event: complete` at the end; EventSource's Last-Event-ID resumes), which
the local stack holds open and a deployed stack answers per long poll (docs/streaming.md)."""

import json
from typing import Annotated, Literal

from sandboxcp.api.params import Query, Response
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.output import ExecutionOutput
from sandboxcp.domain.errors import InvalidParameter
from sandboxcp.domain.output import MAX_SEQ
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.output import MAX_WAIT_S, read_execution_output

app = make_resolver()
ROUTE = route_for("executions_output")
SSE_RETRY_MS = 100  # EventSource reconnects this soon after a deployed stack's answer ends


@app.get(resolver_path(ROUTE.path))
def output(
    execution_id: str,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="Chunks with a greater seq")] = 0,
    wait: Annotated[
        float | None, Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait for one (default 0; SSE 20)")
    ] = None,
    stream: Annotated[Literal["sse"] | None, Query(description="`sse`: answer text/event-stream")] = None,
) -> Response[ExecutionOutput | str]:  # str: the SSE body
    if stream == "sse":
        after = _last_event_id(after)
    wait_s = wait if wait is not None else (MAX_WAIT_S if stream == "sse" else 0.0)
    page = ExecutionOutput.of(
        execution_id, read_execution_output(get_deps(), caller(app), execution_id, after=after, wait_s=wait_s)
    )
    if stream != "sse":
        return Response(200, "application/json", page)
    return Response(200, "text/event-stream", sse_events(page), headers={"Cache-Control": "no-cache"})


def _last_event_id(after: int) -> int:
    """EventSource sends the last `id` it saw when it reconnects: it wins over `after`."""
    raw = app.current_event.headers.get("Last-Event-ID")
    if raw is None or not raw.strip():
        return after
    if not raw.strip().isdigit() or int(raw) > MAX_SEQ:
        raise InvalidParameter(f"'Last-Event-ID' is not a seq: '{raw[:32]}'")
    return int(raw)


def sse_events(page: ExecutionOutput) -> str:
    """One `message` event per chunk (`id: seq`, data: the chunk as JSON), then `event: complete` when the
    execution ended and everything was read."""
    parts = [f"retry: {SSE_RETRY_MS}\n\n"]
    for chunk in page.chunks:
        parts.append(f"id: {chunk.seq}\ndata: {chunk.model_dump_json()}\n\n")
    if page.complete:
        done = {"execution_id": page.execution_id, "next_after": page.next_after}
        parts.append(f"id: {page.next_after}\nevent: complete\ndata: {json.dumps(done)}\n\n")
    return "".join(parts)


handler = lambda_entry(app)
