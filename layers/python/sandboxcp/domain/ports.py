"""Ports: the small interfaces the services depend on. Adapters (sandboxcp.adapters) implement them
with DynamoDB, S3, Step Functions, container runtimes and the executor's HTTP API."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Generic, Literal, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel, Field

from sandboxcp.domain.models import (
    ApiKey,
    Execution,
    ExecutionOutcome,
    ExecutionStatus,
    Session,
    SessionStatus,
    Template,
    WarmSandbox,
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


class WarmPoolRepository(Protocol):
    def add(self, sandbox: WarmSandbox) -> None: ...
    def available(self, template_id: str, *, limit: int = ...) -> list[WarmSandbox]: ...
    def get(self, pool_id: str) -> WarmSandbox | None: ...
    def claim(self, pool_id: str, session_id: str) -> bool: ...
    def remove(self, pool_id: str) -> None: ...


class SandboxSpec(BaseModel):
    """Everything a runtime needs to start one session's sandbox."""

    session_id: str
    image: str
    resources: ResourceLimit
    network_enabled: bool = False
    env: dict[str, str] = Field(default_factory=dict)
    # Not part of `env`: runtimes that can bind the executor after start (process, docker) never put it
    # where user code could read it; the others (ecs, eks) pass it in the task's environment.
    callback_token: str = Field(default="", repr=False)


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
        self,
        executor_url: str,
        execution: Execution,
        workspace: Mapping[str, Any] | None = None,
        *,
        executor_key: str = "",
    ) -> None:
        """Hand an execution to its executor, with the presigned workspace plan for the run.
        `executor_key` (the session's callback token hash) proves to the executor that we are the
        control plane and not code inside the sandbox."""
        ...

    def bind(
        self,
        executor_url: str,
        session_id: str,
        callback_token: str,
        env: Mapping[str, str],
        *,
        wait_s: float = 0.0,
    ) -> None:
        """Give an unbound executor (warm, or just started) its session: identity, callback token and
        environment. `wait_s`: keep trying that long while the executor is not listening yet."""
        ...


class LaunchWorkflow(Protocol):
    def start(self, session_id: str) -> None: ...
    def notify_ready(self, task_token: str, output: Mapping[str, Any]) -> None: ...


# --- operations ports: template admin, containers, runtime nodes, orphans (ops-api) ---------------------


class TemplateStore(TemplateRepository, Protocol):
    """Template reads plus the admin writes (create, update, delete)."""

    def replace(self, template: Template, *, expected_updated_at: datetime) -> None:
        """Store `template` only if the stored one is still the version last updated at
        `expected_updated_at` (StateConflict otherwise: changed or deleted concurrently)."""
        ...

    def delete(self, template_id: str) -> bool:
        """False when there was nothing to delete."""
        ...


NodeStatus = Literal["healthy", "unhealthy", "draining"]
NODE_STATUSES: tuple[NodeStatus, ...] = ("healthy", "unhealthy", "draining")


class RuntimeNode(BaseModel):
    """A host that runs sandboxes (a Docker engine; ECS, EKS and the process runtime are one node each)."""

    node_id: str
    runtime_type: str
    endpoint: str
    status: NodeStatus = "healthy"
    capacity: int = 50
    labels: dict[str, str] = Field(default_factory=dict)
    consecutive_failures: int = 0
    last_probe_at: datetime | None = None


class NodeRepository(Protocol):
    def register(self, node: RuntimeNode) -> None:
        """Create or refresh a node (endpoint, capacity, labels); its probe history is kept."""
        ...

    def get(self, node_id: str) -> RuntimeNode | None: ...
    def list(self, runtime_type: str, *, statuses: Iterable[NodeStatus] = NODE_STATUSES) -> list[RuntimeNode]:
        """A Query per status on the `runtime_status` index (never a Scan)."""
        ...

    def record_probe(
        self,
        node_id: str,
        *,
        status: NodeStatus,
        consecutive_failures: int,
        now: datetime,
        expected_failures: int,
    ) -> bool:
        """Store a probe's outcome unless another prober got there first (then False)."""
        ...


class ProbeResult(BaseModel):
    ok: bool
    detail: str = ""


class NodeProber(Protocol):
    def probe(self, node: RuntimeNode) -> ProbeResult: ...


class OperationsQueries(Protocol):
    """Operator views over the sessions and executions indexes (never a Scan)."""

    def count_active_for_template(self, template_id: str) -> int: ...
    def count_active_on_node(self, node_id: str) -> int: ...
    def count_active(self, tenant_id: str | None = None) -> dict[str, int]:
        """Active sessions per status (creating, running): all tenants', or one tenant's."""
        ...

    def count_inflight_executions(self, tenant_id: str | None = None) -> int:
        """Pending and running executions: all tenants', or one tenant's."""
        ...

    def containers_by_status(
        self, status: SessionStatus, *, runtime_type: str | None, limit: int, offset: int
    ) -> Page[Session]:
        """All tenants' sessions with a container, newest first (`status_created` index)."""
        ...

    def active_containers(self, *, runtime_type: str | None) -> list[Session]:
        """All tenants' creating/running sessions with a container (sparse `active` index)."""
        ...

    def containers_for_tenant(
        self,
        tenant_id: str,
        *,
        status: SessionStatus | None,
        runtime_type: str | None,
        limit: int,
        offset: int,
    ) -> Page[Session]: ...
    def find_by_container(self, container_id: str, *, tenant_id: str | None) -> Session | None:
        """The session whose sandbox is `container_id`: active sessions first, then (for a tenant) its
        own history; None when not found."""
        ...


class HealthChecks(Protocol):
    """Cheap reachability checks of the backing services; each raises on failure."""

    def dynamodb(self) -> None: ...
    def storage(self) -> None: ...
    def runtime(self) -> None: ...


class ManagedSandbox(NamedTuple):
    container_id: str
    session_id: str | None
    state: SandboxState


class RuntimeLogs(Protocol):
    def logs(self, container_id: str, tail: int = 100, since: datetime | None = None) -> list[str]: ...


class RuntimeInventory(Protocol):
    def list_managed(self) -> list[ManagedSandbox]: ...


# --- end of operations ports ----------------------------------------------------------------------------
