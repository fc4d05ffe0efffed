"""Timestamps in the one format every callback uses."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now_iso() -> str:
    """ISO-8601 UTC with a ``Z`` suffix and millisecond precision, e.g. ``2025-01-04T10:30:00.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
