"""Workspace files (US4, FR-025..FR-029): upload, presigned upload, download (inline or 307), listing, the
per-execution workspace plan handed to executors, and the 24 h purge of ended sessions' workspaces."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sandboxcp.domain import clock
from sandboxcp.domain.errors import InvalidParameter, SandboxError, StateConflict
from sandboxcp.domain.models import Principal, Session
from sandboxcp.domain.states import ACTIVE_SESSION_STATUSES
from sandboxcp.domain.workspace import (
    INLINE_BYTES,
    MAX_FILE_BYTES,
    PRESIGN_EXPIRY_S,
    WorkspaceFile,
    normalize_path,
)
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.sessions import get_session

MIB = 1024 * 1024


class FileNotFound(SandboxError):
    status_code = 404
    error_code = "Sandbox.FileNotFound"
    description = "File not found"
    solution = "List the workspace with GET /api/v1/sessions/{id}/files"


class QuotaExceeded(InvalidParameter):
    error_code = "Sandbox.QuotaExceeded"
    description = "Workspace quota exceeded"
    solution = "Delete files or create the session with a larger 'disk' resource"


def quota_bytes(session: Session) -> int:
    return session.resources.disk_mb * MIB


def _writable(deps: Dependencies, caller: Principal, session_id: str) -> Session:
    session = get_session(deps, caller, session_id)
    if session.status not in ACTIVE_SESSION_STATUSES:
        raise StateConflict(f"Session '{session_id}' is {session.status}; its workspace is read-only")
    return session


def _check_size(size: int) -> None:
    if size < 0:
        raise InvalidParameter("size must not be negative")
    if size > MAX_FILE_BYTES:
        raise InvalidParameter(
            f"The file is {size} bytes; one file may be at most {MAX_FILE_BYTES} bytes (100 MB)",
            solution="Split the file; each file may be at most 100 MB",
        )


def _check_quota(deps: Dependencies, session: Session, path: str, size: int) -> None:
    existing = deps.workspace.head(session.session_id, path)
    used = deps.workspace.usage_bytes(session.session_id) - (existing.size if existing else 0)
    if used + size > quota_bytes(session):
        raise QuotaExceeded(
            f"Writing {size} bytes to '{path}' would use {used + size} of the session's "
            f"{quota_bytes(session)} bytes ({session.resources.disk})"
        )


def upload_file(
    deps: Dependencies, caller: Principal, session_id: str, raw_path: str, body: bytes
) -> WorkspaceFile:
    session = _writable(deps, caller, session_id)
    path = normalize_path(raw_path)
    _check_size(len(body))
    if len(body) > INLINE_BYTES:
        raise InvalidParameter(
            f"Files above {INLINE_BYTES} bytes cannot pass through the API",
            solution="Ask POST /api/v1/sessions/{id}/files/upload-url for a presigned upload",
        )
    _check_quota(deps, session, path, len(body))
    written = deps.workspace.put(session_id, path, body)
    deps.sessions.workspace_written(session_id)  # after the put: a run that sees the new rev finds the file
    return written


def presign_upload(
    deps: Dependencies, caller: Principal, session_id: str, raw_path: str, size: int
) -> dict[str, Any]:
    """A presigned POST for exactly this path whose policy refuses more than `size` bytes."""
    session = _writable(deps, caller, session_id)
    path = normalize_path(raw_path)
    _check_size(size)
    _check_quota(deps, session, path, size)
    # Before the URL is handed out: until it expires, every run lists the workspace (the upload may land
    # at any moment, unseen by the control plane).
    open_until = clock.now() + timedelta(seconds=PRESIGN_EXPIRY_S)
    deps.sessions.workspace_written(session_id, open_until=open_until)
    return {"path": path, **deps.workspace.presign_post(session_id, path=path, max_bytes=size)}


def download(
    deps: Dependencies, caller: Principal, session_id: str, raw_path: str
) -> tuple[str, bytes | str]:
    """('inline', bytes) for small files, ('redirect', presigned url) for the others."""
    get_session(deps, caller, session_id)
    path = normalize_path(raw_path)
    found = deps.workspace.head(session_id, path)
    if found is None:
        raise FileNotFound(
            f"'{path}' does not exist in the workspace of session '{session_id}' (/workspace/{path})"
        )
    if found.size <= INLINE_BYTES:
        return "inline", deps.workspace.read(session_id, path)
    return "redirect", deps.workspace.presign_get(session_id, path)


def list_files(deps: Dependencies, caller: Principal, session_id: str) -> list[WorkspaceFile]:
    get_session(deps, caller, session_id)
    return deps.workspace.list(session_id)


# Files a plan lists (and a sandbox syncs in) at most: as presigned GETs they stay within the executor's
# 8 MiB request and response bounds (docs/workspace.md). The API's own listing shows 1,000.
MAX_SYNCED_FILES = 5000


def workspace_plan(
    deps: Dependencies, session: Session, *, listing: bool = True, presigned: bool = True
) -> dict[str, Any]:
    """What an executor needs to sync a run: one POST policy for artifacts, scoped to the session's prefix,
    and the workspace's revision (`rev`, docs/workspace.md). With `listing`, or while a presigned upload
    may still land (`rev` null then), also the workspace's files (path, etag, size), each with a presigned
    GET unless `presigned` is false (the executor then asks for GETs of the files whose etag it lacks:
    `presigned_gets`; presigning costs about a millisecond a file). Without `listing`, `downloads` is null
    and an executor that has not synced `rev` asks for them (POST /internal/sessions/{id}/workspace-urls):
    a submit costs no listing when nothing changed."""
    quota = quota_bytes(session)
    still_open = session.workspace_open_until is not None and session.workspace_open_until > clock.now()
    downloads = None
    if listing or still_open:
        listed = deps.workspace.list(session.session_id, limit=MAX_SYNCED_FILES)
        downloads = [f.model_dump() for f in listed]
        if presigned:
            for item in downloads:
                item["url"] = deps.workspace.presign_get(session.session_id, item["path"])
    return {
        "rev": None if still_open else session.workspace_rev,
        "downloads": downloads,
        "upload": deps.workspace.presign_post(
            session.session_id, path=None, max_bytes=min(MAX_FILE_BYTES, quota)
        ),
        "quota_bytes": quota,
    }


def presigned_gets(deps: Dependencies, session: Session, paths: list[str]) -> dict[str, str]:
    """A presigned GET for each path (checked by the request model: plain relative paths, so every key
    stays under the session's prefix), whether or not the file exists: a GET of a missing one fails."""
    return {path: deps.workspace.presign_get(session.session_id, path) for path in paths}


def purge_due_workspaces(deps: Dependencies, *, now: datetime | None = None) -> list[str]:
    """Delete the workspaces of sessions that ended more than 24 h ago (a Query on a sparse index of
    ended-but-not-purged sessions; each purge lists only that session's prefix)."""
    now = now or clock.now()
    purged = []
    for session_id in deps.sessions.list_purge_due(now):
        deps.workspace.delete_all(session_id)
        deps.sessions.mark_purged(session_id)
        purged.append(session_id)
    return purged
