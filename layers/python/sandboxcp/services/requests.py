"""Inputs of the use cases, validated at the edge by the API layer. The limits shared with the executor
live in sandbox_executor.contract; docs/api.md's "Limits" table lists them all."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, StrictInt, field_validator

from sandbox_executor.contract import (
    DEFAULT_TIMEOUT_S,
    ENV_NAME_PATTERN,
    MAX_CODE_BYTES,
    MAX_ENV_BYTES,
    MAX_ENV_VARS,
    MAX_EVENT_BYTES,
    MAX_TIMEOUT_S,
    MIN_TIMEOUT_S,
    RESERVED_ENV_PREFIXES,
    env_size,
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
