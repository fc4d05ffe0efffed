"""Response bodies, shaped as reference/control-plane-api.yaml says.

A field the contract types as a string (not nullable) is left out while it has no value (`runtime_node`,
`container_id` and `pod_name` before the sandbox runs, a template's `base_image`, a container's `node_name`)
rather than answered `null`. Fields this API adds (`error_message`, `started_at`, ...) are `null` then."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema, field_serializer

from sandboxcp.api.base import ResponseModel
from sandboxcp.domain import clock
from sandboxcp.domain.clock import iso
from sandboxcp.domain.inputs import RequestBody
from sandboxcp.domain.models import Execution, ExecutionMetrics, OutputBundle, Session, Template
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.states import ACTIVE_SESSION_STATUSES
from sandboxcp.domain.usage import ContainerUsage
from sandboxcp.domain.workspace import Artifact, WorkspaceFile


def _is_none(value: Any) -> bool:
    return value is None


# A contract string that is omitted, never null, while unknown (the schema says: optional string).
OptionalString = Annotated[str | None, Field(exclude_if=_is_none), WithJsonSchema({"type": "string"})]


class _Out(ResponseModel):
    @field_serializer("*", when_used="json")
    def _times(self, v: Any) -> Any:
        return iso(v) if isinstance(v, datetime) else v


class SessionResponse(_Out):
    session_id: str
    template_id: str
    status: str
    runtime_type: str
    runtime_node: OptionalString = None
    container_id: OptionalString = None
    pod_name: OptionalString = Field(default=None, description="The container id on eks (the pod's name)")
    workspace_path: str
    resources: ResourceLimit
    env_vars: dict[str, str]
    created_at: datetime
    updated_at: datetime
    timeout: int
    error_message: str | None = None

    @classmethod
    def of(cls, s: Session) -> SessionResponse:
        return cls(
            pod_name=s.container_id if s.runtime_type == "eks" else None,
            **s.model_dump(include=set(cls.model_fields) - {"pod_name"}),
        )


NEXT_TOKEN_DOC = (
    "Opaque cursor of the next page (null on the last): pass it as `next_token`, without `offset`, with the "
    "same filters"
)


class SessionList(ResponseModel):
    sessions: list[SessionResponse]
    total: int
    next_token: str | None = Field(default=None, description=NEXT_TOKEN_DOC)


class MessageResponse(ResponseModel):
    message: str


class ExecuteResponse(_Out):
    execution_id: str
    status: str = "pending"
    submitted_at: datetime
    context_id: str | None = Field(default=None, description="The code context it runs in, if any")


class ExecutionSummary(_Out):
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


class ExecutionStatusResponse(_Out):
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


class TemplateResponse(_Out):
    id: str
    name: str
    image: str
    base_image: OptionalString = None
    pre_installed_packages: list[str]
    default_resources: ResourceLimit
    security_context: dict[str, Any]
    languages: list[str]
    deprecated: bool = False
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, t: Template) -> TemplateResponse:
        return cls(**t.model_dump(include=set(cls.model_fields)))


class TemplateList(ResponseModel):
    templates: list[TemplateResponse]
    total: int
    next_token: str | None = Field(default=None, description=NEXT_TOKEN_DOC)


class ApiKeyResponse(ResponseModel):
    api_key: str = Field(description="Shown once; only its hash is stored")
    tenant_id: str
    admin: bool


class ResultRecorded(ResponseModel):
    message: str
    execution_id: str
    status: str


class UploadedFile(ResponseModel):
    path: str
    size: int


class UploadUrlRequest(RequestBody):
    path: str = Field(min_length=1, max_length=4096)
    size: int = Field(ge=0, description="Exact size in bytes; the upload policy refuses more")


class PresignedUpload(ResponseModel):
    path: str
    url: str
    fields: dict[str, str]
    key_prefix: str
    max_bytes: int


class FileList(ResponseModel):
    files: list[WorkspaceFile]
    total: int


# --- operations: containers (ops-api) --------------------------------------------------------------------
class ContainerInfo(_Out):
    """A session's sandbox (contract ContainerInfo). `runtime_type` is our runtime name; `node_name` is the
    runtime node; `pod_name` is set on eks, where the container id is the pod name."""

    container_id: str
    pod_name: OptionalString = None
    runtime_type: str
    status: str
    session_id: str
    tenant_id: str
    template_id: str
    node_name: OptionalString = None
    resources: ResourceLimit
    created_at: datetime
    started_at: datetime | None = None
    uptime_seconds: int
    usage: ContainerUsage | None = Field(
        default=None,
        exclude_if=_is_none,
        description="CPU, memory and /workspace use now (running containers, where measured; else absent)",
    )

    @classmethod
    def of(
        cls, s: Session, now: datetime | None = None, usage: ContainerUsage | None = None
    ) -> ContainerInfo:
        assert s.container_id is not None
        return cls(
            usage=usage,
            container_id=s.container_id,
            pod_name=s.container_id if s.runtime_type == "eks" else None,
            runtime_type=s.runtime_type,
            status=s.status.value,
            session_id=s.session_id,
            tenant_id=s.tenant_id,
            template_id=s.template_id,
            node_name=s.runtime_node,
            resources=s.resources,
            created_at=s.created_at,
            started_at=s.started_at,
            uptime_seconds=uptime_seconds(s, now),
        )


def uptime_seconds(s: Session, now: datetime | None = None) -> int:
    """From the sandbox's start to its end (terminated_at, or the last update of an ended session) or now."""
    if s.started_at is None:
        return 0
    if s.terminated_at is not None:
        end = s.terminated_at
    elif s.status in ACTIVE_SESSION_STATUSES:
        end = now or clock.now()
    else:
        end = s.updated_at
    return max(0, int((end - s.started_at).total_seconds()))


class ContainerList(ResponseModel):
    containers: list[ContainerInfo]
    total: int
