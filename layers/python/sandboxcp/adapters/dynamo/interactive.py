"""Code contexts and background processes tables (issue #12). Each record is keyed by its id, listed per
session through `session_created`, and carries `live_session` (its session's id) only while live, so the
per-session limits and the end of a session read live records only. `expires_at` is the TTL."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pynamodb.exceptions import UpdateError
from pynamodb.models import Model

from sandboxcp.adapters.dynamo.common import (
    condition_failed,
    from_record,
    get_item,
    record_fields,
    update_actions,
)
from sandboxcp.adapters.tables import ContextRecord, ProcessRecord
from sandboxcp.domain.errors import StateConflict
from sandboxcp.domain.models import (
    LIVE_PROCESS_STATUSES,
    BackgroundProcess,
    CodeContext,
)

# Kept this long after creation (sessions live 6 h at most): a week to read exit codes and statuses.
RETENTION = timedelta(days=7)
LIVE_CONTEXT_STATUSES: frozenset[str] = frozenset({"creating", "ready", "busy", "dead"})

E = TypeVar("E", bound=BaseModel)


class _Records(Generic[E]):
    model: type[Any]
    entity: type[E]
    key: str
    live: Collection[str]
    fields: tuple[str, ...]

    def _to_domain(self, r: Model) -> E:
        return from_record(self.entity, r, self.fields)

    def create(self, item: E) -> None:
        data = item.model_dump()
        created: datetime = data["created_at"]
        live = data["session_id"] if data["status"] in self.live else None
        record = self.model(**data, live_session=live, expires_at=int((created + RETENTION).timestamp()))
        record.save(condition=getattr(self.model, self.key).does_not_exist())

    def get(self, item_id: str) -> E | None:
        r = get_item(self.model, item_id)
        return self._to_domain(r) if r else None

    def list_for_session(self, session_id: str) -> list[E]:
        return [self._to_domain(r) for r in self.model.by_session.query(session_id, scan_index_forward=False)]

    def count_live(self, session_id: str) -> int:
        return int(self.model.live.count(session_id))

    def live_ids(self, session_id: str) -> list[str]:
        return [getattr(r, self.key) for r in self.model.live.query(session_id)]

    def update(self, item_id: str, fields: Mapping[str, Any], *, only_from: Iterable[str]) -> E:
        current = get_item(self.model, item_id)
        sources = list(only_from)
        if current is None:
            raise StateConflict(f"'{item_id}' does not exist")
        changes = dict(fields)
        if "status" in changes:
            changes["live_session"] = current.session_id if changes["status"] in self.live else None
        try:
            current.update(
                actions=update_actions(self.model, changes), condition=self.model.status.is_in(*sources)
            )
        except UpdateError as err:
            if condition_failed(err):
                raise StateConflict(f"'{item_id}' is no longer {' or '.join(sources)}") from err
            raise
        return self._to_domain(current)

    def delete(self, item_id: str) -> None:
        self.model(**{self.key: item_id}).delete()


class DynamoContextRepository(_Records[CodeContext]):
    model, entity, key, live = ContextRecord, CodeContext, "context_id", LIVE_CONTEXT_STATUSES
    fields = record_fields(CodeContext)


class DynamoProcessRepository(_Records[BackgroundProcess]):
    model, entity, key, live = ProcessRecord, BackgroundProcess, "process_id", LIVE_PROCESS_STATUSES
    fields = record_fields(BackgroundProcess)
