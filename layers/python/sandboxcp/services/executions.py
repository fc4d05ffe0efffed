"""Execution use cases seen by clients: submit code to a running session, read status and results."""

from __future__ import annotations

import time

from sandboxcp.domain import clock
from sandboxcp.domain.errors import (
    ExecutionNotFound,
    SandboxError,
)
from sandboxcp.domain.ids import EXECUTION_ID_RE, new_execution_id
from sandboxcp.domain.models import Execution, Principal, Session
from sandboxcp.domain.ports import Page
from sandboxcp.domain.states import TERMINAL_EXECUTION_STATUSES, ExecutionStatus
from sandboxcp.observability import audit, record_metric
from sandboxcp.services.contexts import context_for_execution
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.files import workspace_plan
from sandboxcp.services.output import doorbell
from sandboxcp.services.requests import ExecuteRequest
from sandboxcp.services.sessions import get_session, running_session

# Executions pending or running in one session before the API answers 429 (the executor runs them in order).
MAX_INFLIGHT_PER_SESSION = 32
SYNC_WAIT_S = 25.0


def submit_execution(
    deps: Dependencies, caller: Principal, session_id: str, req: ExecuteRequest
) -> Execution:
    session = running_session(deps, caller, session_id)
    if req.context_id is not None:  # a cell in a live context of this session, in its language
        context_for_execution(deps, session, req.context_id, req.language)
    now = clock.now()
    execution = Execution(
        execution_id=new_execution_id(now),
        session_id=session_id,
        tenant_id=caller.tenant_id,
        status=ExecutionStatus.PENDING,
        code=req.code,
        language=req.language,
        timeout=req.timeout,
        event=req.event,
        context_id=req.context_id,
        created_at=now,
    )
    # Recorded before hand-off: an accepted execution is never lost. One transaction takes the tenant's
    # and the session's in-flight slots (429 over either) and marks the session active.
    deps.executions.create(execution, enforce_quota=True, session_limit=MAX_INFLIGHT_PER_SESSION)
    try:
        dispatch(deps, session, execution)
    except SandboxError as err:
        deps.executions.transition(
            execution.execution_id,
            ExecutionStatus.FAILED,
            now=clock.now(),
            fields={"error_message": err.detail, "completed_at": clock.now()},
        )
        audit("execution.submit", "failed", session_id=session_id, execution_id=execution.execution_id)
        raise
    record_metric("ExecutionsSubmitted", language=execution.language, tenant=execution.tenant_id)
    audit(
        "execution.submit",
        "success",
        session_id=session_id,
        execution_id=execution.execution_id,
        language=execution.language,
    )
    return execution


def dispatch(deps: Dependencies, session: Session, execution: Execution) -> None:
    """Post an execution to its session's executor with the run's workspace plan (presigned URLs)."""
    assert session.executor_url
    deps.executor.submit(
        session.executor_url,
        execution,
        workspace_plan(deps, session, listing=False),
        executor_key=session.executor_key,
    )


def execute_and_wait(
    deps: Dependencies,
    caller: Principal,
    session_id: str,
    req: ExecuteRequest,
    *,
    wait_s: float = SYNC_WAIT_S,
) -> Execution:
    """Submit, then wait for the end up to `wait_s` (below API Gateway's 29 s); the caller polls past it."""
    execution = submit_execution(deps, caller, session_id, req)
    deadline = time.monotonic() + min(wait_s, req.timeout + 5)
    delay = 0.01
    rung = 0  # a new execution's bell: any ring so far (a chunk, its end) already counts as news
    while True:
        # Waited on before the first read, which is then rarely wasted. Woken at once when the result is
        # stored in this process (the local stack); in AWS the result arrives in another function, and this
        # is a poll every `delay`.
        doorbell.wait(execution.execution_id, rung, delay)
        rung = doorbell.rings(execution.execution_id)
        current = deps.executions.get(execution.execution_id)
        if current is not None and (
            current.status in TERMINAL_EXECUTION_STATUSES or time.monotonic() >= deadline
        ):
            return current
        delay = min(delay * 1.5, 0.25)


def get_execution(
    deps: Dependencies, caller: Principal, execution_id: str, *, with_outcome: bool = True
) -> Execution:
    execution = (
        deps.executions.get(execution_id, with_outcome=with_outcome)
        if EXECUTION_ID_RE.fullmatch(execution_id)
        else None
    )
    if execution is None or execution.tenant_id != caller.tenant_id:
        raise ExecutionNotFound(f"Execution '{execution_id}' does not exist")
    return execution


def list_executions(
    deps: Dependencies,
    caller: Principal,
    session_id: str,
    *,
    status: ExecutionStatus | None,
    limit: int,
    offset: int,
    next_token: str | None = None,
) -> Page[Execution]:
    from sandboxcp.services.paging import paged

    get_session(deps, caller, session_id)
    return paged(
        deps.settings,
        f"executions|{caller.tenant_id}|{session_id}|{status or ''}",
        offset=offset,
        next_token=next_token,
        fetch=lambda start_key, with_total: deps.executions.list_for_session(
            session_id,
            status=status,
            limit=limit,
            offset=offset,
            start_key=start_key,
            with_total=with_total,
        ),
    )
