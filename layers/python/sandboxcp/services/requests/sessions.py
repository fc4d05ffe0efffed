"""A session's creation body, and the environment variable rules it shares with background processes."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from sandbox_executor.contract import (
    ENV_NAME_PATTERN,
    MAX_ENV_BYTES,
    MAX_ENV_VARS,
    RESERVED_ENV_PREFIXES,
    env_size,
)
from sandboxcp.domain.inputs import RequestBody
from sandboxcp.domain.resources import ResourceLimitRequest

_ENV_NAME = re.compile(ENV_NAME_PATTERN)
MAX_TEMPLATE_ID_CHARS = 64


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
