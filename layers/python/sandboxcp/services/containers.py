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
sessions. Another tenant's container is indistinguishable from a missing one (404).

Usage (seed US5): live containers' CPU (% of the sandbox's CPU limit), memory and /workspace disk, from
runtimes that can measure them (`RuntimeUsage`: process, docker); each figure is also an EMF metric
(`ContainerCpuPercent`, `ContainerMemoryPercent`, `ContainerDiskPercent`; alarms above 80 %), and a
warning is logged for a container above 80 %. Logs: the runtime's lines (the executor's events) with the
programs' stdout/stderr of the session's latest executions merged in by time, each marked by stream; once
the sandbox is gone, its last 1,000 lines as kept when it was destroyed."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from sandboxcp.domain.errors import SandboxError
from sandboxcp.domain.ids import SESSION_ID_RE
from sandboxcp.domain.log_lines import line_time, lines_since
from sandboxcp.domain.models import Principal, Session
from sandboxcp.domain.ports import Page
from sandboxcp.domain.states import SessionStatus
from sandboxcp.domain.usage import ALERT_PERCENT, ContainerUsage
from sandboxcp.observability import logger, record_metric
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
    those at or after `since` (every runtime reads its sandboxes' logs: ports.Runtime)."""
    session = get_container(deps, caller, container_id)
    assert session.container_id is not None
    tail = max(1, min(tail, MAX_TAIL))
    lines = list(deps.runtime.logs(session.container_id, tail=tail, since=since))
    if not lines and session.status not in (SessionStatus.CREATING, SessionStatus.RUNNING):
        lines = kept_logs(deps, session.session_id, tail=tail, since=since)
    return merge_by_time(lines, program_output(deps, session.session_id, since=since))[-tail:]


# -- logs of an ended sandbox --------------------------------------------------------------------------
# Most runtimes drop a sandbox's logs with it (a removed container, a deleted Pod), so the last lines are
# kept in the workspace bucket when the session's sandbox is destroyed, expiring with the results.
KEPT_LOG_LINES = 1000


def _kept_key(session_id: str) -> str:
    return f"results/{session_id}/container.log"


def keep_logs(deps: Dependencies, session: Session) -> None:
    """Save the last KEPT_LOG_LINES of the session's sandbox before it is destroyed (best effort: a
    termination never fails for its logs)."""
    if not session.container_id:
        return
    try:
        lines = deps.runtime.logs(session.container_id, tail=KEPT_LOG_LINES)
        if lines:
            body = "".join(f"{line}\n" for line in lines).encode()
            deps.results.put(_kept_key(session.session_id), body, content_type="text/plain")
    except Exception:
        logger.exception("sandbox logs not kept", extra={"session_id": session.session_id})


def kept_logs(deps: Dependencies, session_id: str, *, tail: int, since: datetime | None) -> list[str]:
    body = deps.results.get_if_any(_kept_key(session_id))
    lines = body.decode(errors="replace").splitlines() if body else []
    return (lines_since(lines, since) if since is not None else lines)[-tail:]


# -- program output in the logs ------------------------------------------------------------------------
OUTPUT_EXECUTIONS = 20  # the session's latest executions whose output the logs carry


def program_output(deps: Dependencies, session_id: str, *, since: datetime | None = None) -> list[str]:
    """`<completed_at> [stdout|stderr] execution_id=<id> <line>` for the programs' output of the session's
    latest finished executions (their stdout/stderr as the results hold them), oldest first."""
    out: list[str] = []
    page = deps.executions.list_for_session(session_id, status=None, limit=OUTPUT_EXECUTIONS, offset=0)
    for summary in reversed(page.items):
        if summary.completed_at is None or (since is not None and summary.completed_at < since):
            continue
        execution = deps.executions.get(summary.execution_id)
        outcome = execution.outcome if execution is not None else None
        if outcome is None:
            continue
        stamp = summary.completed_at.isoformat().replace("+00:00", "Z")
        for stream, text in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
            out += [
                f"{stamp} [{stream}] execution_id={summary.execution_id} {line}" for line in text.splitlines()
            ]
    return out


def merge_by_time(runtime_lines: list[str], program_lines: list[str]) -> list[str]:
    """Both lists in time order (a line without a timestamp goes with the stamped line before it)."""
    if not program_lines:
        return runtime_lines
    keyed: list[tuple[float, int, str]] = []
    last = float("-inf")
    for i, line in enumerate(runtime_lines):
        stamp = line_time(line)
        last = stamp.timestamp() if stamp else last
        keyed.append((last, i, line))
    n = len(runtime_lines)
    for j, line in enumerate(program_lines):
        stamp = line_time(line)
        keyed.append((stamp.timestamp() if stamp else float("inf"), n + j, line))
    return [line for _, _, line in sorted(keyed)]


# -- usage ---------------------------------------------------------------------------------------------
@runtime_checkable
class RuntimeUsage(Protocol):
    """Runtimes that measure their sandboxes (process: cgroups and /proc; docker: cgroups or stats)."""

    def usage(self, container_ids: Iterable[str]) -> dict[str, ContainerUsage]: ...


def container_usage(deps: Dependencies, sessions: Iterable[Session]) -> dict[str, ContainerUsage]:
    """Usage of the running ones among `sessions`' containers, by container id; emits the metrics."""
    live = {s.container_id: s for s in sessions if s.container_id and s.status == SessionStatus.RUNNING}
    runtime = deps.runtime
    if not live or not isinstance(runtime, RuntimeUsage):
        return {}
    try:
        measured = runtime.usage(list(live))
    except SandboxError as err:
        logger.warning("container usage not read", extra={"reason": err.detail})
        return {}
    out: dict[str, ContainerUsage] = {}
    for container_id, usage in measured.items():
        session = live.get(container_id)
        if session is None:
            continue
        res = session.resources
        usage = usage.with_limits(res.cpu_cores, res.memory_mb * 1024 * 1024, res.disk_mb * 1024 * 1024)
        out[container_id] = usage
        runtime_name, tenant = session.runtime_type, session.tenant_id
        if usage.cpu_percent is not None:
            record_metric(
                "ContainerCpuPercent", usage.cpu_percent, "Percent", runtime=runtime_name, tenant=tenant
            )
        if usage.memory_percent is not None:
            record_metric(
                "ContainerMemoryPercent", usage.memory_percent, "Percent", runtime=runtime_name, tenant=tenant
            )
        if usage.disk_percent is not None:
            record_metric(
                "ContainerDiskPercent", usage.disk_percent, "Percent", runtime=runtime_name, tenant=tenant
            )
        if over := usage.over(ALERT_PERCENT):
            logger.warning(
                "container above its usage alert",
                extra={"container_id": container_id, "session_id": session.session_id, "over": over},
            )
    return out
