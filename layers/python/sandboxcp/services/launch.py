"""The launch workflow's steps (each a Lambda task of the launch state machine)."""

from __future__ import annotations

from typing import Any

from sandboxcp.domain import clock
from sandboxcp.domain.errors import SandboxError, SessionNotFound, StateConflict
from sandboxcp.domain.models import Session
from sandboxcp.domain.ports import SandboxHandle, SandboxSpec
from sandboxcp.domain.states import SessionStatus
from sandboxcp.observability import logger, record_metric
from sandboxcp.services import warm_pool
from sandboxcp.services.auth import hash_secret, new_callback_token
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.doorbell import doorbell
from sandboxcp.services.placement import Demand
from sandboxcp.services.sessions import destroy_sandbox

_CREATING = (SessionStatus.CREATING,)
_BIND_WAIT_S = 30.0  # a cold executor boots in well under a second; an image pull may not


def place_session(deps: Dependencies, session_id: str) -> dict[str, str]:
    """Choose where the session runs: the deployment's runtime, and the node placement scores best
    (services/placement.py: a free warm sandbox of the template, template affinity, load; healthy nodes
    with room only). The start step then uses exactly that node."""
    from sandboxcp.services.nodes import choose_node

    runtime = deps.settings.runtime
    session = deps.sessions.get(session_id)
    if session is None:
        raise SessionNotFound(f"Session '{session_id}' does not exist")
    template = deps.templates.get(session.template_id)
    demand = Demand(
        session.template_id,
        template.image if template else "",
        session.resources.cpu_cores,
        session.resources.memory_mb,
        warm_eligible=bool(template and warm_pool.eligible(deps, session, template)),
    )
    warm = warm_pool.available_everywhere(deps)
    chosen = choose_node(deps, runtime, demand, warm, reserve=True)
    deps.sessions.update_fields(
        session_id, {"runtime_type": runtime, "runtime_node": chosen.node_id}, only_if=_CREATING
    )
    return {"runtime": runtime, "node": chosen.node_id}


def start_sandbox(deps: Dependencies, session_id: str, task_token: str) -> dict[str, Any]:
    """Start the sandbox with a fresh callback token. The workflow then waits for container_ready."""
    session = deps.sessions.get(session_id)
    if session is None:
        raise SessionNotFound(f"Session '{session_id}' does not exist")
    template = deps.templates.get(session.template_id)
    token = new_callback_token(session_id)
    # Token hash and task token are written before the sandbox exists: its first call may be immediate.
    deps.sessions.update_fields(
        session_id, {"callback_token_hash": hash_secret(token), "task_token": task_token}, only_if=_CREATING
    )
    spec = SandboxSpec(
        session_id=session_id,
        image=template.image if template else "",
        node=session.runtime_node,  # placement's choice (place_session)
        resources=session.resources,
        network_enabled=bool(template and template.network_enabled),
        env={
            **session.env_vars,
            "SANDBOXCP_SESSION_ID": session_id,
            **({"SANDBOXCP_S3_VIA": deps.settings.sandbox_s3_via} if deps.settings.sandbox_s3_via else {}),
        },
        callback_token=token,
    )
    handle = template and warm_pool.claim(
        deps, session, template, token, node=session.runtime_node, record=lambda h: _record(deps, session, h)
    )
    if not handle:
        handle = _start_cold(deps, spec)
        try:
            _record(deps, session, handle)
        except Exception:
            deps.runtime.destroy(handle.container_id)  # terminated while starting: leave nothing behind
            raise
        if handle.executor_url:
            # Where the runtime gives the executor's address now (process, docker, ecs), hand the executor
            # its token and the session's env vars over that connection (the trust boundary: never in the
            # sandbox's environment, nor in RunTask's overrides).
            try:
                deps.executor.bind(
                    handle.executor_url, session_id, token, session.env_vars, wait_s=_BIND_WAIT_S
                )
            except SandboxError:
                deps.runtime.destroy(handle.container_id)
                raise
    return {"container_id": handle.container_id}


def _start_cold(deps: Dependencies, spec: SandboxSpec) -> SandboxHandle:
    try:
        return deps.runtime.start(spec)
    except Exception:
        record_metric("SandboxStartFailures", runtime=deps.runtime.name)
        raise


def _record(deps: Dependencies, session: Session, handle: SandboxHandle) -> None:
    """Write the session's sandbox (id, node, executor address) before the executor is bound: a bound
    executor reports container_ready at once, and the session must not be `running` without them (an
    execution or a delete in that gap would find no sandbox)."""
    fields: dict[str, Any] = {"container_id": handle.container_id, "runtime_node": handle.node}
    if session.runtime_node and handle.node != session.runtime_node:
        # A runtime that cannot honour the choice must not hide it: the record says where it really runs.
        logger.warning(
            "sandbox started off its placed node", extra={"placed": session.runtime_node, "node": handle.node}
        )
    if handle.executor_url:
        fields["executor_url"] = handle.executor_url
    deps.sessions.update_fields(session.session_id, fields, only_if=(SessionStatus.CREATING,))


def mark_launch_failed(deps: Dependencies, session_id: str, error: Any) -> dict[str, str]:
    detail = error.get("Error", "LaunchError") if isinstance(error, dict) else str(error)
    try:
        session = deps.sessions.transition(
            session_id,
            SessionStatus.FAILED,
            now=clock.now(),
            fields={"error_message": f"launch failed: {detail}"},
            only_from=_CREATING,  # a session that became ready in the meantime stays running
        )
    except StateConflict:
        current = deps.sessions.get(session_id)
        if current is None or current.status == SessionStatus.RUNNING:
            return {"status": current.status.value if current else "missing"}
        session = current
    doorbell.ring(session_id)  # a long poll waiting for the session to leave `creating`
    destroy_sandbox(deps, session)
    return {"status": session.status}
