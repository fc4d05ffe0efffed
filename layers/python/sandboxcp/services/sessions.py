"""Session use cases: create (and start the launch workflow), read, list, terminate."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sandboxcp.domain import clock
from sandboxcp.domain.errors import InvalidParameter, SandboxUnavailable, SessionNotFound, StateConflict
from sandboxcp.domain.ids import SESSION_ID_RE, new_session_id
from sandboxcp.domain.models import Principal, Session
from sandboxcp.domain.ports import Page
from sandboxcp.domain.states import SessionStatus
from sandboxcp.observability import audit, logger, record_metric
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.doorbell import doorbell

if TYPE_CHECKING:  # request bodies are parsed by the handler; a service only reads them
    from sandboxcp.services.requests.sessions import CreateSessionRequest


def create_session(deps: Dependencies, caller: Principal, req: CreateSessionRequest) -> Session:
    template = deps.templates.get(req.template_id)
    if template is None or template.deprecated:
        raise InvalidParameter(
            f"Template '{req.template_id}' does not exist",
            solution="List templates with GET /api/v1/templates",
        )
    now = clock.now()
    session_id = new_session_id()
    session = Session(
        session_id=session_id,
        tenant_id=caller.tenant_id,
        template_id=template.id,
        status=SessionStatus.CREATING,
        runtime_type=deps.settings.runtime,
        workspace_path=f"s3://{deps.settings.workspace_bucket}/workspace/{session_id}/",
        resources=req.resources or template.default_resources,
        env_vars=req.env_vars,
        timeout=req.timeout,
        created_at=now,
        updated_at=now,
        last_activity_at=now,
    )
    deps.sessions.create(session, enforce_quota=True)  # 429 over the tenant's quota, nothing recorded
    # Imported here: the pool and placement are a create's business, not every session request's cold start.
    from sandboxcp.services import warm_pool

    try:
        running = warm_pool.claim_inline(deps, session, template)  # a free warm sandbox: running at once
    except Exception:  # the pool is a shortcut: whatever fails in it, the launch workflow still runs
        logger.exception("inline warm claim failed; launching", extra={"session_id": session_id})
        running = None
    try:
        if running is None:
            deps.launch.start(session_id)
    except Exception as err:
        # Never leave a session 'creating' with no workflow behind it.
        deps.sessions.transition(
            session_id,
            SessionStatus.FAILED,
            now=clock.now(),
            fields={"error_message": "launch workflow could not start"},
        )
        audit("session.create", "failed", session_id=session_id, template_id=template.id)
        raise SandboxUnavailable("The launch workflow could not be started") from err
    record_metric("SessionsCreated", template=template.id, tenant=caller.tenant_id)
    audit("session.create", "success", session_id=session_id, template_id=template.id)
    return running or session


def get_session(deps: Dependencies, caller: Principal, session_id: str) -> Session:
    """Another tenant's session is indistinguishable from a missing one (404)."""
    session = deps.sessions.get(session_id) if SESSION_ID_RE.fullmatch(session_id) else None
    if session is None or session.tenant_id != caller.tenant_id:
        raise SessionNotFound(f"Session '{session_id}' does not exist")
    return session


MAX_WAIT_S = 20.0  # the long poll on a session's status; the route's timeout (29 s) covers it
MAX_WAIT_PAUSE_S = 0.25  # where nobody rings (a Lambda per function): how often a waiting read looks again


def wait_for_session(
    deps: Dependencies,
    caller: Principal,
    session_id: str,
    *,
    wait_s: float,
    monotonic: Callable[[], float] = time.monotonic,
) -> Session:
    """The caller's session; while it is `creating`, wait up to `wait_s` (at most MAX_WAIT_S) for it to leave
    that state (running, failed, terminated), so a client learns it at once with one request instead of
    polling. A change made in this process rings the doorbell (the local stack); elsewhere the session is
    read again after a pause of 25 ms growing to MAX_WAIT_PAUSE_S."""
    deadline = monotonic() + max(0.0, min(wait_s, MAX_WAIT_S))
    pause = 0.025
    while True:
        seen = doorbell.rings(session_id)
        session = get_session(deps, caller, session_id)
        now = monotonic()
        if session.status != SessionStatus.CREATING or now >= deadline:
            return session
        doorbell.wait(session_id, seen, min(pause, deadline - now))
        pause = min(pause * 2, MAX_WAIT_PAUSE_S)


def running_session(
    deps: Dependencies, caller: Principal, session_id: str, *, purpose: str = "code runs"
) -> Session:
    """The caller's session, running and bound to an executor: 409 if it is not running (`purpose` says what
    needs it), 503 while it has no executor address yet."""
    session = get_session(deps, caller, session_id)
    if session.status != SessionStatus.RUNNING:
        raise StateConflict(
            f"Session '{session_id}' is {session.status}; {purpose} only in a running session",
            solution="Wait until GET /api/v1/sessions/{id} shows 'running', or create a new session",
        )
    if not session.executor_url:
        raise SandboxUnavailable(
            f"Session '{session_id}' has no executor address yet", solution="Retry in a second"
        )
    return session


def list_sessions(
    deps: Dependencies,
    caller: Principal,
    *,
    status: SessionStatus | None,
    template_id: str | None,
    limit: int,
    offset: int,
    next_token: str | None = None,
) -> Page[Session]:
    from sandboxcp.services.paging import paged

    return paged(
        deps.settings,
        f"sessions|{caller.tenant_id}|{status or ''}|{template_id or ''}",
        offset=offset,
        next_token=next_token,
        fetch=lambda start_key, with_total: deps.sessions.list_for_tenant(
            caller.tenant_id,
            status=status,
            template_id=template_id,
            limit=limit,
            offset=offset,
            start_key=start_key,
            with_total=with_total,
        ),
    )


def terminate_session(deps: Dependencies, caller: Principal, session_id: str) -> Session:
    session = get_session(deps, caller, session_id)
    if session.status in (SessionStatus.CREATING, SessionStatus.RUNNING):
        try:
            session = deps.sessions.transition(
                session_id, SessionStatus.TERMINATED, now=clock.now(), fields={"terminated_at": clock.now()}
            )
        except StateConflict:
            session = get_session(deps, caller, session_id)
        doorbell.ring(session_id)  # a long poll waiting for it to leave `creating`
    destroy_sandbox(deps, session)
    record_metric("SessionsTerminated", tenant=session.tenant_id)
    audit("session.terminate", "success", session_id=session_id, status=session.status.value)
    return session


def destroy_sandbox(deps: Dependencies, session: Session) -> None:
    """Destroy the session's sandbox if it has one; runtimes treat a sandbox already gone as done. Its code
    contexts and background processes end with it (a read of one also settles it, should this fail)."""
    from sandboxcp.services import contexts, processes  # issue #12; light, and only when a session ends

    for children in (contexts, processes):
        try:
            children.end_for_session(deps, session.session_id)
        except Exception:
            logger.exception("children not marked ended", extra={"session_id": session.session_id})
    if session.container_id:
        from sandboxcp.services.containers import keep_logs

        keep_logs(deps, session)
        deps.runtime.destroy(session.container_id)
