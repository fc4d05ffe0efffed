"""Code context bodies (issue #12; docs/api.md "Contexts and background processes")."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from sandboxcp.api.base import ResponseModel
from sandboxcp.api.schemas.common import TimedResponse
from sandboxcp.domain.models import CodeContext


class ContextResponse(TimedResponse):
    context_id: str
    session_id: str
    language: str = Field(description="python or javascript")
    cwd: str | None = Field(default=None, description="Its working directory (null: /workspace)")
    status: str = Field(
        description="creating, ready, busy (running a cell), dead (its interpreter died: restart it), "
        "deleted, or ended (with its session)"
    )
    executions: int = Field(description="Cells run in it, as the executor last reported")
    restarts: int
    error_message: str | None = None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None

    @classmethod
    def of(cls, c: CodeContext) -> ContextResponse:
        return cls(**c.model_dump(include=set(cls.model_fields)))


class ContextList(ResponseModel):
    contexts: list[ContextResponse]
    total: int
