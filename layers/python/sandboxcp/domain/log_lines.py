"""Log lines that start with an ISO-8601 time (the executor's, and program output merged into them)."""

from __future__ import annotations

from datetime import UTC, datetime


def line_time(line: str) -> datetime | None:
    """The leading ISO-8601 timestamp of a log line (UTC when it names no zone), if any."""
    stamp = line.split(" ", 1)[0]
    if len(stamp) < 20 or stamp[4:5] != "-" or "T" not in stamp:
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def lines_since(lines: list[str], since: datetime) -> list[str]:
    """The lines stamped at or after `since`; an unstamped line (a traceback) goes with the stamped line
    before it."""
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    out, keep = [], False
    for line in lines:
        stamp = line_time(line)
        if stamp is not None:
            keep = stamp >= since
        if keep:
            out.append(line)
    return out
