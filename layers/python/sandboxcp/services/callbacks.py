"""Use cases behind the internal API: what a sandbox's executor reports. `caller_session` is the session
whose callback token authenticated the request; a token never reaches another session's resources."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox_executor.contract import EXECUTOR_FEATURES
from sandboxcp.domain import clock
from sandboxcp.domain.errors import ExecutionNotFound, Forbidden, SessionNotFound, StateConflict
from sandboxcp.domain.models import Execution, ExecutionOutcome
from sandboxcp.domain.states import TERMINAL_EXECUTION_STATUSES, ExecutionStatus, SessionStatus
from sandboxcp.observability import record_metric
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.doorbell import doorbell
from sandboxcp.services.files import presigned_gets, workspace_plan
from sandboxcp.services.output import publish_complete
from sandboxcp.services.sessions import destroy_sandbox

if TYPE_CHECKING:  # request bodies are parsed by the handler; a service only reads them
    from sandboxcp.services.requests.reports import (
        ContainerExitedReport,
        ContainerReadyReport,
        ExecutionStatusReport,
        WorkspaceUrlsRequest,
    )


def _own_session(caller_session: str, session_id: str) -> None:
    if caller_session != session_id:
        raise Forbidden(f"This callback token is not valid for session '{session_id}'")


def _own_execution(deps: Dependencies, caller_session: str, execution_id: str) -> Execution:
    execution = deps.executions.get(execution_id)
    if execution is None:
        raise ExecutionNotFound(f"Execution '{execution_id}' does not exist")
    if execution.session_id != caller_session:
        raise Forbidden(f"This callback token is not valid for execution '{execution_id}'")
    return execution


def container_ready(
    deps: Dependencies, caller_session: str, session_id: str, report: ContainerReadyReport
) -> str:
    _own_session(caller_session, session_id)
    now = clock.now()
    features = [name for name in EXECUTOR_FEATURES if name in report.features]  # known ones, in order
    fields: dict[str, object] = {
        "started_at": report.ready_at or now,
        "last_activity_at": now,
        "executor_features": features,
    }
    # The executor's address comes from the runtime, never from the report: a sandbox must not be able
    # to point the control plane at another address (another sandbox's executor, a host service).
    address = _runtime_address(deps, session_id)
    if address:
        fields["executor_url"] = address
    try:
        session = deps.sessions.transition(session_id, SessionStatus.RUNNING, now=now, fields=fields)
    except StateConflict:
        current = deps.sessions.get(session_id)
        if current is not None and current.status == SessionStatus.RUNNING:
            # A repeated report, or a pooled executor bound by an inline claim (the session was running
            # before its executor said anything): only what the executor can do may be news.
            if current.executor_features != features:
                deps.sessions.update_fields(
                    session_id, {"executor_features": features}, only_if=(SessionStatus.RUNNING,)
                )
            return "already running"
        raise
    doorbell.ring(session_id)  # a long poll waiting for the session to leave `creating` answers at once
    launch_ms = (now - session.created_at).total_seconds() * 1000
    record_metric(
        "LaunchLatency",
        launch_ms,
        unit="Milliseconds",
        runtime=session.runtime_type,
        tenant=session.tenant_id,
    )
    if session.task_token:
        deps.launch.notify_ready(session.task_token, {"session_id": session_id, "status": "running"})
    return "ready"


def _runtime_address(deps: Dependencies, session_id: str) -> str | None:
    """For runtimes whose start returns no address (eks: the Pod IP, known only once it runs), ask the
    runtime now; None when the session already has one (process, docker) or the
    runtime cannot tell yet."""
    if deps.runtime.addresses_at_start:  # process, docker, ecs: start gave it; no extra read here
        return None
    session = deps.sessions.get(session_id)
    if session is None or session.executor_url or not session.container_id:
        return None
    return deps.runtime.executor_url(session.container_id)


def container_exited(
    deps: Dependencies, caller_session: str, session_id: str, report: ContainerExitedReport
) -> str:
    _own_session(caller_session, session_id)
    session = deps.sessions.get(session_id)
    if session is None:
        raise SessionNotFound(f"Session '{session_id}' does not exist")
    if session.status not in (SessionStatus.CREATING, SessionStatus.RUNNING):
        return f"session already {session.status}"
    reason = f"sandbox exited with code {report.exit_code} ({report.exit_reason or 'unknown'})"
    try:
        session = deps.sessions.transition(
            session_id, SessionStatus.FAILED, now=clock.now(), fields={"error_message": reason}
        )
    except StateConflict:
        return "session already ended"
    destroy_sandbox(deps, session)
    return "recorded"


def execution_status(
    deps: Dependencies, caller_session: str, execution_id: str, report: ExecutionStatusReport
) -> Execution:
    _own_execution(deps, caller_session, execution_id)
    now = clock.now()
    fields: dict[str, Any]
    if report.status == "running":
        fields = {"started_at": report.started_at or now, "last_heartbeat_at": now}
        return deps.executions.transition(execution_id, ExecutionStatus.RUNNING, now=now, fields=fields)
    fields = {"completed_at": now, "error_message": report.error}
    ended = deps.executions.transition(execution_id, ExecutionStatus(report.status), now=now, fields=fields)
    publish_complete(deps, execution_id)  # live-output subscribers (docs/streaming.md)
    return ended


def heartbeat(deps: Dependencies, caller_session: str, execution_id: str) -> None:
    """A beat is activity: it keeps the execution from being taken for crashed and its session from
    being taken for idle (an execution may run far longer than the 30-minute idle limit)."""
    execution = _own_execution(deps, caller_session, execution_id)
    now = clock.now()
    deps.executions.heartbeat(execution_id, now)
    deps.sessions.touch(execution.session_id, now)


def record_result(
    deps: Dependencies, caller_session: str, execution_id: str, outcome: ExecutionOutcome
) -> tuple[Execution, bool]:
    """Store the outcome once. Returns (execution, created): a repeat returns the stored outcome unchanged."""
    now = clock.now()
    try:
        # The store reads the execution once, and refuses another session's (403) before writing anything.
        stored = deps.executions.record_outcome(execution_id, outcome, now=now, owner_session=caller_session)
    except StateConflict:  # absent (404), or already ended: a repeat gets the stored outcome
        current = _own_execution(deps, caller_session, execution_id)
        if current.status not in TERMINAL_EXECUTION_STATUSES:
            raise
        return current, False
    # The store also marked the session active (it gave back the execution's slot in the same write).
    publish_complete(deps, execution_id)
    record_metric("ExecutionsCompleted", outcome=outcome.status, tenant=stored.tenant_id)
    record_metric(
        "ExecutionDuration",
        outcome.metrics.duration_ms,
        unit="Milliseconds",
        language=stored.language,
        tenant=stored.tenant_id,
    )
    return stored, True


def workspace_urls(
    deps: Dependencies, caller_session: str, session_id: str, request: WorkspaceUrlsRequest
) -> dict[str, Any]:
    """The workspace's plan with its listing, or with `paths` presigned GETs of those paths alone."""
    _own_session(caller_session, session_id)
    session = deps.sessions.get(session_id)
    if session is None:
        raise SessionNotFound(f"Session '{session_id}' does not exist")
    if request.paths is not None:
        return {"urls": presigned_gets(deps, session, request.paths)}
    return workspace_plan(deps, session, presigned=request.urls)
