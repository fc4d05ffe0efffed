"""Container monitoring (FR-037..FR-039): a container is a session's sandbox, so every view reads the
sessions table's indexes; only logs ask the runtime.

Listing:
- tenants see their own containers (`tenant_status` with a status filter, else `tenant_created`: their
  whole history, newest first);
- admins see every tenant's: with a status filter through `status_created`; without one, only live
  containers (creating and running, through the sparse `active` index), because an unfiltered
  all-tenant history would grow without bound. Ask for an ended status explicitly to see ended ones;
- only sessions that got a container are listed; `runtime_type` accepts the runtime names (process,
  docker, ecs, eks) and the contract's `kubernetes` as a name for eks.

Lookup (`/containers/{id}`): the id may be the container id or the session id. A session id, or a
container id that embeds one (the process runtime's `proc-<session id>`), is one GetItem; any other
container id is looked up among live containers (the `active` index) and then, for a tenant, in its own
sessions. Another tenant's container is indistinguishable from a missing one (404)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from sandboxcp.domain.errors import SandboxError
from sandboxcp.domain.ids import SESSION_ID_RE
from sandboxcp.domain.models import Principal, Session
from sandboxcp.domain.ports import Page, RuntimeLogs
from sandboxcp.domain.states import SessionStatus
from sandboxcp.services.deps import Dependencies

RuntimeFilter = Literal["process", "docker", "ecs", "eks", "kubernetes"]
_EMBEDDED_SESSION = re.compile(r"sess_[a-z0-9]{16}")
MAX_TAIL = 10000


class ContainerNotFound(SandboxError):
    status_code = 404
    error_code = "Sandbox.ContainerNotFound"
    description = "Container not found"
    solution = "Check the container id (or pass the session id); list containers with GET /api/v1/containers"


def _runtime_name(runtime_type: RuntimeFilter | None) -> str | None:
    return "eks" if runtime_type == "kubernetes" else runtime_type


def list_containers(
    deps: Dependencies,
    caller: Principal,
    *,
    status: SessionStatus | None,
    runtime_type: RuntimeFilter | None,
    limit: int,
    offset: int,
) -> Page[Session]:
    runtime = _runtime_name(runtime_type)
    if not caller.is_admin:
        return deps.ops.containers_for_tenant(
            caller.tenant_id, status=status, runtime_type=runtime, limit=limit, offset=offset
        )
    if status is not None:
        return deps.ops.containers_by_status(status, runtime_type=runtime, limit=limit, offset=offset)
    live = sorted(deps.ops.active_containers(runtime_type=runtime), key=lambda s: s.created_at, reverse=True)
    return Page(items=live[offset : offset + limit], total=len(live))


def get_container(deps: Dependencies, caller: Principal, container_id: str) -> Session:
    tenant = None if caller.is_admin else caller.tenant_id
    session: Session | None = None
    if SESSION_ID_RE.fullmatch(container_id):
        session = deps.sessions.get(container_id)
    elif (m := _EMBEDDED_SESSION.search(container_id)) is not None:
        session = deps.sessions.get(m.group(0))
        if session is not None and session.container_id != container_id:
            session = None
    if session is None and not SESSION_ID_RE.fullmatch(container_id) and len(container_id) <= 512:
        session = deps.ops.find_by_container(container_id, tenant_id=tenant)
    if session is None or session.container_id is None or (tenant and session.tenant_id != tenant):
        raise ContainerNotFound(f"Container '{container_id}' does not exist")
    return session


def container_logs(
    deps: Dependencies,
    caller: Principal,
    container_id: str,
    *,
    tail: int = 100,
    since: datetime | None = None,
) -> list[str]:
    """The sandbox's last `tail` log lines (executor and stdout/stderr of the container), optionally only
    those at or after `since`. Runtimes that cannot read logs answer no lines."""
    session = get_container(deps, caller, container_id)
    assert session.container_id is not None
    logs: RuntimeLogs | None = deps.runtime if callable(getattr(deps.runtime, "logs", None)) else None  # type: ignore[assignment]
    if logs is None:
        return []
    tail = max(1, min(tail, MAX_TAIL))
    return list(logs.logs(session.container_id, tail=tail, since=since))[-tail:]
