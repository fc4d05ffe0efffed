"""Response bodies of live output (docs/streaming.md): the public read and the executor's callback."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_serializer

from sandboxcp.api.base import ResponseModel
from sandboxcp.domain.clock import iso
from sandboxcp.domain.output import OutputChunk, OutputPage


class OutputChunkResponse(ResponseModel):
    seq: int = Field(description="1, 2, ... across stdout and stderr; gaps only after a truncation marker")
    stream: Literal["stdout", "stderr"]
    data: str
    at: datetime = Field(description="When the executor read it")
    truncated: bool = Field(
        default=False,
        description="This stream reached its 1 MiB here: the chunk holds what fitted, nothing more follows",
    )

    @field_serializer("at", when_used="json")
    def _at(self, v: datetime) -> str | None:
        return iso(v)

    @classmethod
    def of(cls, c: OutputChunk) -> OutputChunkResponse:
        return cls(**c.model_dump())


class ExecutionOutput(ResponseModel):
    execution_id: str
    chunks: list[OutputChunkResponse]
    next_after: int = Field(description="Pass as `after` to read on")
    complete: bool = Field(description="The execution ended and every chunk has been read")

    @classmethod
    def of(cls, execution_id: str, page: OutputPage) -> ExecutionOutput:
        return cls(execution_id=execution_id, **page_fields(page))


def page_fields(page: OutputPage) -> dict[str, Any]:
    """The fields every output page shares (an execution's, a process's)."""
    return {
        "chunks": [OutputChunkResponse.of(c) for c in page.chunks],
        "next_after": page.next_after,
        "complete": page.complete,
    }


class OutputStored(ResponseModel):
    stored: int = Field(description="Chunks stored by this call (0 for a batch sent before)")
