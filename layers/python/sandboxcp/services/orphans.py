"""Orphan reaper (every 60 s): sandboxes the runtime still runs that no live session owns are destroyed.

The runtime lists what it manages (`list_managed()` -> (container_id, session_id, state)); a sandbox is
an orphan when its session does not exist, is no longer creating/running, or owns another container
(a sandbox left behind by a relaunch). A session still creating whose container id is not written yet
owns any sandbox labelled with it. One GetItem per managed sandbox: the cost follows live sandboxes."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandboxcp.domain.ports import ManagedSandbox
from sandboxcp.domain.states import ACTIVE_SESSION_STATUSES
from sandboxcp.observability import logger, record_metric
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.warm_pool import POOL_PREFIX


@dataclass
class OrphanReport:
    examined: int = 0
    destroyed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _orphan_reason(deps: Dependencies, sandbox: ManagedSandbox) -> str | None:
    if not sandbox.session_id:
        return "no session label"
    session_id = sandbox.session_id
    if session_id.startswith(POOL_PREFIX):  # a warm sandbox: waiting, or owned by the session that claimed it
        warm = deps.warm_pool.get(session_id)
        if warm is None:
            return "unknown warm sandbox"
        if warm.status == "available":
            return None
        session_id = warm.session_id or ""
    session = deps.sessions.get(session_id)
    if session is None:
        return "session does not exist"
    if session.status not in ACTIVE_SESSION_STATUSES:
        return f"session is {session.status}"
    if session.container_id and session.container_id != sandbox.container_id:
        return "session owns another container"
    return None


def reap_orphans(deps: Dependencies) -> OrphanReport:
    report = OrphanReport()
    runtime = deps.runtime
    for sandbox in runtime.list_managed():
        managed = ManagedSandbox(*sandbox)
        report.examined += 1
        reason = _orphan_reason(deps, managed)
        if reason is None:
            continue
        try:
            runtime.destroy(managed.container_id)
        except Exception:
            logger.exception("orphan not destroyed", extra={"container_id": managed.container_id})
            report.errors.append(managed.container_id)
            continue
        report.destroyed.append(managed.container_id)
        if managed.session_id and managed.session_id.startswith(POOL_PREFIX):
            deps.warm_pool.remove(managed.session_id)
        logger.warning(
            "orphan sandbox destroyed",
            extra={"container_id": managed.container_id, "session_id": managed.session_id, "reason": reason},
        )
    if report.destroyed:
        record_metric("OrphansDestroyed", len(report.destroyed))
    return report
