"""Background process bodies (issue #12; docs/api.md "Contexts and background processes")."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from sandboxcp.api.base import ResponseModel
from sandboxcp.api.schemas.common import TimedResponse
from sandboxcp.api.schemas.output import OutputChunkResponse, page_fields
from sandboxcp.domain.models import BackgroundProcess
from sandboxcp.domain.output import OutputPage


class ProcessResponse(TimedResponse):
    process_id: str
    session_id: str
    cmd: str
    cwd: str | None = None
    status: str = Field(
        description="starting, running, exited, failed (the sandbox refused to start it) or ended (with its "
        "session)"
    )
    pid: int | None = None
    exit_code: int | None = Field(default=None, description="Once exited normally")
    signal: int | None = Field(default=None, description="The signal number that ended it, if one did")
    error_message: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @classmethod
    def of(cls, p: BackgroundProcess) -> ProcessResponse:
        return cls(**p.model_dump(include=set(cls.model_fields)))


class ProcessList(ResponseModel):
    processes: list[ProcessResponse]
    total: int


class StdinWritten(ResponseModel):
    process_id: str
    written: int = Field(description="Bytes the sandbox wrote to the process's stdin")


class ProcessOutput(ResponseModel):
    """The same page as GET /executions/{id}/output, for a process."""

    process_id: str
    chunks: list[OutputChunkResponse]
    next_after: int = Field(description="Pass as `after` to read on")
    complete: bool = Field(description="The process ended and every chunk has been read")

    @classmethod
    def of(cls, process_id: str, page: OutputPage) -> ProcessOutput:
        return cls(process_id=process_id, **page_fields(page))


class ProcessOutputStored(ResponseModel):
    stored: int = Field(description="Chunks stored by this call (0 for a batch sent before)")
    status: str = Field(description="The process's status after this post")
