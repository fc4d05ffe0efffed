"""Lifecycle state machines for sessions (FR-003) and executions (FR-017).

Repositories turn every transition into a conditional write whose condition is "the stored status is
one of `allowed_sources(target)`", so two racing writers never both win."""

from __future__ import annotations

from enum import StrEnum

from sandboxcp.domain.errors import StateConflict


class SessionStatus(StrEnum):
    CREATING = "creating"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    TERMINATED = "terminated"


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CRASHED = "crashed"


S, E = SessionStatus, ExecutionStatus

SESSION_TRANSITIONS: dict[SessionStatus, frozenset[SessionStatus]] = {
    S.CREATING: frozenset({S.RUNNING, S.FAILED, S.TERMINATED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.TIMEOUT, S.TERMINATED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.TIMEOUT: frozenset(),
    S.TERMINATED: frozenset(),
}

EXECUTION_TRANSITIONS: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    # A result may arrive before the 'running' report (it is retried separately), so pending may end directly.
    E.PENDING: frozenset({E.RUNNING, E.COMPLETED, E.FAILED, E.TIMEOUT, E.CRASHED}),
    E.RUNNING: frozenset({E.COMPLETED, E.FAILED, E.TIMEOUT, E.CRASHED}),
    E.COMPLETED: frozenset(),
    E.FAILED: frozenset(),
    E.TIMEOUT: frozenset(),
    E.CRASHED: frozenset(),
}

ACTIVE_SESSION_STATUSES = frozenset({S.CREATING, S.RUNNING})
TERMINAL_EXECUTION_STATUSES = frozenset({E.COMPLETED, E.FAILED, E.TIMEOUT, E.CRASHED})


def session_sources(target: SessionStatus) -> frozenset[SessionStatus]:
    """Statuses from which a session may move to `target`."""
    return frozenset(src for src, targets in SESSION_TRANSITIONS.items() if target in targets)


def execution_sources(target: ExecutionStatus) -> frozenset[ExecutionStatus]:
    return frozenset(src for src, targets in EXECUTION_TRANSITIONS.items() if target in targets)


def check_session_transition(current: SessionStatus, target: SessionStatus) -> None:
    if target not in SESSION_TRANSITIONS[current]:
        raise StateConflict(f"Session cannot move from '{current}' to '{target}'")


def check_execution_transition(current: ExecutionStatus, target: ExecutionStatus) -> None:
    if target not in EXECUTION_TRANSITIONS[current]:
        raise StateConflict(f"Execution cannot move from '{current}' to '{target}'")
