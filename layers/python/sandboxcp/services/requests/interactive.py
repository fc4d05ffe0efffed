"""Bodies of code contexts and background processes (issue #12)."""

from __future__ import annotations

import posixpath
import unicodedata
from typing import Literal

from pydantic import Field, field_validator

from sandbox_executor.contract import MAX_ENV_BYTES, MAX_ENV_VARS, MAX_PATH_BYTES, WORKSPACE_DIR, utf8_size
from sandboxcp.domain.inputs import RequestBody
from sandboxcp.services.requests.sessions import check_env_vars

MAX_CMD_BYTES = 64 * 1024
MAX_STDIN_BYTES = 64 * 1024  # per request
SIGNALS = ("SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
Signal = Literal["SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"]
_CWD_DOC = f"A directory inside {WORKSPACE_DIR} (absolute, or relative to it); default: {WORKSPACE_DIR}"


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
