"""Ports: the small interfaces the services depend on. Adapters (sandboxcp.adapters) implement them
with DynamoDB, S3, Step Functions, container runtimes and the executor's HTTP API."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, Literal, NamedTuple, Protocol, TypeVar

from pydantic import Field

from sandboxcp.domain.base import DomainModel
from sandboxcp.domain.models import (
    ApiKey,
    BackgroundProcess,
    CodeContext,
    ContextStatus,
    Execution,
    ExecutionOutcome,
    ExecutionStatus,
    ProcessStatus,
    Session,
    SessionStatus,
    Template,
    WarmSandbox,
)
from sandboxcp.domain.output import OutputChunk, OutputUsage
from sandboxcp.domain.quotas import QuotaLimits, TenantQuota
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.workspace import Artifact, WorkspaceFile

T = TypeVar("T")


class Page(DomainModel, Generic[T]):
    items: list[T]
    total: int
    # Where the next page starts (an index key; the services wrap it in a signed `next_token`); None: last.
    next_key: dict[str, Any] | None = None
    next_token: str | None = None  # the signed, opaque form clients get


class SessionRepository(Protocol):
    def create(self, session: Session, *, enforce_quota: bool = False) -> None:
        """Record a new session holding its tenant's quota share; `enforce_quota`: only if that fits
        (QuotaExceeded otherwise)."""
        ...

    def get(self, session_id: str) -> Session | None: ...
    def list_for_tenant(
        self,
        tenant_id: str,
        *,
        status: SessionStatus | None,
        template_id: str | None,
        limit: int,
        offset: int,
        start_key: dict[str, Any] | None = None,
        with_total: bool = True,
    ) -> Page[Session]:
        """Newest first. `start_key`: continue after a page's `next_key` (O(page)); `with_total=False`:
        no count (total -1)."""
        ...

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
    def workspace_written(self, session_id: str, *, open_until: datetime | None = None) -> None: ...
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
    def create(
        self,
        execution: Execution,
        *,
        enforce_quota: bool = False,
        session_limit: int | None = None,
        remember: bool = False,
        session_as_read: Session | None = None,
    ) -> None:
        """Record a new execution holding a share of its tenant's in-flight quota; `enforce_quota`: only
        if that fits (QuotaExceeded otherwise). `remember`: this process will likely end it (an
        execute-sync), so its end may skip reading it. `session_as_read` (with `session_limit`): only if
        the session still has that executor and workspace revision (SessionChanged otherwise)."""
        ...

    def get(self, execution_id: str, *, with_outcome: bool = True) -> Execution | None: ...
    def list_inflight(self) -> list[Execution]: ...
    def count_inflight_for_session(self, session_id: str) -> int: ...
    def list_for_session(
        self,
        session_id: str,
        *,
        status: ExecutionStatus | None,
        limit: int,
        offset: int,
        start_key: dict[str, Any] | None = None,
        with_total: bool = True,
    ) -> Page[Execution]: ...
    def transition(
        self,
        execution_id: str,
        target: ExecutionStatus,
        *,
        now: datetime,
        fields: Mapping[str, Any] | None = None,
        owner_session: str | None = None,
    ) -> Execution:
        """Move the execution to `target` if its state allows (StateConflict otherwise, or when it does not
        exist); with `owner_session`, Forbidden when it belongs to another session."""
        ...

    def record_outcome(
        self, execution_id: str, outcome: ExecutionOutcome, *, now: datetime, owner_session: str | None = None
    ) -> Execution: ...
    def heartbeat(self, execution_id: str, now: datetime) -> None: ...
    def add_artifacts(
        self, execution_id: str, artifacts: list[Artifact], *, max_count: int
    ) -> list[Artifact]:
        """Merge reported artifacts (by path) into the execution's; returns them all. InvalidParameter
        past `max_count`, ExecutionNotFound when there is no such execution."""
        ...

    def claim_retry(self, execution_id: str, retry_after: datetime, now: datetime) -> bool:
        """Take a waiting retry for sending: clear `retry_after` (if still `retry_after` and pending) and
        start its crash clock at `now`; False when another caller took it first."""
        ...


class TemplateRepository(Protocol):
    def get(self, template_id: str) -> Template | None: ...
    def list(
        self,
        *,
        limit: int,
        offset: int,
        start_key: dict[str, Any] | None = None,
        with_total: bool = True,
    ) -> Page[Template]: ...
    def put_if_absent(self, template: Template) -> bool: ...


class TenantQuotaStore(Protocol):
    """Per-tenant quotas (sandboxcp.domain.quotas). Sessions and executions take and give back their
    shares through their own repositories; this port reads and sets the limits and counts requests."""

    def get(self, tenant_id: str) -> TenantQuota: ...
    def set_limits(self, tenant_id: str, limits: QuotaLimits) -> TenantQuota: ...
    def take_request(self, tenant_id: str, now_s: int) -> int | None:
        """Count a request in the tenant's one-second window: None if it fits, else seconds to wait."""
        ...


class ApiKeyRepository(Protocol):
    def get(self, key_hash: str) -> ApiKey | None: ...
    def put(self, key: ApiKey) -> None: ...


class WarmPoolRepository(Protocol):
    def add(self, sandbox: WarmSandbox) -> None: ...
    def available(self, template_id: str, *, limit: int = ...) -> list[WarmSandbox]: ...
    def get(self, pool_id: str) -> WarmSandbox | None: ...
    def claim(self, pool_id: str, session_id: str) -> bool: ...
    def remove(self, pool_id: str) -> None: ...
    def get_demand(self, template_id: str) -> Mapping[str, Any] | None:
        """The refill's demand record of a template's pool (services/warm_pool.py), None before the first."""
        ...

    def put_demand(
        self, template_id: str, demand: Mapping[str, Any], *, expected_at: datetime | None
    ) -> bool:
        """Store it unless another refill stored one since `expected_at` (then False)."""
        ...


class SandboxSpec(DomainModel):
    """Everything a runtime needs to start one session's sandbox."""

    session_id: str
    image: str
    # The node placement chose (services/placement.py); None: the runtime's default node.
    node: str | None = None
    resources: ResourceLimit
    network_enabled: bool = False
    # The control plane's own `SANDBOXCP_*` variables, plus (for runtimes that cannot bind yet) the
    # session's variables. Runtimes that bind (process, docker, ecs) give the session's variables to the
    # executor in the bind body instead; ecs passes only the `SANDBOXCP_*` ones to RunTask.
    env: dict[str, str] = Field(default_factory=dict)
    # Not part of `env`: runtimes that bind the executor after start (process, docker, ecs) ignore it and
    # never put it where user code or the cloud's API records could read it; eks (until it binds too)
    # passes it in the Pod's environment.
    callback_token: str = Field(default="", repr=False)


class SandboxHandle(DomainModel):
    container_id: str
    node: str
    executor_url: str | None = None


SandboxState = Literal["creating", "running", "exited", "missing"]


class ManagedSandbox(NamedTuple):
    container_id: str
    session_id: str | None
    state: SandboxState


class Runtime(Protocol):
    """One interface, four adapters: process (bubblewrap), docker, ecs, eks. Everything a caller may ask
    of a runtime is here, so no caller probes an adapter for optional methods.

    The trust boundary: the executor's address always comes from the runtime (`start`'s handle or
    `executor_url`), never from what the sandbox reports."""

    name: str

    @property
    def default_node(self) -> str:
        """The node id `start` reports for the deployment's own node (registered at startup)."""
        ...

    @property
    def addresses_at_start(self) -> bool:
        """True when `start` returns the executor's address (process, docker, ecs): the launch binds the
        executor over it at once. False (eks, for now): the address is known only once the sandbox runs;
        container_ready then asks `executor_url`."""
        ...

    def start(self, spec: SandboxSpec) -> SandboxHandle: ...
    def destroy(self, container_id: str) -> None:
        """Stop and remove the sandbox; success when it is already gone."""
        ...

    def state(self, container_id: str) -> SandboxState: ...
    def states(self, container_ids: Sequence[str]) -> dict[str, SandboxState]:
        """The state of each sandbox, in as few runtime calls as the runtime allows (the session reaper
        asks for every running session each tick: ECS answers 100 tasks per DescribeTasks)."""
        ...

    def executor_url(self, container_id: str) -> str | None:
        """Where the executor listens, as the runtime reports it (task ENI, Pod IP, published port,
        socket); None while the runtime cannot tell yet."""
        ...

    def logs(self, container_id: str, tail: int = 100, since: datetime | None = None) -> list[str]:
        """The sandbox's last `tail` log lines (optionally only those at or after `since`); [] when gone."""
        ...

    def list_managed(self) -> list[ManagedSandbox]:
        """Every sandbox this deployment owns on the runtime, for the orphan reaper."""
        ...

    def ping(self) -> bool:
        """A cheap reachability check of the runtime's control API (health check, node prober): False,
        or an exception, when it does not answer."""
        ...


class ExecutorContext(DomainModel):
    """A code context as the executor reports it (`status` ready, busy or dead)."""

    context_id: str
    status: Literal["ready", "busy", "dead"]
    executions: int = Field(default=0, ge=0)
    restarts: int = Field(default=0, ge=0)


class ExecutorProcess(DomainModel):
    """A background process as the executor reports it."""

    process_id: str
    status: Literal["running", "exited"]
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


class ExecutorClient(Protocol):
    def submit(
        self,
        executor_url: str,
        execution: Execution,
        workspace: Mapping[str, Any] | None = None,
        *,
        executor_key: str = "",
        wait_s: float = 0.0,
    ) -> dict[str, Any] | None:
        """Hand an execution to its executor, with the presigned workspace plan for the run.
        `executor_key` (the session's callback token hash) proves to the executor that we are the
        control plane and not code inside the sandbox. With `wait_s`, the executor answers with the
        result (the result callback's body, which it then does not post) when the run ends within it;
        None: the result comes by callback."""
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

    # Code contexts and background processes (issue #12). Each call carries the executor key like
    # `submit`. Refusals map to domain errors: 404 -> ContextNotFound/ProcessNotFound, 409 -> StateConflict,
    # 429 -> TooManyRequests, 400 -> InvalidParameter, unreachable or anything else -> SandboxUnavailable.
    def create_context(
        self, executor_url: str, context_id: str, language: str, cwd: str | None, *, executor_key: str
    ) -> ExecutorContext: ...
    def get_context(self, executor_url: str, context_id: str, *, executor_key: str) -> ExecutorContext: ...
    def delete_context(self, executor_url: str, context_id: str, *, executor_key: str) -> None: ...
    def restart_context(
        self, executor_url: str, context_id: str, *, executor_key: str
    ) -> ExecutorContext: ...
    def start_process(
        self,
        executor_url: str,
        process_id: str,
        cmd: str,
        cwd: str | None,
        env: Mapping[str, str],
        *,
        executor_key: str,
    ) -> ExecutorProcess: ...
    def get_process(self, executor_url: str, process_id: str, *, executor_key: str) -> ExecutorProcess: ...
    def list_processes(self, executor_url: str, *, executor_key: str) -> list[ExecutorProcess]: ...
    def write_stdin(
        self, executor_url: str, process_id: str, data: str, eof: bool, *, executor_key: str
    ) -> int: ...
    def signal_process(
        self, executor_url: str, process_id: str, signal: str, *, executor_key: str
    ) -> None: ...


class OutputRepository(Protocol):
    """Live-output chunks per stream (an execution or a background process), keyed by seq."""

    def existing_seqs(self, stream_id: str, first: int, last: int) -> set[int]: ...
    def usage(self, stream_id: str) -> OutputUsage: ...
    def reserve(
        self, stream_id: str, usage: OutputUsage, *, expected_version: int, expires_at: datetime
    ) -> bool:
        """Store `usage` if the stored version is still `expected_version` (0: none); False otherwise."""
        ...

    def release(self, stream_id: str, stream: str, size: int) -> None:
        """Give back bytes reserved for a chunk another writer stored first."""
        ...

    def put_new(self, stream_id: str, chunks: list[OutputChunk], *, expires_at: datetime) -> list[bool]:
        """Store each chunk unless its seq is taken (in seq order); per chunk, whether this call stored it."""
        ...

    def after(self, stream_id: str, after: int, *, limit: int) -> Iterator[OutputChunk]:
        """Chunks with seq > `after`, in order, at most `limit` (strongly consistent, read lazily)."""
        ...


class OutputPush(Protocol):
    """Pushes stored chunks to live subscribers (the WebSocket API in AWS); a no-op where there is none."""

    def publish(self, stream_id: str, chunks: list[OutputChunk], *, complete: bool = False) -> None: ...
    def subscribe(self, stream_id: str, connection_id: str, tenant_id: str) -> None: ...
    def unsubscribe(self, connection_id: str, stream_id: str | None = None) -> None:
        """One subscription of the connection, or all of them."""
        ...

    def send(self, connection_id: str, payloads: list[bytes]) -> bool:
        """Post to one connection; False when it is gone."""
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


class NodeLoad(DomainModel):
    """What placement takes a node to hold: its live sessions' sandboxes, CPU cores and memory (MiB)."""

    sandboxes: int = 0
    cpu: float = 0.0
    memory_mb: int = 0
    counted_at: datetime | None = None


class RuntimeNode(DomainModel):
    """A host that runs sandboxes (a Docker engine; ECS, EKS and the process runtime are one node each)."""

    node_id: str
    runtime_type: str
    endpoint: str
    status: NodeStatus = "healthy"
    capacity: int = 50  # sandboxes (sessions' and warm ones)
    cpu_cores: float | None = None  # what placement may hand out; None: not limited
    memory_mb: int | None = None
    cached_images: list[str] = Field(default_factory=list)  # template affinity (services/placement.py)
    labels: dict[str, str] = Field(default_factory=dict)
    consecutive_failures: int = 0
    last_probe_at: datetime | None = None
    load: NodeLoad | None = None  # None: never counted


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

    def add_images(self, node_id: str, images: Iterable[str]) -> None:
        """Record images the node holds (template affinity)."""
        ...

    def active_load(self, runtime_type: str) -> dict[str, tuple[int, float, int]]:
        """Per node: live sessions' sandboxes, their CPU cores and memory (MiB), from the sparse `active`
        index (its cost follows live sessions, not history)."""
        ...

    def store_load(
        self, nodes: Iterable[str], load: dict[str, tuple[int, float, int]], now: datetime
    ) -> None:
        """Set each node's load to a fresh count (`active_load`; a node missing from it holds nothing)."""
        ...

    def add_load(self, node_id: str, cpu: float, memory_mb: int) -> None:
        """Add one sandbox of that size to the node's load (an atomic counter update)."""
        ...


class ProbeResult(DomainModel):
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


# --- end of operations ports ----------------------------------------------------------------------------


# --- code contexts and background processes (issue #12) --------------------------------------------------


class ContextRepository(Protocol):
    def create(self, context: CodeContext) -> None: ...
    def get(self, context_id: str) -> CodeContext | None: ...
    def list_for_session(self, session_id: str) -> list[CodeContext]:
        """Newest first (the `session_created` index)."""
        ...

    def count_live(self, session_id: str) -> int:
        """Contexts neither deleted nor ended (the sparse `live_session` index)."""
        ...

    def live_ids(self, session_id: str) -> list[str]: ...
    def update(
        self, context_id: str, fields: Mapping[str, Any], *, only_from: Iterable[ContextStatus]
    ) -> CodeContext:
        """Set `fields` (status included) if the stored status is one of `only_from` (StateConflict
        otherwise); leaving the live statuses drops the context from the live index."""
        ...

    def delete(self, context_id: str) -> None: ...


class ProcessRepository(Protocol):
    def create(self, process: BackgroundProcess) -> None: ...
    def get(self, process_id: str) -> BackgroundProcess | None: ...
    def list_for_session(self, session_id: str) -> list[BackgroundProcess]:
        """Newest first (the `session_created` index)."""
        ...

    def count_live(self, session_id: str) -> int:
        """Starting and running processes (the sparse `live_session` index)."""
        ...

    def live_ids(self, session_id: str) -> list[str]: ...
    def update(
        self, process_id: str, fields: Mapping[str, Any], *, only_from: Iterable[ProcessStatus]
    ) -> BackgroundProcess:
        """Like ContextRepository.update."""
        ...
