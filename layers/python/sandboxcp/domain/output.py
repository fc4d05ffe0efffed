"""Live output: stdout/stderr chunks of a running execution (or background process), in order, bounded per
stream. Pure values and rules; storage is behind OutputRepository (domain.ports), the use cases in
sandboxcp.services.output. docs/streaming.md describes the protocol."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import Field

from sandbox_executor.contract import OUTPUT_LIMIT_BYTES, utf8_size
from sandboxcp.domain.base import DomainModel

OutputStream = Literal["stdout", "stderr"]
OUTPUT_STREAMS: tuple[OutputStream, ...] = ("stdout", "stderr")

# What one callback may carry (the executor batches every ~100 ms or 16 KiB, far below these).
MAX_CHUNKS_PER_BATCH = 256
MAX_CHUNK_BYTES = 64 * 1024
MAX_BATCH_BYTES = 256 * 1024
MAX_SEQ = 2**53 - 1  # DynamoDB numbers hold it exactly, and so does JSON in every client
# Stored per stream and execution, like the result's stdout/stderr (`*_truncated` there).
STREAM_LIMIT_BYTES = OUTPUT_LIMIT_BYTES
# One page of GET .../output: at most this many chunks, and this many bytes of chunk data as JSON text
# (control characters escape to 6 bytes each: counted as sent, so a page stays within Lambda's 6 MB).
MAX_PAGE_CHUNKS = 1000
MAX_PAGE_BYTES = 1 << 20


class OutputChunk(DomainModel):
    seq: int = Field(ge=1, le=MAX_SEQ)
    stream: OutputStream
    data: str
    at: datetime
    # True on the one chunk per stream where the stream reached its 1 MiB: it holds what still fitted
    # (possibly nothing), and nothing more of that stream is stored.
    truncated: bool = False


class OutputUsage(DomainModel):
    """A stream's accounting: bytes stored per stdout/stderr, the seq of each truncation marker, and the
    version the next compare-and-set expects (0: nothing stored yet)."""

    version: int = 0
    bytes: dict[OutputStream, int] = Field(default_factory=lambda: dict.fromkeys(OUTPUT_STREAMS, 0))
    markers: dict[OutputStream, int] = Field(default_factory=dict)


class OutputPage(DomainModel):
    chunks: list[OutputChunk]
    next_after: int
    complete: bool


def cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` that is at most `max_bytes` of UTF-8 (never half a character)."""
    if max_bytes <= 0:
        return ""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", "ignore")


def plan_append(
    chunks: Iterable[OutputChunk], usage: OutputUsage, limit: int = STREAM_LIMIT_BYTES
) -> tuple[list[OutputChunk], OutputUsage]:
    """What to store of `chunks` (new ones, in seq order) given `usage`, and the usage after it: a chunk that
    fits is stored whole; the first that does not becomes its stream's truncation marker (the part that
    fits, `truncated`); later chunks of a truncated stream are dropped."""
    after = usage.model_copy(deep=True)
    after.version = usage.version + 1
    stored: list[OutputChunk] = []
    for chunk in chunks:
        if chunk.stream in after.markers:
            continue
        room = limit - after.bytes[chunk.stream]
        size = utf8_size(chunk.data)
        if size <= room:
            stored.append(chunk)
            after.bytes[chunk.stream] += size
            continue
        kept = cut_utf8(chunk.data, room)
        stored.append(chunk.model_copy(update={"data": kept, "truncated": True}))
        after.bytes[chunk.stream] += utf8_size(kept)
        after.markers[chunk.stream] = chunk.seq
    return stored, after
