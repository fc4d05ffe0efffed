"""Inputs of the use cases, validated at the edge by the API layer (contract limits live here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sandboxcp.domain.models import Language
from sandboxcp.domain.resources import ResourceLimit

MAX_CODE_BYTES = 100 * 1024  # contract: ExecuteRequest.code maxLength 102400
MAX_EVENT_BYTES = 256 * 1024
MAX_ENV_VARS = 64


class CreateSessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template_id: str = Field(min_length=1, max_length=64, examples=["python-basic"])
    timeout: int = Field(default=300, ge=60, le=3600, description="Session lifetime in seconds")
    resources: ResourceLimit | None = None
    env_vars: dict[str, str] = Field(default_factory=dict)

    @field_validator("env_vars")
    @classmethod
    def _env_limits(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > MAX_ENV_VARS:
            raise ValueError(f"at most {MAX_ENV_VARS} environment variables")
        for key in v:
            if not key or not (key[0].isalpha() or key[0] == "_") or not key.replace("_", "").isalnum():
                raise ValueError(f"'{key}' is not a valid environment variable name")
            if key.startswith(("SANDBOXCP_", "AWS_")):
                raise ValueError(f"'{key}': the SANDBOXCP_ and AWS_ prefixes are reserved")
        return v


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1)
    language: Language
    timeout: int = Field(default=30, ge=1, le=3600)
    event: dict[str, Any] = Field(default_factory=dict)

    @field_validator("code")
    @classmethod
    def _code_size(cls, v: str) -> str:
        size = len(v.encode("utf-8", errors="surrogatepass"))
        if size > MAX_CODE_BYTES:
            raise ValueError(f"code is {size} bytes; the limit is {MAX_CODE_BYTES} bytes (100 KB)")
        return v


class CreateKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=64)
    admin: bool = False


class ContainerReadyReport(BaseModel):
    container_id: str | None = None
    pod_name: str | None = None
    executor_port: int | None = None
    executor_url: str | None = None
    ready_at: datetime | None = None


class ContainerExitedReport(BaseModel):
    exit_code: int
    exit_reason: Literal["normal", "sigterm", "sigkill", "oom_killed", "error"] | None = None
    exited_at: datetime


class ExecutionStatusReport(BaseModel):
    status: Literal["running", "timeout", "crashed"]
    started_at: datetime | None = None
    crashed_at: datetime | None = None
    timeout_at: datetime | None = None
    error: str | None = None


class HeartbeatReport(BaseModel):
    timestamp: datetime
    progress: dict[str, Any] | None = None
