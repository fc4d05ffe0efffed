"""Session lifecycle schedule (FR-008): reads only creating and running sessions (the sparse `active`
index), so its cost grows with active sessions, never with history.

- creating for longer than the launch may take -> failed (the launch workflow normally does this first);
- running but its sandbox exited or vanished (killed from outside, crashed host) -> failed, released;
- running and idle for 30 min -> terminated; past its lifetime (`timeout`, at most 6 h) -> timeout.
Each change is a conditional transition; the sandbox is destroyed after it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sandboxcp.domain import clock
from sandboxcp.domain.errors import SandboxUnavailable, StateConflict
from sandboxcp.domain.models import Session
from sandboxcp.domain.states import SessionStatus
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.sessions import destroy_sandbox

IDLE_LIMIT = timedelta(minutes=30)
MAX_LIFETIME = timedelta(hours=6)
LAUNCH_GRACE = timedelta(seconds=120)  # beyond the launch workflow's own 90 s wait


@dataclass
class SessionReapReport:
    examined: int = 0
    failed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    idle: list[str] = field(default_factory=list)


def _verdict(
    deps: Dependencies, s: Session, now: datetime, states: Mapping[str, str]
) -> tuple[SessionStatus, str] | None:
    if s.status == SessionStatus.CREATING:
        if now - s.created_at > timedelta(seconds=deps.settings.session_creating_timeout_s) + LAUNCH_GRACE:
            return SessionStatus.FAILED, "the sandbox did not become ready in time"
        return None
    if now - s.created_at > min(timedelta(seconds=s.timeout), MAX_LIFETIME):
        return SessionStatus.TIMEOUT, f"session lifetime of {s.timeout} s reached"
    if now - s.last_activity_at > IDLE_LIMIT:
        return SessionStatus.TERMINATED, "idle for 30 minutes"
    if s.container_id and states.get(s.container_id) in ("exited", "missing"):
        return SessionStatus.FAILED, "the sandbox exited unexpectedly"
    return None


def _sandbox_states(deps: Dependencies, sessions: list[Session]) -> dict[str, str]:
    """The runtime's word on every running session's sandbox, asked once for all of them (ECS: one call
    per 100 tasks); {} when the runtime does not answer (judged again next tick)."""
    ids = [s.container_id for s in sessions if s.status == SessionStatus.RUNNING and s.container_id]
    if not ids:
        return {}
    try:
        return dict(deps.runtime.states(ids))
    except SandboxUnavailable:
        return {}


def reap_sessions(deps: Dependencies, *, now: datetime | None = None) -> SessionReapReport:
    now = now or clock.now()
    report = SessionReapReport()
    active = list(deps.sessions.list_active())
    states = _sandbox_states(deps, active)
    for s in active:
        report.examined += 1
        verdict = _verdict(deps, s, now, states)
        if verdict is None:
            continue
        target, reason = verdict
        fields = {"error_message": reason} if target != SessionStatus.TERMINATED else {"terminated_at": now}
        try:
            ended = deps.sessions.transition(
                s.session_id, target, now=now, fields=fields, only_from=[s.status]
            )
        except StateConflict:
            continue
        destroy_sandbox(deps, ended)
        {SessionStatus.FAILED: report.failed, SessionStatus.TIMEOUT: report.expired}.get(
            target, report.idle
        ).append(s.session_id)
    return report
