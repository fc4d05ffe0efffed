"""Crash detection and retries (FR-022, FR-023), and the control plane's own timeout enforcement (FR-014).

Executors heartbeat every 5 s for each execution they hold. An execution with no heartbeat for 15 s is
`crashed` and retried up to 3 times, after 1, 2, 4 s (doubling, at most 10 s); each retry is a new
execution linked to the original by `parent_execution_id` and `retry_count`. A running execution past its
timeout plus a grace period is `timeout` even if its executor never says so.

The backoff is stored, never slept: the retry is recorded at once (`pending`, visible to clients) with a
`retry_after` time, and the first run at or after that time hands it to the executor, claiming it with a
conditional write (two overlapping runs never both send it). A retry so goes out at the first tick after
its backoff (ticks are 5 s apart); until then its crash clock does not run.

Runs every 5 s (see docs/architecture.md: an Express state machine loop in AWS, the local ticker locally)
and reads only the sparse `inflight` index, so its cost grows with active executions, not with history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sandboxcp.domain import clock
from sandboxcp.domain.errors import ContextUnavailable, SandboxUnavailable, StateConflict
from sandboxcp.domain.ids import new_execution_id
from sandboxcp.domain.models import Execution, ExecutionMetrics, ExecutionOutcome
from sandboxcp.domain.states import ExecutionStatus, SessionStatus
from sandboxcp.observability import logger
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.executions import dispatch

HEARTBEAT_TIMEOUT = timedelta(seconds=15)
TIMEOUT_GRACE = timedelta(seconds=10)
MAX_RETRIES = 3


def backoff_seconds(retry_number: int) -> float:
    """Delay before retry n (1-based): 1, 2, 4, 8 ... capped at 10 s."""
    return float(min(2 ** (retry_number - 1), 10))


@dataclass
class ReapReport:
    crashed: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)  # retries handed to the executor in this run
    scheduled: list[str] = field(default_factory=list)  # retries recorded, waiting for their backoff
    examined: int = 0


def _deadline(e: Execution) -> datetime:
    return (e.started_at or e.created_at) + timedelta(seconds=e.timeout) + TIMEOUT_GRACE


def reap_executions(deps: Dependencies, *, now: datetime | None = None) -> ReapReport:
    now = now or clock.now()
    report = ReapReport()
    for e in deps.executions.list_inflight():
        report.examined += 1
        try:
            if e.retry_after is not None:  # a retry waiting for its backoff: no crash clock yet
                due = e.status == ExecutionStatus.PENDING and now >= e.retry_after
                if due and send_retry(deps, e, now):
                    report.retried.append(e.execution_id)
                continue
            if e.status == ExecutionStatus.RUNNING and now > _deadline(e):
                _enforce_timeout(deps, e, now)
                report.timed_out.append(e.execution_id)
            elif now - (e.last_heartbeat_at or e.created_at) > HEARTBEAT_TIMEOUT:
                deps.executions.transition(
                    e.execution_id,
                    ExecutionStatus.CRASHED,
                    now=now,
                    fields={"completed_at": now, "error_message": "no heartbeat from the executor for 15 s"},
                )
                report.crashed.append(e.execution_id)
                if e.retry_count < MAX_RETRIES:
                    retry = retry_execution(deps, e, now=now)
                    if retry is not None:
                        report.scheduled.append(retry.execution_id)
        except StateConflict:
            continue  # it finished (or was reaped) while we looked: the other writer won
    return report


def _enforce_timeout(deps: Dependencies, e: Execution, now: datetime) -> None:
    seconds = (now - (e.started_at or e.created_at)).total_seconds()
    outcome = ExecutionOutcome(
        status="timeout",
        stderr=f"Execution timeout after {e.timeout} seconds (enforced by the control plane)",
        exit_code=-1,
        execution_time=seconds,
        metrics=ExecutionMetrics(duration_ms=seconds * 1000),
    )
    deps.executions.record_outcome(e.execution_id, outcome, now=now)


def retry_execution(
    deps: Dependencies, crashed: Execution, *, now: datetime | None = None
) -> Execution | None:
    """Record a crashed execution's retry in its session, linked to the original, due after its backoff
    (`retry_after`; a later run of the reaper sends it)."""
    session = deps.sessions.get(crashed.session_id)
    if session is None or session.status != SessionStatus.RUNNING or not session.executor_url:
        return None
    now = now or clock.now()
    due = now + timedelta(seconds=backoff_seconds(crashed.retry_count + 1))
    retry = crashed.model_copy(
        update={
            "execution_id": new_execution_id(now),
            "status": ExecutionStatus.PENDING,
            "retry_count": crashed.retry_count + 1,
            "parent_execution_id": crashed.parent_execution_id or crashed.execution_id,
            "created_at": now,
            "started_at": None,
            "completed_at": None,
            "last_heartbeat_at": due,
            "retry_after": due,
            "outcome": None,
            "error_message": None,
        }
    )
    try:
        deps.executions.create(retry)  # counted in the tenant's in-flight quota, never refused by it
    except ContextUnavailable:
        return None  # a cell whose context is gone: there is nowhere to run it again
    return retry


def send_retry(deps: Dependencies, retry: Execution, now: datetime) -> bool:
    """Hand a due retry to its session's executor; False when another run claimed it first."""
    assert retry.retry_after is not None
    if not deps.executions.claim_retry(retry.execution_id, retry.retry_after, now):
        return False
    session = deps.sessions.get(retry.session_id)
    if session is None or session.status != SessionStatus.RUNNING or not session.executor_url:
        deps.executions.transition(
            retry.execution_id,
            ExecutionStatus.FAILED,
            now=now,
            fields={"completed_at": now, "error_message": "the session ended before the retry could run"},
        )
        return False
    try:
        dispatch(deps, session, retry.model_copy(update={"retry_after": None}))
    except SandboxUnavailable as err:
        # Left pending: with no heartbeat it is reaped as crashed and retried again, up to the limit.
        logger.warning(
            "retry not delivered yet", extra={"execution_id": retry.execution_id, "reason": err.detail}
        )
    return True
