"""What code contexts and background processes share: records of something that lives in a session's
sandbox. Their status is what the executor last reported; they end with their session (the sandbox is
gone, and they with it); a write never brings back a record another writer already ended."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from sandboxcp.domain import clock
from sandboxcp.domain.errors import SandboxError, StateConflict
from sandboxcp.domain.models import Session
from sandboxcp.domain.states import ACTIVE_SESSION_STATUSES

T = TypeVar("T", bound=BaseModel)
T_co = TypeVar("T_co", bound=BaseModel, covariant=True)
PURPOSE = "contexts and processes live"  # what needs a running session (sessions.running_session)


class LiveRecords(Protocol[T_co]):
    """ContextRepository and ProcessRepository, as far as ending and updating go."""

    def get(self, record_id: str, /) -> T_co | None: ...
    def update(self, record_id: str, fields: Mapping[str, Any], /, *, only_from: Any) -> T_co: ...
    def live_ids(self, session_id: str, /) -> list[str]: ...


def store(
    records: LiveRecords[T],
    record_id: str,
    record: T,
    fields: Mapping[str, Any],
    *,
    live: Iterable[str],
    not_found: Callable[[], SandboxError],
) -> T:
    """Write what changed while the record is still live; if another writer ended it first, theirs stands."""
    changed = {k: v for k, v in fields.items() if getattr(record, k) != v}
    if not changed:
        return record
    try:
        return records.update(record_id, {**changed, "updated_at": clock.now()}, only_from=tuple(live))
    except StateConflict:
        current = records.get(record_id)
        if current is None:
            raise not_found() from None
        return current


def settle(
    records: LiveRecords[T],
    record_id: str,
    record: T,
    session: Session,
    *,
    is_live: bool,
    live: Iterable[str],
    not_found: Callable[[], SandboxError],
) -> T:
    """A live record of an ended session is ended (the end hook missed it, or has not run yet)."""
    if not is_live or session.status in ACTIVE_SESSION_STATUSES:
        return record
    ended = {"status": "ended", "ended_at": session.terminated_at or clock.now()}
    return store(records, record_id, record, ended, live=live, not_found=not_found)


def end_for_session(records: LiveRecords[T], session_id: str, *, live: Iterable[str]) -> int:
    """Mark the session's live records ended (the sandbox is gone with them). Returns how many."""
    now = clock.now()
    ended = 0
    for record_id in records.live_ids(session_id):
        try:
            records.update(record_id, {"status": "ended", "ended_at": now, "updated_at": now}, only_from=live)
            ended += 1
        except StateConflict:
            continue  # deleted, exited or ended meanwhile
    return ended
