"""``POST /execute`` request validation (executor-api.yaml ``ExecutionRequest``), with the limits the control
plane applies too (sandbox_executor.contract)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from sandbox_executor.contract import (
    DEFAULT_TIMEOUT_S,
    EXECUTION_ID_PATTERN,
    LANGUAGES,
    MAX_CODE_BYTES,
    MAX_EVENT_BYTES,
    MAX_TIMEOUT_S,
    MIN_TIMEOUT_S,
    json_size,
    json_value_problem,
    utf8_size,
)
from sandbox_executor.errors import ValidationError as ValidationError  # defined apart (errors.py)

EXECUTION_ID_RE = re.compile(EXECUTION_ID_PATTERN)
CONTEXT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


MAX_WAIT_MS = 25_000  # below API Gateway's 29 s, as the control plane's execute-sync


@dataclass(frozen=True)
class ExecutionRequest:
    execution_id: str
    code: str
    language: str
    timeout: int
    event: dict[str, Any] = field(default_factory=dict)
    # The contract's raw ``stdin`` when no ``event`` was given: shell gets it verbatim on stdin.
    stdin: str | None = None
    # Files to sync before and after the run (see workspace.py); None: no sync, artifacts listed only.
    workspace: WorkspacePlan | None = None
    # Run as a cell of this code context (contexts.py) instead of as a handler in a fresh process.
    context_id: str | None = None
    # Hold the /execute answer up to this long for the result (execute-sync; server.py, worker.Handoff).
    wait_ms: int | None = None


@dataclass(frozen=True)
class Download:
    """One workspace file the control plane has: fetched unless this agent already has its etag."""

    path: str  # checked (relative, inside the workspace) when synced, not here
    # Presigned GET; its query carries the signature, so it is never logged. None: the control plane
    # listed the file without one, and the sync asks for it if it fetches the file (workspace.py).
    url: str | None
    etag: str = ""
    size: int | None = None


@dataclass(frozen=True)
class UploadPolicy:
    """A presigned POST policy for any key under ``key_prefix``."""

    url: str
    fields: dict[str, str]
    key_prefix: str
    max_bytes: int | None = None


@dataclass(frozen=True)
class WorkspacePlan:
    # None: "unchanged since `rev`" (the control plane did not list); an agent that has not synced `rev`
    # asks for the listing (runner.py).
    downloads: tuple[Download, ...] | None
    upload: UploadPolicy
    quota_bytes: int | None = None
    rev: int | None = None  # the workspace revision these downloads are; None: not a stable one


def _timeout(value: Any) -> int:
    if value is None:
        return DEFAULT_TIMEOUT_S
    # bool is an int subclass; "timeout": true is a client bug, not 1 second.
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValidationError("Field 'timeout' must be an integer")
    if not MIN_TIMEOUT_S <= value <= MAX_TIMEOUT_S:
        raise ValidationError(f"Field 'timeout' must be between {MIN_TIMEOUT_S} and {MAX_TIMEOUT_S}")
    return int(value)


def _event_from_stdin(stdin: str) -> dict[str, Any]:
    """The contract passes the event as a JSON string in ``stdin``; anything else is not an event."""
    try:
        parsed = json.loads(stdin)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"Field '{name}' must be a non-negative integer")
    return value


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"Field '{name}' must be a non-empty string")
    return value


def parse_workspace_plan(raw: Any) -> WorkspacePlan | None:
    """The control plane's per-execution plan (``workspace_plan``); null means no sync."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValidationError("Field 'workspace' must be an object or null")
    rev = _int_or_none(raw.get("rev"), "workspace.rev")
    raw_downloads = raw.get("downloads", [])
    if raw_downloads is None and rev is None:
        raise ValidationError("Field 'workspace.downloads' may be null only with a 'workspace.rev'")
    if raw_downloads is not None and not isinstance(raw_downloads, list):
        raise ValidationError("Field 'workspace.downloads' must be an array or null")
    downloads = []
    for i, item in enumerate(raw_downloads or []):
        name = f"workspace.downloads[{i}]"
        if not isinstance(item, dict):
            raise ValidationError(f"Field '{name}' must be an object")
        etag = item.get("etag")
        if etag is not None and not isinstance(etag, str):
            raise ValidationError(f"Field '{name}.etag' must be a string")
        downloads.append(
            Download(
                path=_str(item.get("path"), f"{name}.path"),
                url=None if item.get("url") is None else _str(item["url"], f"{name}.url"),
                etag=etag or "",
                size=_int_or_none(item.get("size"), f"{name}.size"),
            )
        )
    upload = raw.get("upload")
    if not isinstance(upload, dict):
        raise ValidationError("Field 'workspace.upload' must be an object")
    fields = upload.get("fields") or {}
    if not isinstance(fields, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
    ):
        raise ValidationError("Field 'workspace.upload.fields' must be an object of strings")
    key_prefix = upload.get("key_prefix")
    if not isinstance(key_prefix, str):
        raise ValidationError("Field 'workspace.upload.key_prefix' must be a string")
    return WorkspacePlan(
        downloads=None if raw_downloads is None else tuple(downloads),
        rev=rev,
        upload=UploadPolicy(
            url=_str(upload.get("url"), "workspace.upload.url"),
            fields=dict(fields),
            key_prefix=key_prefix,
            max_bytes=_int_or_none(upload.get("max_bytes"), "workspace.upload.max_bytes"),
        ),
        quota_bytes=_int_or_none(raw.get("quota_bytes"), "workspace.quota_bytes"),
    )


def parse_execute_request(body: Any) -> ExecutionRequest:
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    execution_id = body.get("execution_id")
    if not isinstance(execution_id, str) or not EXECUTION_ID_RE.fullmatch(execution_id):
        raise ValidationError("Field 'execution_id' must match ^exec_[0-9]{8}_[a-z0-9]{8}$")
    code = body.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ValidationError("Field 'code' must be a non-empty string")
    if utf8_size(code) > MAX_CODE_BYTES:
        raise ValidationError(f"Field 'code' must be at most {MAX_CODE_BYTES} bytes")
    language = body.get("language")
    if language not in LANGUAGES:
        raise ValidationError(f"Field 'language' must be one of {', '.join(LANGUAGES)}")
    timeout = _timeout(body.get("timeout"))
    event = body.get("event")
    stdin = body.get("stdin")
    if stdin is not None and not isinstance(stdin, str):
        raise ValidationError("Field 'stdin' must be a string")
    workspace = parse_workspace_plan(body.get("workspace"))
    context_id = body.get("context_id")
    if context_id is not None and not (isinstance(context_id, str) and CONTEXT_ID_RE.fullmatch(context_id)):
        raise ValidationError(f"Field 'context_id' must match {CONTEXT_ID_RE.pattern}")
    wait_ms = _int_or_none(body.get("wait_ms"), "wait_ms")
    if wait_ms is not None and wait_ms > MAX_WAIT_MS:
        raise ValidationError(f"Field 'wait_ms' must be at most {MAX_WAIT_MS}")
    request = _request(execution_id, code, language, timeout, event, stdin, workspace)
    return replace(request, context_id=context_id, wait_ms=wait_ms)


def _request(
    execution_id: str,
    code: str,
    language: str,
    timeout: int,
    event: Any,
    stdin: Any,
    workspace: WorkspacePlan | None,
) -> ExecutionRequest:
    if event is not None:
        if not isinstance(event, dict):
            raise ValidationError("Field 'event' must be a JSON object")
        if problem := json_value_problem(event, "event"):
            raise ValidationError(f"Field {problem}")
        if json_size(event) > MAX_EVENT_BYTES:
            raise ValidationError(f"Field 'event' must be at most {MAX_EVENT_BYTES} bytes as JSON")
        return ExecutionRequest(execution_id, code, language, timeout, event, workspace=workspace)
    if stdin:
        return ExecutionRequest(
            execution_id, code, language, timeout, _event_from_stdin(stdin), stdin, workspace=workspace
        )
    return ExecutionRequest(execution_id, code, language, timeout, {}, workspace=workspace)
