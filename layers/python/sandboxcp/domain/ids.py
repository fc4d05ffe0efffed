"""Identifier formats from the contract (FR-002, FR-011)."""

from __future__ import annotations

import re
import secrets
import string
from datetime import UTC, datetime

from sandbox_executor.contract import EXECUTION_ID_PATTERN, SESSION_ID_PATTERN

_ALPHABET = string.ascii_lowercase + string.digits

SESSION_ID_RE = re.compile(SESSION_ID_PATTERN)  # use fullmatch: `$` also matches before a final newline
EXECUTION_ID_RE = re.compile(EXECUTION_ID_PATTERN)
# Code contexts and background processes (issue #12): minted here, never reported by a sandbox.
CONTEXT_ID_RE = re.compile(r"ctx-[a-z0-9]{16}")
PROCESS_ID_RE = re.compile(r"proc-[a-z0-9]{16}")


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def new_session_id() -> str:
    return f"sess_{_random(16)}"


def new_execution_id(now: datetime | None = None) -> str:
    day = (now or datetime.now(UTC)).strftime("%Y%m%d")
    return f"exec_{day}_{_random(8)}"


def new_secret(prefix: str) -> str:
    """A bearer secret: `prefix` + 32 url-safe random bytes. Only its hash is ever stored."""
    return f"{prefix}{secrets.token_urlsafe(32)}"


def new_context_id() -> str:
    return f"ctx-{_random(16)}"


def new_process_id() -> str:
    return f"proc-{_random(16)}"
