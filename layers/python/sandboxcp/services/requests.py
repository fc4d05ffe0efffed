"""Inputs of the use cases, validated at the edge by the API layer. The limits shared with the executor
live in sandbox_executor.contract; docs/api.md's "Limits" table lists them all."""

from __future__ import annotations

import posixpath
import re
import unicodedata
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr, field_validator

from sandbox_executor.contract import (
    DEFAULT_TIMEOUT_S,
    ENV_NAME_PATTERN,
    MAX_CODE_BYTES,
    MAX_ENV_BYTES,
    MAX_ENV_VARS,
    MAX_EVENT_BYTES,
    MAX_PATH_BYTES,
    MAX_PRESIGN_PATHS,
    MAX_TIMEOUT_S,
    MIN_TIMEOUT_S,
    RESERVED_ENV_PREFIXES,
    WORKSPACE_DIR,
    env_size,
    path_problem,
    utf8_size,
)
from sandboxcp.domain.inputs import JsonBody, RequestBody, check_json_object
from sandboxcp.domain.models import Language
from sandboxcp.domain.resources import ResourceLimitRequest

_ENV_NAME = re.compile(ENV_NAME_PATTERN)
MAX_TEMPLATE_ID_CHARS = 64
MAX_TENANT_ID_CHARS = 64
# What an executor reports (internal API): ids, addresses and error texts, never more than this.
MAX_REPORTED_ID_CHARS = 512
MAX_REPORTED_URL_CHARS = 2048
MAX_REPORTED_ERROR_CHARS = 4096
# Code contexts and background processes (issue #12).
MAX_ID_CHARS = 64  # a context id named in a request
MAX_CMD_BYTES = 64 * 1024
MAX_STDIN_BYTES = 64 * 1024  # per request
SIGNALS = ("SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
Signal = Literal["SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"]
_CWD_DOC = f"A directory inside {WORKSPACE_DIR} (absolute, or relative to it); default: {WORKSPACE_DIR}"


class CreateSessionRequest(RequestBody):
    template_id: str = Field(min_length=1, max_length=MAX_TEMPLATE_ID_CHARS, examples=["python-basic"])
    timeout: int = Field(default=300, ge=60, le=3600, description="Session lifetime in seconds")
    resources: ResourceLimitRequest | None = None
    env_vars: dict[str, str] = Field(
        default_factory=dict,
        description=(
            f"At most {MAX_ENV_VARS} variables, {MAX_ENV_BYTES} bytes of names and values together; names "
            f"match {ENV_NAME_PATTERN}, the prefixes {' and '.join(RESERVED_ENV_PREFIXES)} are reserved and "
            "values hold no NUL character"
        ),
    )

    @field_validator("env_vars")
    @classmethod
    def _env_limits(cls, v: dict[str, str]) -> dict[str, str]:
        return check_env_vars(v)


def check_env_vars(v: dict[str, str]) -> dict[str, str]:
    """A session's (or a background process's) environment variables: count, size, names, values."""
    if len(v) > MAX_ENV_VARS:
        raise ValueError(f"at most {MAX_ENV_VARS} environment variables ({len(v)} given)")
    size = env_size(v)
    if size > MAX_ENV_BYTES:
        raise ValueError(
            f"the environment variables are {size:,} bytes (names and values); the limit is "
            f"{MAX_ENV_BYTES:,} bytes"
        )
    for key, value in v.items():
        if not _ENV_NAME.fullmatch(key):
            raise ValueError(f"'{key}' is not a valid environment variable name ({ENV_NAME_PATTERN})")
        if key.startswith(RESERVED_ENV_PREFIXES):
            raise ValueError(f"'{key}': the SANDBOXCP_ and AWS_ prefixes are reserved")
        if "\0" in value:
            raise ValueError(f"the value of '{key}' contains a NUL character")
    return v


class ExecuteRequest(RequestBody):
    code: str = Field(min_length=1, description=f"At most {MAX_CODE_BYTES} bytes of UTF-8")
    language: Language
    timeout: int = Field(default=DEFAULT_TIMEOUT_S, ge=MIN_TIMEOUT_S, le=MAX_TIMEOUT_S)
    event: dict[str, Any] = Field(
        default_factory=dict, description=f"At most {MAX_EVENT_BYTES} bytes as compact JSON (UTF-8)"
    )
    context_id: str | None = Field(
        default=None,
        max_length=MAX_ID_CHARS,
        description="Run as a cell in this code context of the session (its language must match)",
    )

    @field_validator("code")
    @classmethod
    def _code_size(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("code is only whitespace")  # the executor refuses it too
        size = utf8_size(v)
        if size > MAX_CODE_BYTES:
            raise ValueError(f"code is {size:,} bytes; the limit is {MAX_CODE_BYTES:,} bytes (100 KB)")
        return v

    @field_validator("event")
    @classmethod
    def _event_size(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_json_object(v, "event", MAX_EVENT_BYTES)


class CreateKeyRequest(RequestBody):
    tenant_id: str = Field(min_length=1, max_length=MAX_TENANT_ID_CHARS)
    admin: bool = False


class ContainerReadyReport(JsonBody):
    container_id: str | None = Field(default=None, max_length=MAX_REPORTED_ID_CHARS)
    pod_name: str | None = Field(default=None, max_length=MAX_REPORTED_ID_CHARS)
    executor_port: StrictInt | None = Field(default=None, ge=1, le=65535)
    executor_url: str | None = Field(default=None, max_length=MAX_REPORTED_URL_CHARS)
    ready_at: datetime | None = None


class ContainerExitedReport(JsonBody):
    exit_code: StrictInt
    exit_reason: Literal["normal", "sigterm", "sigkill", "oom_killed", "error"] | None = None
    exited_at: datetime


class ExecutionStatusReport(JsonBody):
    status: Literal["running", "timeout", "crashed"]
    started_at: datetime | None = None
    crashed_at: datetime | None = None
    timeout_at: datetime | None = None
    error: str | None = Field(default=None, max_length=MAX_REPORTED_ERROR_CHARS)


class HeartbeatReport(JsonBody):
    timestamp: datetime
    progress: dict[str, Any] | None = None


class WorkspaceUrlsRequest(JsonBody):
    """What an executor asks of internal workspace-urls (docs/workspace.md). Nothing (executors before
    2026-12-02): the listing with a presigned GET per file. `urls: false`: the listing alone. `paths`: a
    presigned GET for each of them (the files the executor lacks), at most MAX_PRESIGN_PATHS."""

    urls: StrictBool = True
    paths: list[StrictStr] | None = Field(default=None, max_length=MAX_PRESIGN_PATHS)

    @field_validator("paths")
    @classmethod
    def _plain_paths(cls, paths: list[str] | None) -> list[str] | None:
        for path in paths or ():
            if problem := path_problem(path):
                raise ValueError(f"'{path[:64]}' is not a workspace path: {problem}")
        return paths


# --- code contexts and background processes (issue #12) --------------------------------------------------


def workspace_cwd(raw: str | None) -> str | None:
    """A working directory inside the sandbox's workspace, normalized to an absolute path."""
    if raw is None:
        return None
    if not raw or utf8_size(raw) > MAX_PATH_BYTES:
        raise ValueError(f"cwd must be 1 to {MAX_PATH_BYTES} bytes")
    if any(unicodedata.category(ch) == "Cc" for ch in raw):
        raise ValueError("cwd contains NUL or control characters")
    path = posixpath.normpath(posixpath.join(WORKSPACE_DIR, raw))
    if path != WORKSPACE_DIR and not path.startswith(WORKSPACE_DIR + "/"):
        raise ValueError(f"cwd must be inside {WORKSPACE_DIR} ('{raw[:64]}' is {path[:64]!r})")
    return path


class CreateContextRequest(RequestBody):
    language: Literal["python", "javascript"]
    cwd: str | None = Field(default=None, description=_CWD_DOC)

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, v: str | None) -> str | None:
        return workspace_cwd(v)


class CreateProcessRequest(RequestBody):
    cmd: str = Field(min_length=1, description=f"A shell command line, at most {MAX_CMD_BYTES} bytes")
    cwd: str | None = Field(default=None, description=_CWD_DOC)
    env: dict[str, str] = Field(
        default_factory=dict,
        description=f"Added to the session's environment; the same rules as a session's env_vars "
        f"(at most {MAX_ENV_VARS} variables, {MAX_ENV_BYTES} bytes)",
    )

    @field_validator("cmd")
    @classmethod
    def _cmd(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("cmd is only whitespace")
        size = utf8_size(v)
        if size > MAX_CMD_BYTES:
            raise ValueError(f"cmd is {size:,} bytes; the limit is {MAX_CMD_BYTES:,} bytes")
        if "\0" in v:
            raise ValueError("cmd contains a NUL character")
        return v

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, v: str | None) -> str | None:
        return workspace_cwd(v)

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        return check_env_vars(v)


class StdinRequest(RequestBody):
    data: str = Field(description=f"Text written to the process's stdin; at most {MAX_STDIN_BYTES} bytes")
    eof: bool = Field(default=False, description="Close stdin after writing")

    @field_validator("data")
    @classmethod
    def _size(cls, v: str) -> str:
        size = utf8_size(v)
        if size > MAX_STDIN_BYTES:
            raise ValueError(f"data is {size:,} bytes; the limit is {MAX_STDIN_BYTES:,} bytes")
        return v


class SignalRequest(RequestBody):
    signal: Signal
