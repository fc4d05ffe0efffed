"""Workspace paths and limits (FR-025..FR-029). A workspace path is relative, normalized and can never
leave its session's prefix."""

from __future__ import annotations

import posixpath
import unicodedata
from datetime import timedelta
from urllib.parse import unquote

from pydantic import Field

from sandbox_executor.contract import MAX_PATH_BYTES
from sandboxcp.domain.base import DomainModel
from sandboxcp.domain.errors import InvalidParameter

MAX_FILE_BYTES = 100 * 1024 * 1024  # contract: one file at most 100 MB
INLINE_BYTES = 4 * 1024 * 1024  # through API Gateway + Lambda (6 MB payload, base64): larger -> presigned
PRESIGN_EXPIRY_S = 3600
WORKSPACE_RETENTION = timedelta(hours=24)  # an ended session's files are kept this long (FR-007)


class WorkspaceFile(DomainModel):
    path: str
    size: int
    etag: str = ""
    last_modified: str | None = None


def _is_none(value: object) -> bool:
    return value is None


class Artifact(DomainModel):
    path: str
    size: int
    mime_type: str
    type: str = "artifact"
    # SHA-256 of the file, when the executor reported one (POST /internal/executions/{id}/artifacts).
    checksum: str | None = Field(default=None, exclude_if=_is_none)


def normalize_path(raw: str) -> str:
    """The canonical relative path, or InvalidParameter. Percent-encoding is decoded first (repeatedly, so
    `%252e%252e` cannot smuggle `..` past one decode)."""
    if not raw:
        raise InvalidParameter("The file path is empty")
    decoded = raw
    for _ in range(3):
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    try:
        size = len(decoded.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidParameter("The file path is not valid Unicode (an unpaired surrogate)") from None
    if size > MAX_PATH_BYTES:
        raise InvalidParameter(f"The file path is longer than {MAX_PATH_BYTES} bytes")
    if any(unicodedata.category(ch) == "Cc" for ch in decoded):
        raise InvalidParameter("The file path contains NUL or control characters")
    if decoded.startswith("/") or decoded.startswith("\\") or "\\" in decoded:
        raise InvalidParameter(f"'{raw}' must be relative to the workspace, with '/' separators")
    parts = decoded.split("/")
    if any(p == ".." for p in parts):
        raise InvalidParameter(f"'{raw}' must not contain '..'")
    normalized = posixpath.normpath(decoded)
    if normalized in (".", "") or normalized.startswith("../"):
        raise InvalidParameter(f"'{raw}' does not name a file in the workspace")
    return normalized


def workspace_prefix(session_id: str) -> str:
    return f"workspace/{session_id}/"
