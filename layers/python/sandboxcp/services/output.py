"""Live output (docs/streaming.md): the executor posts stdout/stderr chunks while code runs; clients read
them in order, by sequence number, with a long poll, Server-Sent Events or the WebSocket push channel.

Generic over the stream: `append` and `read` take a stream id (an execution id today; a background
process id next), and the stream-specific rules (who may write, who may read, when a stream is complete)
live in the `*_execution_output` functions below."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, StrictInt, model_validator

from sandbox_executor.contract import utf8_size
from sandboxcp.domain import clock
from sandboxcp.domain.errors import ExecutionNotFound, StateConflict
from sandboxcp.domain.inputs import JsonBody
from sandboxcp.domain.models import Principal
from sandboxcp.domain.output import (
    MAX_BATCH_BYTES,
    MAX_CHUNK_BYTES,
    MAX_CHUNKS_PER_BATCH,
    MAX_PAGE_BYTES,
    MAX_PAGE_CHUNKS,
    MAX_SEQ,
    OutputChunk,
    OutputPage,
    plan_append,
)
from sandboxcp.domain.states import TERMINAL_EXECUTION_STATUSES
from sandboxcp.observability import logger
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.doorbell import doorbell

MAX_WAIT_S = 20.0  # the long poll; the route's timeout (29 s) covers it
POLL_S = 0.1  # how often a waiting read looks again: a chunk is seen within ~100 ms of being stored
RESERVE_ATTEMPTS = 8


# --- the callback's body ----------------------------------------------------------------------------------


class OutputChunkReport(JsonBody):
    seq: StrictInt = Field(ge=1, le=MAX_SEQ)
    stream: Literal["stdout", "stderr"]
    data: str = Field(description=f"At most {MAX_CHUNK_BYTES} bytes of UTF-8")
    at: datetime = Field(description="When the executor read it (ISO 8601)")

    @model_validator(mode="after")
    def _size(self) -> OutputChunkReport:
        size = utf8_size(self.data)
        if size > MAX_CHUNK_BYTES:
            raise ValueError(f"chunk {self.seq} is {size:,} bytes; the limit is {MAX_CHUNK_BYTES:,} bytes")
        return self


class OutputBatch(JsonBody):
    chunks: list[OutputChunkReport] = Field(
        min_length=1,
        max_length=MAX_CHUNKS_PER_BATCH,
        description=f"Consecutive seqs, ascending; at most {MAX_BATCH_BYTES} bytes of data in all",
    )

    @model_validator(mode="after")
    def _batch(self) -> OutputBatch:
        size = sum(utf8_size(c.data) for c in self.chunks)
        if size > MAX_BATCH_BYTES:
            raise ValueError(
                f"the batch holds {size:,} bytes of data; the limit is {MAX_BATCH_BYTES:,} bytes"
            )
        for before, chunk in zip(self.chunks, self.chunks[1:], strict=False):
            if chunk.seq != before.seq + 1:
                raise ValueError(
                    f"seqs must be consecutive and ascending within a batch: {chunk.seq} follows {before.seq}"
                )
        return self

    def to_chunks(self) -> list[OutputChunk]:
        return [OutputChunk(seq=c.seq, stream=c.stream, data=c.data, at=c.at) for c in self.chunks]


# --- generic: any stream ----------------------------------------------------------------------------------


def append(deps: Dependencies, stream_id: str, chunks: Iterable[OutputChunk]) -> list[OutputChunk]:
    """Store the chunks not stored yet (a conditional put per seq: a re-sent batch stores nothing twice),
    within each stream's 1 MiB (domain.output.plan_append). Returns what this call stored."""
    ordered = sorted(chunks, key=lambda c: c.seq)
    if not ordered:
        return []
    repo = deps.output
    existing = repo.existing_seqs(stream_id, ordered[0].seq, ordered[-1].seq)
    new = [c for c in ordered if c.seq not in existing]
    if not new:
        return []
    expires_at = clock.now() + timedelta(seconds=deps.settings.output_ttl_s)
    for _ in range(RESERVE_ATTEMPTS):  # compare-and-set on the stream's accounting
        usage = repo.usage(stream_id)
        planned, after = plan_append(new, usage)
        if not planned:
            return []  # every new chunk is past its stream's truncation marker
        if repo.reserve(stream_id, after, expected_version=usage.version, expires_at=expires_at):
            break
    else:
        raise StateConflict(
            f"Output of '{stream_id}' is being written concurrently", solution="Send the batch again"
        )
    stored = []
    for chunk, ok in zip(planned, repo.put_new(stream_id, planned, expires_at=expires_at), strict=True):
        if ok:
            stored.append(chunk)
        else:  # a concurrent copy of this batch stored it first, and counted it
            repo.release(stream_id, chunk.stream, utf8_size(chunk.data))
    if stored:
        doorbell.ring(stream_id)
    return stored


def read(
    deps: Dependencies,
    stream_id: str,
    *,
    after: int,
    wait_s: float,
    is_complete: Callable[[], bool],
    monotonic: Callable[[], float] = time.monotonic,
) -> OutputPage:
    """Chunks with seq > `after` (a page: MAX_PAGE_CHUNKS, MAX_PAGE_BYTES). With none yet and the stream not
    complete, look again every POLL_S until `wait_s` has passed (long poll).

    `complete`: `is_complete()` held *before* the read and nothing remains after the page, so a client that
    sees it has every chunk stored before the stream ended (writers store output before ending it)."""
    deadline = monotonic() + max(0.0, min(wait_s, MAX_WAIT_S))
    while True:
        seen = doorbell.rings(stream_id)
        ended = is_complete()
        chunks, more = _page(deps, stream_id, after)
        now = monotonic()
        if chunks or ended or now >= deadline:
            next_after = chunks[-1].seq if chunks else after
            return OutputPage(chunks=chunks, next_after=next_after, complete=ended and not more)
        # A pause of POLL_S, cut short by a writer in this process (the local stack runs them all in one).
        doorbell.wait(stream_id, seen, min(POLL_S, deadline - now))


def _page(deps: Dependencies, stream_id: str, after: int) -> tuple[list[OutputChunk], bool]:
    """(chunks, more remain)."""
    chunks: list[OutputChunk] = []
    size = 0
    for chunk in deps.output.after(stream_id, after, limit=MAX_PAGE_CHUNKS + 1):
        cost = len(json.dumps(chunk.data))  # as sent: ASCII JSON, escapes included
        if len(chunks) == MAX_PAGE_CHUNKS or (chunks and size + cost > MAX_PAGE_BYTES):
            return chunks, True
        chunks.append(chunk)
        size += cost
    return chunks, False


# --- executions -----------------------------------------------------------------------------------------


def record_execution_output(
    deps: Dependencies, caller_session: str, execution_id: str, batch: OutputBatch
) -> list[OutputChunk]:
    """The executor's batch for a running execution of the caller's own session. An ended execution's
    output is closed (409): the executor posts its last batch before the result."""
    from sandboxcp.services.callbacks import _own_execution

    execution = _own_execution(deps, caller_session, execution_id)
    if execution.status in TERMINAL_EXECUTION_STATUSES:
        raise StateConflict(
            f"Execution '{execution_id}' is {execution.status}; its output is closed",
            solution="Post output before the result; drop output of an ended execution",
        )
    stored = append(deps, execution_id, batch.to_chunks())
    if stored:
        _publish(deps, execution_id, stored)
    return stored


def read_execution_output(
    deps: Dependencies,
    caller: Principal,
    execution_id: str,
    *,
    after: int,
    wait_s: float,
) -> OutputPage:
    """A page of the caller's own execution's output (another tenant's: 404); complete once it ended and
    every chunk was read."""
    from sandboxcp.services.executions import get_execution

    execution = get_execution(deps, caller, execution_id, with_outcome=False)
    first = [execution.status in TERMINAL_EXECUTION_STATUSES]

    def ended() -> bool:
        if first:
            return first.pop()
        current = deps.executions.get(execution_id, with_outcome=False)
        if current is None:
            raise ExecutionNotFound(f"Execution '{execution_id}' does not exist")
        return current.status in TERMINAL_EXECUTION_STATUSES

    return read(deps, execution_id, after=after, wait_s=wait_s, is_complete=ended)


def subscribe_execution_output(
    deps: Dependencies, caller: Principal, connection_id: str, execution_id: str, *, after: int
) -> None:
    """A WebSocket connection subscribes to the caller's own execution (another tenant's: 404): registered
    first, then sent what was stored after `after` (a chunk stored meanwhile may come twice: clients keep
    the highest seq seen and skip what is not above it), then `complete` if it ended."""
    from sandboxcp.adapters.output_push import messages
    from sandboxcp.services.executions import get_execution

    execution = get_execution(deps, caller, execution_id, with_outcome=False)
    push = deps.output_push
    push.subscribe(execution_id, connection_id, execution.tenant_id)
    while True:
        page = read_execution_output(deps, caller, execution_id, after=after, wait_s=0)
        gone = not push.send(connection_id, messages(execution_id, page.chunks, complete=page.complete))
        if gone or page.complete:
            push.unsubscribe(connection_id, execution_id)
            return
        if not page.chunks:
            return
        after = page.next_after


def publish_complete(deps: Dependencies, execution_id: str) -> None:
    """Tell waiting readers and push subscribers the execution ended (they read what remains, then close)."""
    doorbell.ring(execution_id)
    _publish(deps, execution_id, [], complete=True)


def _publish(
    deps: Dependencies, stream_id: str, chunks: list[OutputChunk], *, complete: bool = False
) -> None:
    """Push is best effort: a subscriber that misses a chunk reads it with GET .../output?after=N."""
    try:
        deps.output_push.publish(stream_id, chunks, complete=complete)
    except Exception:
        logger.exception("live output push failed", extra={"stream_id": stream_id})
