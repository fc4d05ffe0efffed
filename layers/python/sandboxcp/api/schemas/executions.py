"""Execution bodies: submit, status, result, detail and lists, and the executor's result callback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from sandboxcp.api.base import ResponseModel
from sandboxcp.api.schemas.common import NEXT_TOKEN_DOC, TimedResponse
from sandboxcp.domain.models import Execution, ExecutionMetrics, OutputBundle
from sandboxcp.domain.workspace import Artifact


class ExecuteResponse(TimedResponse):
    execution_id: str
    status: str = "pending"
    submitted_at: datetime
    context_id: str | None = Field(default=None, description="The code context it runs in, if any")


class ExecutionSummary(TimedResponse):
    id: str
    status: str
    language: str
    created_at: datetime
    completed_at: datetime | None = None
    retry_count: int = 0
    parent_execution_id: str | None = None
    context_id: str | None = Field(default=None, description="The code context it runs in, if any")

    @classmethod
    def of(cls, e: Execution) -> ExecutionSummary:
        return cls(id=e.execution_id, **e.model_dump(include=set(cls.model_fields) - {"id"}))


class ExecutionList(ResponseModel):
    executions: list[ExecutionSummary]
    total: int
    next_token: str | None = Field(default=None, description=NEXT_TOKEN_DOC)


class ExecutionStatusResponse(TimedResponse):
    execution_id: str
    session_id: str
    status: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @classmethod
    def of(cls, e: Execution) -> ExecutionStatusResponse:
        return cls(**e.model_dump(include=set(cls.model_fields)))


class ExecutionResultResponse(ResponseModel):
    execution_id: str
    status: str = Field(description="success, failed, timeout or crashed")
    stdout: str
    stderr: str
    exit_code: int
    execution_time: float
    return_value: Any = None
    metrics: ExecutionMetrics
    artifacts: list[Artifact]
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    outputs: list[OutputBundle] = Field(
        default_factory=list,
        description="A context cell's outputs: the last expression's value (`result`) and what it displayed "
        "(`display`), as MIME bundles (text/plain, text/html, image/png as base64, image/svg+xml, "
        "application/json)",
    )
    outputs_truncated: bool = Field(default=False, description="Some outputs were dropped (docs/api.md)")
    error_code: str | None = Field(default=None, description="Sandbox.ExecTimeout or Sandbox.ExecException")

    @classmethod
    def of(cls, e: Execution) -> ExecutionResultResponse:
        assert e.outcome is not None
        return cls(
            execution_id=e.execution_id,
            error_code=_OUTCOME_ERRORS.get(e.outcome.status),
            **e.outcome.model_dump(),
        )


_OUTCOME_ERRORS = {
    "timeout": "Sandbox.ExecTimeout",
    "failed": "Sandbox.ExecException",
    "crashed": "Sandbox.ExecException",
}


class ExecutionDetail(ExecutionSummary):
    session_id: str
    code: str
    timeout: int
    event: dict[str, Any]
    result: ExecutionResultResponse | None = None

    @classmethod
    def of(cls, e: Execution) -> ExecutionDetail:
        return cls(
            id=e.execution_id,
            result=ExecutionResultResponse.of(e) if e.outcome else None,
            **e.model_dump(include=set(cls.model_fields) - {"id", "result"}),
        )


class ResultRecorded(ResponseModel):
    message: str
    execution_id: str
    status: str
