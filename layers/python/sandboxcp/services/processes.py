"""Background processes (issue #12): commands that run in a session's sandbox until they exit, are signalled
or the session ends. The executor runs them and posts their output (stream id = process id, through
services/output.py) and, with its last post, the exit; this service keeps the record.

A process of another session or tenant is indistinguishable from a missing one (404). Reads refresh a
running record from the executor while the session runs; processes end with their session like contexts
(services/contexts.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field

from sandboxcp.domain import clock
from sandboxcp.domain.errors import (
    Forbidden,
    ProcessNotFound,
    SandboxError,
    SessionLimitReached,
    StateConflict,
)
from sandboxcp.domain.ids import PROCESS_ID_RE, new_process_id
from sandboxcp.domain.inputs import JsonBody
from sandboxcp.domain.models import (
    LIVE_PROCESS_STATUSES,
    BackgroundProcess,
    Principal,
    ProcessStatus,
    Session,
)
from sandboxcp.domain.output import MAX_CHUNKS_PER_BATCH, OutputPage
from sandboxcp.domain.ports import ExecutorProcess
from sandboxcp.domain.states import SessionStatus
from sandboxcp.observability import audit, logger
from sandboxcp.services import live_records, output
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.sessions import get_session, running_session

if TYPE_CHECKING:  # request bodies are parsed by the handler; a service only reads them
    from sandboxcp.services.requests.interactive import CreateProcessRequest, Signal

MAX_LIVE_PROCESSES_PER_SESSION = 16  # the executor's own limit per sandbox
RETRY_AFTER_S = 5
LIVE: tuple[ProcessStatus, ...] = ("starting", "running")


class ProcessExit(JsonBody):
    exit_code: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)
    signal: int | None = Field(default=None, ge=0, le=128)
    ended_at: datetime


class ProcessOutputReport(output.OutputBatch):
    """The executor's post for a background process: output chunks (as for executions; none is fine on the
    last post) and, on the last post only, how the process ended."""

    chunks: list[output.OutputChunkReport] = Field(default_factory=list, max_length=MAX_CHUNKS_PER_BATCH)
    exit: ProcessExit | None = None


def start_process(
    deps: Dependencies, caller: Principal, session_id: str, req: CreateProcessRequest
) -> BackgroundProcess:
    session = running_session(deps, caller, session_id, purpose=live_records.PURPOSE)
    live = deps.processes.count_live(session_id)
    if live >= MAX_LIVE_PROCESSES_PER_SESSION:
        _reconcile(deps, session)  # an exit the executor could not report yet frees its slot
        live = deps.processes.count_live(session_id)
    if live >= MAX_LIVE_PROCESSES_PER_SESSION:
        raise SessionLimitReached(
            f"Session '{session_id}' already has {live} processes running "
            f"(limit {MAX_LIVE_PROCESSES_PER_SESSION})",
            retry_after=RETRY_AFTER_S,
            solution="Wait for one to exit, or stop one (POST .../processes/{process_id}/signal)",
        )
    now = clock.now()
    process = BackgroundProcess(
        process_id=new_process_id(),
        session_id=session_id,
        tenant_id=caller.tenant_id,
        cmd=req.cmd,
        cwd=req.cwd,
        status="starting",
        created_at=now,
        updated_at=now,
    )
    deps.processes.create(process)  # recorded first: output and exit posted early find it
    assert session.executor_url
    try:
        answer = deps.executor.start_process(
            session.executor_url,
            process.process_id,
            req.cmd,
            req.cwd,
            req.env,
            executor_key=session.executor_key,
        )
    except SandboxError as err:
        _store(deps, process, {"status": "failed", "error_message": err.detail, "ended_at": clock.now()})
        audit("process.start", "failed", session_id=session_id, process_id=process.process_id)
        raise
    deps.sessions.touch(session_id, now)
    audit("process.start", "success", session_id=session_id, process_id=process.process_id)
    return _store(deps, process, _reported(answer))


def list_processes(deps: Dependencies, caller: Principal, session_id: str) -> list[BackgroundProcess]:
    """Newest first; running ones refreshed with one call to the executor while the session runs."""
    session = get_session(deps, caller, session_id)
    processes = deps.processes.list_for_session(session_id)
    if any(p.status == "running" for p in processes) and session.status == SessionStatus.RUNNING:
        fresh = {p.process_id: p for p in _reconcile(deps, session)}
        processes = [fresh.get(p.process_id, p) for p in processes]
    return [_settle(deps, session, p) for p in processes]


def get_process(deps: Dependencies, caller: Principal, session_id: str, process_id: str) -> BackgroundProcess:
    session = get_session(deps, caller, session_id)
    return _refresh(deps, session, find_process(deps, session, process_id))


def write_stdin(
    deps: Dependencies, caller: Principal, session_id: str, process_id: str, data: str, eof: bool
) -> int:
    """Bytes written; 409 once the process exited or its stdin was closed."""
    session = running_session(deps, caller, session_id, purpose=live_records.PURPOSE)
    process = _running(deps, session, process_id)
    assert session.executor_url
    try:
        written = deps.executor.write_stdin(
            session.executor_url, process_id, data, eof, executor_key=session.executor_key
        )
    except StateConflict as err:
        _refresh(deps, session, process)
        raise StateConflict(
            f"Process '{process_id}' has exited or its stdin is closed",
            solution="Start a new process to send more input",
        ) from err
    except ProcessNotFound:
        _store(deps, process, _gone())
        raise
    deps.sessions.touch(session_id, clock.now())
    return written


def signal_process(
    deps: Dependencies, caller: Principal, session_id: str, process_id: str, signal: Signal
) -> BackgroundProcess:
    """Send `signal`; the process's record shows the exit once the executor reports it."""
    session = running_session(deps, caller, session_id, purpose=live_records.PURPOSE)
    process = _running(deps, session, process_id)
    assert session.executor_url
    try:
        deps.executor.signal_process(
            session.executor_url, process_id, signal, executor_key=session.executor_key
        )
    except StateConflict as err:
        _refresh(deps, session, process)
        raise StateConflict(f"Process '{process_id}' has exited", solution="Nothing to stop") from err
    except ProcessNotFound:
        _store(deps, process, _gone())
        raise
    audit("process.signal", "success", session_id=session_id, process_id=process_id, signal=signal)
    return _refresh(deps, session, process)


def read_process_output(
    deps: Dependencies,
    caller: Principal,
    session_id: str,
    process_id: str,
    *,
    after: int,
    wait_s: float,
) -> OutputPage:
    """A page of the process's output (services/output.py); complete once it ended and all was read."""
    session = get_session(deps, caller, session_id)
    process = find_process(deps, session, process_id)
    first = [_settle(deps, session, process).status not in LIVE_PROCESS_STATUSES]

    def ended() -> bool:
        if first:
            return first.pop()
        current = deps.processes.get(process_id)
        return current is None or current.status not in LIVE_PROCESS_STATUSES

    return output.read(deps, process_id, after=after, wait_s=wait_s, is_complete=ended)


def record_process_output(
    deps: Dependencies, caller_session: str, process_id: str, report: ProcessOutputReport
) -> tuple[int, BackgroundProcess]:
    """The executor's post: store the chunks (idempotent per seq), then the exit if it came (once: a repeat,
    or an exit after the session ended the record, changes nothing). Returns the number of chunks stored by
    this call, and the process."""
    process = deps.processes.get(process_id) if PROCESS_ID_RE.fullmatch(process_id) else None
    if process is None:
        raise ProcessNotFound(f"Process '{process_id[:64]}' does not exist")
    if process.session_id != caller_session:
        raise Forbidden(f"This callback token is not valid for process '{process_id}'")
    stored = output.append(deps, process_id, report.to_chunks()) if report.chunks else []
    if stored:
        output._publish(deps, process_id, stored)
    if report.exit is not None:
        fields = {
            "status": "exited",
            "exit_code": report.exit.exit_code,
            "signal": report.exit.signal,
            "ended_at": report.exit.ended_at,
        }
        process = _store(deps, process, fields)
        if process.status == "exited":
            output._publish(deps, process_id, [], complete=True)
    return len(stored), process


def find_process(deps: Dependencies, session: Session, process_id: str) -> BackgroundProcess:
    process = deps.processes.get(process_id) if PROCESS_ID_RE.fullmatch(process_id) else None
    if process is None or process.session_id != session.session_id or process.tenant_id != session.tenant_id:
        raise ProcessNotFound(f"Process '{process_id[:64]}' does not exist in session '{session.session_id}'")
    return process


def end_for_session(deps: Dependencies, session_id: str) -> int:
    """Mark the session's live processes ended (the sandbox is gone with them). Returns how many."""
    return live_records.end_for_session(deps.processes, session_id, live=LIVE)


# --- helpers -------------------------------------------------------------------------------------------


def _running(deps: Dependencies, session: Session, process_id: str) -> BackgroundProcess:
    process = find_process(deps, session, process_id)
    if process.status not in LIVE_PROCESS_STATUSES:
        raise StateConflict(
            f"Process '{process_id}' has {process.status}"
            + (f" (exit code {process.exit_code})" if process.exit_code is not None else ""),
            solution="Start a new process",
        )
    return process


def _reported(answer: ExecutorProcess) -> dict[str, Any]:
    fields: dict[str, Any] = {"status": answer.status, "pid": answer.pid, "started_at": answer.started_at}
    if answer.status == "exited":
        fields.update(
            exit_code=answer.exit_code, signal=answer.signal, ended_at=answer.ended_at or clock.now()
        )
    return {k: v for k, v in fields.items() if v is not None}


def _gone() -> dict[str, Any]:
    return {
        "status": "ended",
        "ended_at": clock.now(),
        "error_message": "The sandbox no longer has this process (its executor restarted)",
    }


def _refresh(deps: Dependencies, session: Session, process: BackgroundProcess) -> BackgroundProcess:
    """A running record of a running session, as the executor sees it now (best effort)."""
    process = _settle(deps, session, process)
    if process.status != "running" or session.status != SessionStatus.RUNNING or not session.executor_url:
        return process
    try:
        answer = deps.executor.get_process(
            session.executor_url, process.process_id, executor_key=session.executor_key
        )
    except ProcessNotFound:
        return _store(deps, process, _gone())
    except SandboxError as err:
        logger.info(
            "process status not refreshed", extra={"process_id": process.process_id, "reason": err.detail}
        )
        return process
    return _store(deps, process, _reported(answer))


def _reconcile(deps: Dependencies, session: Session) -> list[BackgroundProcess]:
    """Records of the session's processes the executor reports as exited, updated (one executor call)."""
    if not session.executor_url:
        return []
    try:
        answers = deps.executor.list_processes(session.executor_url, executor_key=session.executor_key)
    except SandboxError as err:
        logger.info("processes not refreshed", extra={"session_id": session.session_id, "reason": err.detail})
        return []
    updated = []
    for answer in answers:
        if answer.status != "exited" or not PROCESS_ID_RE.fullmatch(answer.process_id):
            continue
        process = deps.processes.get(answer.process_id)
        if process is None or process.session_id != session.session_id:
            continue  # the executor answers for its own sandbox only; never trust it about another
        updated.append(_store(deps, process, _reported(answer)))
    return updated


def _settle(deps: Dependencies, session: Session, process: BackgroundProcess) -> BackgroundProcess:
    is_live = process.status in LIVE_PROCESS_STATUSES
    return live_records.settle(
        deps.processes,
        process.process_id,
        process,
        session,
        is_live=is_live,
        live=LIVE,
        not_found=_not_found(process),
    )


def _store(deps: Dependencies, process: BackgroundProcess, fields: Mapping[str, Any]) -> BackgroundProcess:
    return live_records.store(
        deps.processes, process.process_id, process, fields, live=LIVE, not_found=_not_found(process)
    )


def _not_found(process: BackgroundProcess) -> Callable[[], ProcessNotFound]:
    return lambda: ProcessNotFound(f"Process '{process.process_id}' does not exist")
