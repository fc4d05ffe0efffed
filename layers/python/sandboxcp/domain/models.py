"""Domain entities. Plain pydantic models: repositories map them to and from storage."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from sandbox_executor.contract import json_value_problem
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.states import ExecutionStatus, SessionStatus
from sandboxcp.domain.workspace import Artifact

Language = Literal["python", "javascript", "shell"]  # sandbox_executor.contract.LANGUAGES


class Principal(BaseModel):
    """Who is calling: resolved by the authorizer from the bearer key."""

    tenant_id: str
    is_admin: bool = False


class Template(BaseModel):
    id: str
    name: str
    image: str
    base_image: str | None = None
    pre_installed_packages: list[str] = Field(default_factory=list)
    default_resources: ResourceLimit = Field(default_factory=ResourceLimit)
    security_context: dict[str, Any] = Field(default_factory=dict)
    languages: list[Language] = Field(default=["python", "shell"])
    deprecated: bool = False
    created_at: datetime
    updated_at: datetime

    @property
    def network_enabled(self) -> bool:
        return bool(self.security_context.get("network_enabled", False))


class Session(BaseModel):
    session_id: str
    tenant_id: str
    template_id: str
    status: SessionStatus
    runtime_type: str
    runtime_node: str | None = None
    container_id: str | None = None
    executor_url: str | None = None
    workspace_path: str
    resources: ResourceLimit
    env_vars: dict[str, str] = Field(default_factory=dict)
    timeout: int
    callback_token_hash: str | None = None
    task_token: str | None = None
    error_message: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    terminated_at: datetime | None = None
    last_activity_at: datetime


class ExecutionMetrics(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    duration_ms: float = Field(ge=0)
    cpu_time_ms: float | None = Field(default=None, ge=0)
    peak_memory_mb: float | None = Field(default=None, ge=0)
    io_read_bytes: int | None = Field(default=None, ge=0)
    io_write_bytes: int | None = Field(default=None, ge=0)


class ExecutionOutcome(BaseModel):
    """What the executor reports at the end of a run (internal-api ExecutionResultReport)."""

    model_config = ConfigDict(allow_inf_nan=False)

    status: Literal["success", "failed", "timeout", "crashed"]
    stdout: str = ""
    stderr: str = ""
    exit_code: StrictInt
    execution_time: float = Field(ge=0)
    return_value: Any = None
    metrics: ExecutionMetrics
    artifacts: list[Artifact] = Field(default_factory=list)
    stdout_truncated: bool = False

    @field_validator("artifacts", mode="before")
    @classmethod
    def _paths_are_artifacts(cls, value: Any) -> Any:
        """The reference contract reports bare paths; we report objects (path, size, mime_type, type)."""
        if isinstance(value, list):
            return [
                {"path": v, "size": 0, "mime_type": "application/octet-stream"} if isinstance(v, str) else v
                for v in value
            ]
        return value

    @field_validator("return_value")
    @classmethod
    def _finite_json(cls, value: Any) -> Any:
        if problem := json_value_problem(value, "return_value"):
            raise ValueError(problem)
        return value

    stderr_truncated: bool = False


OUTCOME_TO_STATUS: dict[str, ExecutionStatus] = {
    "success": ExecutionStatus.COMPLETED,
    "failed": ExecutionStatus.FAILED,
    "timeout": ExecutionStatus.TIMEOUT,
    "crashed": ExecutionStatus.CRASHED,
}


class Execution(BaseModel):
    execution_id: str
    session_id: str
    tenant_id: str
    status: ExecutionStatus
    code: str
    language: Language
    timeout: int
    event: dict[str, Any] = Field(default_factory=dict)
    outcome: ExecutionOutcome | None = None
    error_message: str | None = None
    retry_count: int = 0
    parent_execution_id: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    last_heartbeat_at: datetime | None = None


class ApiKey(BaseModel):
    key_hash: str
    tenant_id: str
    is_admin: bool = False
    created_at: datetime


class WarmSandbox(BaseModel):
    """A sandbox started ahead of demand for a template, bound to a session when one claims it."""

    pool_id: str
    template_id: str
    status: Literal["available", "claimed"] = "available"
    container_id: str
    executor_url: str | None = None
    node: str
    session_id: str | None = None
    created_at: datetime
