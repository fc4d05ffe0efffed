"""An execution's submit body (POST /sessions/{id}/execute and execute-sync)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from sandbox_executor.contract import (
    DEFAULT_TIMEOUT_S,
    MAX_CODE_BYTES,
    MAX_EVENT_BYTES,
    MAX_TIMEOUT_S,
    MIN_TIMEOUT_S,
    utf8_size,
)
from sandboxcp.domain.inputs import RequestBody, check_json_object
from sandboxcp.domain.models import Language

MAX_ID_CHARS = 64  # a code context's id named in a request (issue #12)


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
