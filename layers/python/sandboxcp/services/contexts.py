"""Code contexts (issue #12): persistent interpreters in a session's sandbox. Executions that name one run
in it as notebook cells (services/executions.py checks the id); the executor keeps the interpreter, this
service keeps the record: who owns it, its language, and its last known status.

A context of another session or tenant is indistinguishable from a missing one (404). Contexts end with
their session: `end_for_session` marks them when the session ends, and a read of a live record whose session
has ended marks it then (the sandbox itself is gone, and its interpreters with it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from sandboxcp.domain import clock
from sandboxcp.domain.errors import (
    ContextNotFound,
    InvalidParameter,
    SandboxError,
    SessionLimitReached,
)
from sandboxcp.domain.ids import CONTEXT_ID_RE, new_context_id
from sandboxcp.domain.models import ENDED_CONTEXT_STATUSES, CodeContext, ContextStatus, Principal, Session
from sandboxcp.domain.ports import ExecutorContext
from sandboxcp.domain.states import SessionStatus
from sandboxcp.observability import audit, logger
from sandboxcp.services import live_records
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.sessions import get_session, running_session

if TYPE_CHECKING:  # request bodies are parsed by the handler; a service only reads them
    from sandboxcp.services.requests.interactive import CreateContextRequest

MAX_CONTEXTS_PER_SESSION = 8  # the executor's own limit per sandbox
RETRY_AFTER_S = 10  # a slot frees only when the client deletes a context
LIVE: tuple[ContextStatus, ...] = ("creating", "ready", "busy", "dead")


def create_context(
    deps: Dependencies, caller: Principal, session_id: str, req: CreateContextRequest
) -> CodeContext:
    session = running_session(deps, caller, session_id, purpose=live_records.PURPOSE)
    live = deps.contexts.count_live(session_id)
    if live >= MAX_CONTEXTS_PER_SESSION:
        raise SessionLimitReached(
            f"Session '{session_id}' already has {live} code contexts (limit {MAX_CONTEXTS_PER_SESSION})",
            retry_after=RETRY_AFTER_S,
            solution="Delete a context you no longer need (DELETE .../contexts/{context_id})",
        )
    now = clock.now()
    context = CodeContext(
        context_id=new_context_id(),
        session_id=session_id,
        tenant_id=caller.tenant_id,
        language=req.language,
        cwd=req.cwd,
        status="creating",
        created_at=now,
        updated_at=now,
    )
    deps.contexts.create(context)
    assert session.executor_url
    try:
        answer = deps.executor.create_context(
            session.executor_url,
            context.context_id,
            context.language,
            context.cwd,
            executor_key=session.executor_key,
        )
    except SandboxError:
        deps.contexts.delete(context.context_id)  # never made: nothing to keep
        audit("context.create", "failed", session_id=session_id, context_id=context.context_id)
        raise
    deps.sessions.touch(session_id, now)
    audit("context.create", "success", session_id=session_id, context_id=context.context_id)
    return _store(deps, context, _reported(answer))


def list_contexts(deps: Dependencies, caller: Principal, session_id: str) -> list[CodeContext]:
    """Newest first, with the status last seen (GET of one context asks the executor)."""
    session = get_session(deps, caller, session_id)
    return [_settle(deps, session, c) for c in deps.contexts.list_for_session(session_id)]


def get_context(deps: Dependencies, caller: Principal, session_id: str, context_id: str) -> CodeContext:
    session = get_session(deps, caller, session_id)
    context = _settle(deps, session, find_context(deps, session, context_id))
    if context.status in ENDED_CONTEXT_STATUSES or session.status != SessionStatus.RUNNING:
        return context
    if not session.executor_url:
        return context
    try:
        answer = deps.executor.get_context(
            session.executor_url, context_id, executor_key=session.executor_key
        )
    except ContextNotFound:
        return _store(deps, context, _gone())
    except SandboxError as err:  # the last known status is still an answer
        logger.info("context status not refreshed", extra={"context_id": context_id, "reason": err.detail})
        return context
    return _store(deps, context, _reported(answer))


def delete_context(deps: Dependencies, caller: Principal, session_id: str, context_id: str) -> CodeContext:
    """Delete it in the sandbox, then mark it deleted. Deleting a deleted or ended context changes nothing."""
    session = get_session(deps, caller, session_id)
    context = _settle(deps, session, find_context(deps, session, context_id))
    if context.status in ENDED_CONTEXT_STATUSES:
        return context
    if session.status == SessionStatus.RUNNING and session.executor_url:
        with suppress(ContextNotFound):  # already gone in the sandbox
            deps.executor.delete_context(session.executor_url, context_id, executor_key=session.executor_key)
    now = clock.now()
    audit("context.delete", "success", session_id=session_id, context_id=context_id)
    return _store(deps, context, {"status": "deleted", "ended_at": now})


def restart_context(deps: Dependencies, caller: Principal, session_id: str, context_id: str) -> CodeContext:
    """A fresh interpreter in place of the old one (its variables are gone); the id stays."""
    session = running_session(deps, caller, session_id, purpose=live_records.PURPOSE)
    context = live_context(deps, session, context_id)
    assert session.executor_url
    try:
        answer = deps.executor.restart_context(
            session.executor_url, context_id, executor_key=session.executor_key
        )
    except ContextNotFound:
        _store(deps, context, _gone())
        raise
    deps.sessions.touch(session_id, clock.now())
    audit("context.restart", "success", session_id=session_id, context_id=context_id)
    return _store(deps, context, _reported(answer))


def find_context(deps: Dependencies, session: Session, context_id: str) -> CodeContext:
    context = deps.contexts.get(context_id) if CONTEXT_ID_RE.fullmatch(context_id) else None
    if context is None or context.session_id != session.session_id or context.tenant_id != session.tenant_id:
        raise ContextNotFound(f"Context '{context_id[:64]}' does not exist in session '{session.session_id}'")
    return context


def live_context(deps: Dependencies, session: Session, context_id: str) -> CodeContext:
    """A context of `session` that is neither deleted nor ended (404 otherwise: it is gone)."""
    context = find_context(deps, session, context_id)
    if context.status in ENDED_CONTEXT_STATUSES:
        raise ContextNotFound(
            f"Context '{context_id}' was {context.status}",
            solution="Create a new context with POST /api/v1/sessions/{id}/contexts",
        )
    return context


def context_for_execution(
    deps: Dependencies, session: Session, context_id: str, language: str
) -> CodeContext:
    """The context an execution names: live, of this session, in the execution's language."""
    context = live_context(deps, session, context_id)
    if context.language != language:
        raise InvalidParameter(
            f"Context '{context_id}' runs {context.language}; the execution is {language}",
            solution="Send the context's language, or create a context for this language",
        )
    return context


def end_for_session(deps: Dependencies, session_id: str) -> int:
    """Mark the session's live contexts ended (the sandbox is gone with it). Returns how many."""
    return live_records.end_for_session(deps.contexts, session_id, live=LIVE)


# --- helpers -------------------------------------------------------------------------------------------


def _reported(answer: ExecutorContext) -> dict[str, Any]:
    return {"status": answer.status, "executions": answer.executions, "restarts": answer.restarts}


def _gone() -> dict[str, Any]:
    return {
        "status": "ended",
        "ended_at": clock.now(),
        "error_message": "The sandbox no longer has this context (its executor restarted)",
    }


def _settle(deps: Dependencies, session: Session, context: CodeContext) -> CodeContext:
    is_live = context.status not in ENDED_CONTEXT_STATUSES
    return live_records.settle(
        deps.contexts,
        context.context_id,
        context,
        session,
        is_live=is_live,
        live=LIVE,
        not_found=_not_found(context),
    )


def _store(deps: Dependencies, context: CodeContext, fields: Mapping[str, Any]) -> CodeContext:
    return live_records.store(
        deps.contexts, context.context_id, context, fields, live=LIVE, not_found=_not_found(context)
    )


def _not_found(context: CodeContext) -> Callable[[], ContextNotFound]:
    return lambda: ContextNotFound(f"Context '{context.context_id}' does not exist")
