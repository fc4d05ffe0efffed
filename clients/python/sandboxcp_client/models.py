"""The API's bodies as pydantic models. Unknown fields are kept (`extra="allow"`), so a newer server does
not break an older SDK."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ApiKey",
    "Artifact",
    "ContainerInfo",
    "ExecutionDetail",
    "ExecutionList",
    "ExecutionMetrics",
    "ExecutionResult",
    "ExecutionStatus",
    "ExecutionSummary",
    "ImageOutput",
    "Language",
    "PresignedUpload",
    "ResourceLimit",
    "SessionInfo",
    "SessionList",
    "SubmittedExecution",
    "Template",
    "TemplateList",
    "UploadedFile",
    "WorkspaceFile",
]

Language = Literal["python", "javascript", "shell"]
SESSION_ACTIVE = frozenset({"creating", "running"})
EXECUTION_TERMINAL = frozenset({"completed", "failed", "timeout", "crashed"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ResourceLimit(_Model):
    cpu: str = "1"
    memory: str = "512Mi"
    disk: str = "1Gi"
    max_processes: int | None = None


class SessionInfo(_Model):
    """A session (`SessionResponse`)."""

    session_id: str
    template_id: str | None = None
    status: str
    runtime_type: str | None = None
    runtime_node: str | None = None
    container_id: str | None = None
    pod_name: str | None = None
    workspace_path: str | None = None
    resources: ResourceLimit | None = None
    env_vars: dict[str, str] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    timeout: int | None = None
    error_message: str | None = None

    @property
    def active(self) -> bool:
        """Creating or running."""
        return self.status in SESSION_ACTIVE


class SessionList(_Model):
    sessions: list[SessionInfo]
    total: int


class SubmittedExecution(_Model):
    """The answer to a submit (`ExecuteResponse`): poll it, or wait for it."""

    execution_id: str
    status: str = "pending"
    submitted_at: datetime | None = None


class ExecutionMetrics(_Model):
    duration_ms: float = 0.0
    cpu_time_ms: float | None = None
    peak_memory_mb: float | None = None


class Artifact(_Model):
    """A file the run created or changed in the workspace."""

    path: str
    size: int = 0
    mime_type: str = "application/octet-stream"
    type: str = "artifact"


class ImageOutput(_Model):
    """An image a Python snippet produced (an open matplotlib figure, or a value with `_repr_png_`)."""

    mime_type: str = "image/png"
    data_base64: str

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.data_base64)


class ExecutionResult(_Model):
    """An execution's outcome (`ExecutionResult`).

    `status` is success, failed, timeout or crashed. `return_value` is the handler's return value, or for a
    plain Python snippet the value of its last expression when that is JSON-serializable; `text` is that
    value's `repr()` (snippets only); `images` are the figures a snippet left open."""

    execution_id: str
    status: str
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    execution_time: float = 0.0
    return_value: Any = None
    metrics: ExecutionMetrics = Field(default_factory=ExecutionMetrics)
    artifacts: list[Artifact] = Field(default_factory=list)
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    error_code: str | None = None
    text: str | None = None
    images: list[ImageOutput] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @property
    def result(self) -> Any:
        """The handler's return value or the snippet's last expression (its repr when not JSON)."""
        return self.return_value if self.return_value is not None else self.text

    def raise_for_error(self) -> ExecutionResult:
        """Raise :class:`~sandboxcp_client.errors.ExecutionFailedError` unless the run succeeded."""
        from sandboxcp_client.errors import ExecutionFailedError

        if not self.ok:
            raise ExecutionFailedError(self)
        return self


class ExecutionStatus(_Model):
    execution_id: str
    session_id: str | None = None
    status: str
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.status in EXECUTION_TERMINAL


class ExecutionSummary(_Model):
    id: str
    status: str
    language: str | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    retry_count: int = 0
    parent_execution_id: str | None = None


class ExecutionDetail(ExecutionSummary):
    session_id: str | None = None
    code: str | None = None
    timeout: int | None = None
    event: dict[str, Any] = Field(default_factory=dict)
    result: ExecutionResult | None = None


class ExecutionList(_Model):
    executions: list[ExecutionSummary]
    total: int


class WorkspaceFile(_Model):
    path: str
    size: int
    etag: str = ""
    last_modified: str | None = None


class UploadedFile(_Model):
    path: str
    size: int


class PresignedUpload(_Model):
    """A presigned S3 POST for one file: POST `fields` then the file (multipart, `file` last) to `url`."""

    path: str
    url: str
    fields: dict[str, str]
    key_prefix: str = ""
    max_bytes: int


class Template(_Model):
    id: str
    name: str
    image: str
    base_image: str | None = None
    pre_installed_packages: list[str] = Field(default_factory=list)
    default_resources: ResourceLimit | None = None
    security_context: dict[str, Any] = Field(default_factory=dict)
    languages: list[str] = Field(default_factory=list)
    deprecated: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


class TemplateList(_Model):
    templates: list[Template]
    total: int


class ContainerInfo(_Model):
    container_id: str
    pod_name: str | None = None
    runtime_type: str | None = None
    status: str
    session_id: str | None = None
    tenant_id: str | None = None
    template_id: str | None = None
    node_name: str | None = None
    resources: ResourceLimit | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    uptime_seconds: int = 0


class ContainerList(_Model):
    containers: list[ContainerInfo]
    total: int


class ApiKey(_Model):
    """A new API key: `api_key` is shown once."""

    api_key: str
    tenant_id: str
    admin: bool = False
