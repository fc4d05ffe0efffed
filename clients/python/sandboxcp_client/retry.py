"""When and how long to retry.

A request is retried on 429 and 503 answers and on connection errors, with exponential backoff and full
jitter, honouring `Retry-After` (seconds or an HTTP date) when the server sends it. Retrying must never
repeat a side effect, so:

- calls that are idempotent by nature (GET, PUT, DELETE, and the uploads to a fixed path) are retried;
- a POST is retried only when it carries an `Idempotency-Key` (session create always sends one);
- any other POST (execute, key create, template create) is retried only when the connection could not be
  opened at all: the request never left this machine, so it cannot have had an effect.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["RetryPolicy", "parse_retry_after"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Errors raised before any byte of the request was sent: a retry cannot duplicate anything.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` retries after the first attempt; delays grow `backoff_base * 2**n` up to
    `backoff_max` (each drawn uniformly below that bound: full jitter). A `Retry-After` the server sends is
    used instead, up to `max_retry_after` seconds (longer waits raise rather than block)."""

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0
    retry_statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 503}))

    @classmethod
    def none(cls) -> RetryPolicy:
        """Never retry."""
        return cls(max_retries=0)

    def backoff(self, attempt: int) -> float:
        """The delay before retry number `attempt + 1` (attempt counts from 0)."""
        bound = min(self.backoff_max, self.backoff_base * (2**attempt))
        return random.uniform(0, bound)

    def delay_for(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retrying, or None when the server asked for longer than we accept."""
        if response is not None:
            asked = parse_retry_after(response.headers.get("retry-after"))
            if asked is not None:
                return asked if asked <= self.max_retry_after else None
        return self.backoff(attempt)

    def may_retry_status(self, status: int) -> bool:
        return status in self.retry_statuses


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def is_retry_safe(
    method: str, headers: httpx.Headers | dict[str, str] | None, idempotent: bool | None
) -> bool:
    """Whether repeating this request after it may have reached the server is harmless."""
    if idempotent is not None:
        return idempotent
    if method.upper() in IDEMPOTENT_METHODS:
        return True
    return bool(headers and httpx.Headers(headers).get("idempotency-key"))
