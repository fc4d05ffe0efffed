"""Execution use cases seen by clients: submit code to a running session, read status and results."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sandbox_executor.contract import WORKSPACE_PRESIGN_ON_DEMAND
from sandboxcp.domain import clock
from sandboxcp.domain.errors import (
    ContextUnavailable,
    ExecutionNotFound,
    SandboxError,
    SessionChanged,
    StateConflict,
)
from sandboxcp.domain.ids import CONTEXT_ID_RE, EXECUTION_ID_RE, new_execution_id
from sandboxcp.domain.models import Execution, ExecutionOutcome, Principal, Session
from sandboxcp.domain.ports import Page
from sandboxcp.domain.states import TERMINAL_EXECUTION_STATUSES, ExecutionStatus
from sandboxcp.observability import audit, record_metric
from sandboxcp.services.callbacks import record_result
from sandboxcp.services.contexts import context_for_execution
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.doorbell import doorbell
from sandboxcp.services.files import workspace_plan
from sandboxcp.services.output import publish_complete
from sandboxcp.services.sessions import get_session, running_session

if TYPE_CHECKING:  # request bodies are parsed by the handler; a service only reads them
    from sandboxcp.services.requests.executions import ExecuteRequest

# Executions pending or running in one session before the API answers 429 (the executor runs them in order).
MAX_INFLIGHT_PER_SESSION = 32
SYNC_WAIT_S = 25.0


def submit_execution(
    deps: Dependencies, caller: Principal, session_id: str, req: ExecuteRequest
) -> Execution:
    return _submit(deps, caller, session_id, req)[0]


def _submit(
    deps: Dependencies, caller: Principal, session_id: str, req: ExecuteRequest, *, wait_s: float = 0.0
) -> tuple[Execution, dict[str, Any] | None]:
    """The execution, and its result if the executor answered with it (`wait_s`, see dispatch)."""
    kept = deps.recent_sessions.get(caller.tenant_id, session_id)
    session = kept or running_session(deps, caller, session_id)
    if req.context_id is not None and not CONTEXT_ID_RE.fullmatch(req.context_id):
        context_for_execution(deps, session, req.context_id, req.language)  # says it does not exist
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
    # A cell's context is checked in the same write (live, of this session, in its language); only when
    # that fails is the context read, to say why.
    try:
        session = _record(deps, caller, session, execution, remember=wait_s > 0, kept=kept is not None)
    except ContextUnavailable:
        assert req.context_id is not None
        context_for_execution(deps, session, req.context_id, req.language)
        raise
    try:
        answer = dispatch(deps, session, execution, wait_s=wait_s)
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
    return execution, answer


def _record(
    deps: Dependencies,
    caller: Principal,
    session: Session,
    execution: Execution,
    *,
    remember: bool,
    kept: bool,
) -> Session:
    """Record the execution, conditioned on the session being as read; a session `kept` from this
    instance's earlier read (services/recent_sessions.py) that has changed since is read again, once.
    Returns the session the run is sent with. A run answered within the wait ends here: the store keeps
    what it wrote (`remember`) to end it without a read."""

    def create(as_read: Session) -> None:
        deps.executions.create(
            execution,
            enforce_quota=True,
            session_limit=MAX_INFLIGHT_PER_SESSION,
            remember=remember,
            session_as_read=as_read,
        )

    try:
        create(session)
    except SessionChanged:
        deps.recent_sessions.drop(session.session_id)
        if not kept:
            raise  # changed between this request's own read and write: the client retries (409)
        session = running_session(deps, caller, session.session_id)
        create(session)
    except StateConflict:  # no longer running, or the cell's context is gone
        deps.recent_sessions.drop(session.session_id)
        raise
    deps.recent_sessions.put(session)
    return session


def dispatch(
    deps: Dependencies, session: Session, execution: Execution, *, wait_s: float = 0.0
) -> dict[str, Any] | None:
    """Post an execution to its session's executor with the run's workspace plan (presigned URLs). With
    `wait_s`, the executor holds its answer until the run ends (up to `wait_s`) and answers with the
    result, which it then does not report by callback: the caller must store it."""
    assert session.executor_url
    return deps.executor.submit(
        session.executor_url,
        execution,
        # An executor that presigns on demand gets a listing without URLs even while a presigned upload may
        # land (the plan lists the files then): it asks for GETs of only the files it lacks.
        workspace_plan(
            deps,
            session,
            listing=False,
            presigned=WORKSPACE_PRESIGN_ON_DEMAND not in session.executor_features,
        ),
        executor_key=session.executor_key,
        wait_s=wait_s,
    )


def execute_and_wait(
    deps: Dependencies,
    caller: Principal,
    session_id: str,
    req: ExecuteRequest,
    *,
    wait_s: float = SYNC_WAIT_S,
) -> Execution:
    """Submit, then wait for the end up to `wait_s` (below API Gateway's 29 s); the caller polls past it.
    The executor answers with the result when the run ends in that time: stored here, as the result
    callback would have (one round trip fewer than the callback and a read)."""
    window = min(wait_s, req.timeout + 5)
    started = time.monotonic()
    execution, answer = _submit(deps, caller, session_id, req, wait_s=window)
    if answer is not None:
        return _store_answer(deps, execution, answer)
    deadline = started + window
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


def _store_answer(deps: Dependencies, execution: Execution, answer: dict[str, Any]) -> Execution:
    """Store the result the executor answered with, exactly as its callback would have been stored (the
    body is the sandbox's word, checked the same way: a malformed one fails the execution, saying so)."""
    try:
        outcome = ExecutionOutcome.model_validate(answer)
    except ValidationError as err:
        now = clock.now()
        detail = f"The executor answered with an invalid result ({err.error_count()} problems)"
        try:
            failed = deps.executions.transition(
                execution.execution_id,
                ExecutionStatus.FAILED,
                now=now,
                fields={"error_message": detail, "completed_at": now},
            )
        except StateConflict:  # ended meanwhile (reaped): what is stored stands
            return deps.executions.get(execution.execution_id) or execution
        publish_complete(deps, execution.execution_id)
        return failed
    stored, _created = record_result(deps, execution.session_id, execution.execution_id, outcome)
    return stored


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
