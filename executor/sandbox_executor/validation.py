"""``POST /execute`` request validation (executor-api.yaml ``ExecutionRequest``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

LANGUAGES = ("python", "javascript", "shell")
MAX_CODE_BYTES = 1 << 20  # 1 MiB of UTF-8
DEFAULT_TIMEOUT_S = 30
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 1, 3600
EXECUTION_ID_RE = re.compile(r"exec_[0-9]{8}_[a-z0-9]{8}")


class ValidationError(ValueError):
    """Carries the ``error_detail`` of a 400 ``Executor.ValidationError``."""


@dataclass(frozen=True)
class ExecutionRequest:
    execution_id: str
    code: str
    language: str
    timeout: int
    event: dict[str, Any] = field(default_factory=dict)
    # The contract's raw ``stdin`` when no ``event`` was given: shell gets it verbatim on stdin.
    stdin: str | None = None


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


def parse_execute_request(body: Any) -> ExecutionRequest:
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    execution_id = body.get("execution_id")
    if not isinstance(execution_id, str) or not EXECUTION_ID_RE.fullmatch(execution_id):
        raise ValidationError("Field 'execution_id' must match ^exec_[0-9]{8}_[a-z0-9]{8}$")
    code = body.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ValidationError("Field 'code' must be a non-empty string")
    if len(code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
        raise ValidationError(f"Field 'code' must be at most {MAX_CODE_BYTES} bytes")
    language = body.get("language")
    if language not in LANGUAGES:
        raise ValidationError(f"Field 'language' must be one of {', '.join(LANGUAGES)}")
    timeout = _timeout(body.get("timeout"))
    event = body.get("event")
    stdin = body.get("stdin")
    if stdin is not None and not isinstance(stdin, str):
        raise ValidationError("Field 'stdin' must be a string")
    if event is not None:
        if not isinstance(event, dict):
            raise ValidationError("Field 'event' must be a JSON object")
        return ExecutionRequest(execution_id, code, language, timeout, event)
    if stdin:
        return ExecutionRequest(execution_id, code, language, timeout, _event_from_stdin(stdin), stdin)
    return ExecutionRequest(execution_id, code, language, timeout, {})
