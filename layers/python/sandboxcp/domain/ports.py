"""Ports: the small interfaces the services depend on. Adapters (sandboxcp.adapters) implement them
with DynamoDB, S3, Step Functions, container runtimes and the executor's HTTP API."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, Field

from sandboxcp.domain.models import (
    ApiKey,
    Execution,
    ExecutionOutcome,
    ExecutionStatus,
    Session,
    SessionStatus,
    Template,
)
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.workspace import WorkspaceFile

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int


class SessionRepository(Protocol):
    def create(self, session: Session) -> None: ...
    def get(self, session_id: str) -> Session | None: ...
    def list_for_tenant(
        self,
        tenant_id: str,
        *,
        status: SessionStatus | None,
        template_id: str | None,
        limit: int,
        offset: int,
    ) -> Page[Session]: ...
    def transition(
        self,
        session_id: str,
        target: SessionStatus,
        *,
        now: datetime,
        fields: Mapping[str, Any] | None = None,
        only_from: Iterable[SessionStatus] | None = None,
    ) -> Session:
        """Conditionally move to `target` from a status the state machine allows (narrowed by `only_from`);
        raises StateConflict otherwise."""
        ...

    def update_fields(
        self, session_id: str, fields: Mapping[str, Any], *, only_if: Iterable[SessionStatus]
    ) -> None: ...
    def touch(self, session_id: str, now: datetime) -> None: ...
    def list_active(self) -> list[Session]: ...
    def list_purge_due(self, now: datetime) -> list[str]: ...
    def mark_purged(self, session_id: str) -> None: ...


class WorkspaceStore(Protocol):
    """A session's workspace files (S3), always addressed as (session id, normalized path)."""

    def list(self, session_id: str, *, limit: int = ...) -> list[WorkspaceFile]: ...
    def usage_bytes(self, session_id: str) -> int: ...
    def head(self, session_id: str, path: str) -> WorkspaceFile | None: ...
    def put(self, session_id: str, path: str, body: bytes) -> WorkspaceFile: ...
    def read(self, session_id: str, path: str) -> bytes: ...
    def presign_get(self, session_id: str, path: str, *, expires_s: int = ...) -> str: ...
    def presign_post(
        self, session_id: str, *, path: str | None, max_bytes: int, expires_s: int = ...
    ) -> dict[str, Any]: ...
    def delete_all(self, session_id: str) -> int: ...


class ResultStore(Protocol):
    """Blob storage for execution outcomes too large for a DynamoDB item."""

    def put(self, key: str, body: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...


class ExecutionRepository(Protocol):
    def create(self, execution: Execution) -> None: ...
    def get(self, execution_id: str, *, with_outcome: bool = True) -> Execution | None: ...
    def list_inflight(self) -> list[Execution]: ...
    def count_inflight_for_session(self, session_id: str) -> int: ...
    def list_for_session(
        self, session_id: str, *, status: ExecutionStatus | None, limit: int, offset: int
    ) -> Page[Execution]: ...
    def transition(
        self,
        execution_id: str,
        target: ExecutionStatus,
        *,
        now: datetime,
        fields: Mapping[str, Any] | None = None,
    ) -> Execution: ...
    def record_outcome(self, execution_id: str, outcome: ExecutionOutcome, *, now: datetime) -> Execution: ...
    def heartbeat(self, execution_id: str, now: datetime) -> None: ...


class TemplateRepository(Protocol):
    def get(self, template_id: str) -> Template | None: ...
    def list(self, *, limit: int, offset: int) -> Page[Template]: ...
    def put_if_absent(self, template: Template) -> bool: ...


class ApiKeyRepository(Protocol):
    def get(self, key_hash: str) -> ApiKey | None: ...
    def put(self, key: ApiKey) -> None: ...


class SandboxSpec(BaseModel):
    """Everything a runtime needs to start one session's sandbox."""

    session_id: str
    image: str
    resources: ResourceLimit
    network_enabled: bool = False
    env: dict[str, str] = Field(default_factory=dict)


class SandboxHandle(BaseModel):
    container_id: str
    node: str
    executor_url: str | None = None


SandboxState = Literal["creating", "running", "exited", "missing"]


class Runtime(Protocol):
    """One interface, four adapters: process (bubblewrap), docker, ecs, eks."""

    name: str

    def start(self, spec: SandboxSpec) -> SandboxHandle: ...
    def destroy(self, container_id: str) -> None: ...
    def state(self, container_id: str) -> SandboxState: ...


class ExecutorClient(Protocol):
    def submit(
        self, executor_url: str, execution: Execution, workspace: Mapping[str, Any] | None = None
    ) -> None:
        """Hand an execution to its executor, with the presigned workspace plan for the run."""
        ...


class LaunchWorkflow(Protocol):
    def start(self, session_id: str) -> None: ...
    def notify_ready(self, task_token: str, output: Mapping[str, Any]) -> None: ...
