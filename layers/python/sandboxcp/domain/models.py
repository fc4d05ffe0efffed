"""Domain entities. Plain pydantic models: repositories map them to and from storage."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, StrictInt, field_validator, model_validator

from sandbox_executor.contract import json_size, json_value_problem
from sandboxcp.domain.base import DomainModel
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.states import ExecutionStatus, SessionStatus
from sandboxcp.domain.workspace import Artifact

Language = Literal["python", "javascript", "shell"]  # sandbox_executor.contract.LANGUAGES


class Principal(DomainModel):
    """Who is calling: resolved by the authorizer from the bearer key."""

    tenant_id: str
    is_admin: bool = False


class Template(DomainModel):
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


class Session(DomainModel):
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
    # The workspace as the API wrote it (docs/workspace.md): `workspace_rev` counts the API's writes, so an
    # executor that synced that revision needs no listing; until `workspace_open_until` a presigned upload
    # may still land unseen, and every run gets the full listing.
    workspace_rev: int = 0
    workspace_open_until: datetime | None = None
    # What the session's executor announced it can do (contract.EXECUTOR_FEATURES), known ones only.
    executor_features: list[str] = Field(default_factory=list)

    @property
    def executor_key(self) -> str:
        """What the control plane presents to the session's executor: the SHA-256 of its callback token."""
        return self.callback_token_hash or ""


class ExecutionMetrics(DomainModel):
    model_config = ConfigDict(allow_inf_nan=False)

    duration_ms: float = Field(ge=0)
    cpu_time_ms: float | None = Field(default=None, ge=0)
    peak_memory_mb: float | None = Field(default=None, ge=0)
    io_read_bytes: int | None = Field(default=None, ge=0)
    io_write_bytes: int | None = Field(default=None, ge=0)


OUTPUT_MIME_TYPES = ("text/plain", "text/html", "image/png", "image/svg+xml", "application/json")
MAX_OUTPUTS = 64  # bundles per execution
# All bundles of one result as compact JSON: with 1 MiB of stdout and of stderr, a result stays well
# within Lambda's 6 MB response (GET /executions/{id}/result).
MAX_OUTPUTS_BYTES = 2 * 1024 * 1024


class OutputBundle(DomainModel):
    """One notebook output: `data` maps a MIME type to its content (a string; any JSON for
    application/json; image/png is base64)."""

    type: Literal["result", "display"]
    data: dict[str, Any]


def keep_outputs(raw: list[Any]) -> tuple[list[dict[str, Any]], bool]:
    """The bundles an outcome keeps, and whether anything was dropped: unknown MIME types, values of the
    wrong type, bundles with nothing left, past MAX_OUTPUTS or past MAX_OUTPUTS_BYTES in total. An executor
    that sends more than this loses outputs, never its result."""
    kept: list[dict[str, Any]] = []
    dropped, total = False, 0
    for item in raw:
        bundle = item.model_dump() if isinstance(item, OutputBundle) else item
        if not isinstance(bundle, dict) or bundle.get("type") not in ("result", "display"):
            dropped = True
            continue
        data = bundle.get("data")
        data = data if isinstance(data, dict) else {}
        clean = {
            mime: value
            for mime, value in data.items()
            if mime in OUTPUT_MIME_TYPES
            and (isinstance(value, str) or mime == "application/json")
            and json_value_problem(value) is None
        }
        size = json_size(clean)
        if not clean or len(kept) >= MAX_OUTPUTS or total + size > MAX_OUTPUTS_BYTES:
            dropped = True
            continue
        dropped = dropped or len(clean) != len(data) or set(bundle) - {"type", "data"} != set()
        total += size
        kept.append({"type": bundle["type"], "data": clean})
    return kept, dropped


class ExecutionOutcome(DomainModel):
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
    # Notebook-style outputs of an execution in a code context (issue #12): the last expression's value
    # (`result`) and what the cell displayed (`display`), as MIME bundles; bounded by _keep_outputs.
    outputs: list[OutputBundle] = Field(default_factory=list)
    outputs_truncated: bool = False
    # When the run started by the executor's clock: the execution's started_at when no "running" status
    # came first (the executor posts none for runs shorter than 50 ms). Not part of the stored outcome.
    started_at: datetime | None = Field(default=None, exclude=True)

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

    @model_validator(mode="before")
    @classmethod
    def _keep_outputs(cls, data: Any) -> Any:
        """Outputs this API cannot keep are dropped, never the result: see keep_outputs."""
        if isinstance(data, dict) and isinstance(data.get("outputs"), list):
            kept, dropped = keep_outputs(data["outputs"])
            truncated = bool(data.get("outputs_truncated")) or dropped
            data = {**data, "outputs": kept, "outputs_truncated": truncated}
        return data


OUTCOME_TO_STATUS: dict[str, ExecutionStatus] = {
    "success": ExecutionStatus.COMPLETED,
    "failed": ExecutionStatus.FAILED,
    "timeout": ExecutionStatus.TIMEOUT,
    "crashed": ExecutionStatus.CRASHED,
}


class Execution(DomainModel):
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
    context_id: str | None = None  # runs as a cell in this code context (issue #12); None: handler style
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    # A crash retry waiting for its backoff: the reaper hands it to the executor once this has passed.
    retry_after: datetime | None = None


class ApiKey(DomainModel):
    key_hash: str
    tenant_id: str
    is_admin: bool = False
    created_at: datetime


class WarmSandbox(DomainModel):
    """A sandbox started ahead of demand for a template, bound to a session when one claims it."""

    pool_id: str
    template_id: str
    status: Literal["available", "claimed"] = "available"
    container_id: str
    executor_url: str | None = None
    node: str
    session_id: str | None = None
    created_at: datetime


# --- code contexts and background processes (issue #12) --------------------------------------------------
ContextLanguage = Literal["python", "javascript"]
# creating: being made on the executor; ready/busy/dead: as the executor last said (dead: its interpreter
# died, restartable); deleted: by the client; ended: with its session.
ContextStatus = Literal["creating", "ready", "busy", "dead", "deleted", "ended"]
ENDED_CONTEXT_STATUSES = frozenset({"deleted", "ended"})


class CodeContext(DomainModel):
    """A persistent interpreter in a session's sandbox: executions naming it run in it as notebook cells."""

    context_id: str
    session_id: str
    tenant_id: str
    language: ContextLanguage
    cwd: str | None = None
    status: ContextStatus
    executions: int = 0
    restarts: int = 0
    error_message: str | None = None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None


# starting: being started on the executor; failed: the executor refused it; ended: its session ended first.
ProcessStatus = Literal["starting", "running", "exited", "failed", "ended"]
LIVE_PROCESS_STATUSES = frozenset({"starting", "running"})


class BackgroundProcess(DomainModel):
    """A command running in a session's sandbox until it exits, is signalled or the session ends. Its
    environment is passed to the executor and not stored."""

    process_id: str
    session_id: str
    tenant_id: str
    cmd: str
    cwd: str | None = None
    status: ProcessStatus
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    error_message: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
