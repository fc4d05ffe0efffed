"""Sessions table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import UpdateError

from sandboxcp.adapters.dynamo.common import (
    condition_failed,
    from_record,
    get_item,
    query_page,
    record_fields,
    update_actions,
)
from sandboxcp.adapters.dynamo.tenants import DynamoTenantQuotas, Share
from sandboxcp.adapters.tables import SessionRecord
from sandboxcp.domain.errors import StateConflict
from sandboxcp.domain.models import Session
from sandboxcp.domain.ports import Page
from sandboxcp.domain.quotas import session_footprint
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.states import ACTIVE_SESSION_STATUSES, SessionStatus, session_sources
from sandboxcp.domain.workspace import WORKSPACE_RETENTION

PURGE_PENDING = "1"


# Every Session field is a SessionRecord attribute of the same name (tests/unit/test_contract_constants.py);
# the record adds only the index keys (tenant_status, active_status, purge_*).
SESSION_FIELDS = record_fields(Session)


class DynamoSessionRepository:
    def __init__(
        self, quotas: DynamoTenantQuotas | None = None, *, retention: timedelta = timedelta(days=7)
    ) -> None:
        # quotas: a session takes its tenant's quota share in its create's transaction and gives it back
        # in the one that ends it. retention: an ended session's item expires (TTL `expires_at`) after it.
        self._quotas = quotas
        self._retention = retention

    @staticmethod
    def _to_domain(r: SessionRecord) -> Session:
        return from_record(Session, r, SESSION_FIELDS)

    @staticmethod
    def _status_fields(tenant_id: str, status: SessionStatus, now: datetime | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "status": status.value,
            "tenant_status": f"{tenant_id}#{status.value}",
            "active_status": status.value if status in ACTIVE_SESSION_STATUSES else None,
        }
        if now is not None and status not in ACTIVE_SESSION_STATUSES:
            # An ended session's workspace is kept for the retention period, then purged (FR-007).
            fields.update(purge_pending=PURGE_PENDING, purge_after=now + WORKSPACE_RETENTION)
        return fields

    def create(self, session: Session, *, enforce_quota: bool = False) -> None:
        data = session.model_dump(exclude={"status", "resources"})
        record = SessionRecord(
            **data,
            resources=session.resources.model_dump(),
            **{
                k: v
                for k, v in self._status_fields(session.tenant_id, session.status).items()
                if v is not None
            },
        )
        condition = SessionRecord.session_id.does_not_exist()
        if self._quotas is None:
            record.save(condition=condition)
            return
        record.quota_counted = True
        share = Share.session(session.tenant_id, *session_footprint(session.resources))
        self._quotas.save_with_share(record, condition, share, enforce=enforce_quota)

    def get(self, session_id: str) -> Session | None:
        r = get_item(SessionRecord, session_id)
        return self._to_domain(r) if r else None

    def list_for_tenant(
        self,
        tenant_id: str,
        *,
        status: SessionStatus | None,
        template_id: str | None,
        limit: int,
        offset: int,
        start_key: dict[str, Any] | None = None,
        with_total: bool = True,
    ) -> Page[Session]:
        flt = SessionRecord.template_id == template_id if template_id else None
        return tenant_sessions(
            tenant_id,
            status=status,
            filter_condition=flt,
            limit=limit,
            offset=offset,
            start_key=start_key,
            with_total=with_total,
        )

    def list_active(self) -> list[Session]:
        """Creating and running sessions (a Query per status on the sparse `active` index)."""
        return [
            self._to_domain(r)
            for status in sorted(ACTIVE_SESSION_STATUSES)
            for r in SessionRecord.active.query(status.value)
        ]

    def list_purge_due(self, now: datetime) -> list[str]:
        rows = SessionRecord.purge_due.query(PURGE_PENDING, SessionRecord.purge_after <= now)
        return [r.session_id for r in rows]

    def mark_purged(self, session_id: str) -> None:
        SessionRecord(session_id=session_id).update(
            actions=[SessionRecord.purge_pending.remove(), SessionRecord.purge_after.remove()],
            condition=SessionRecord.session_id.exists(),
        )

    def transition(
        self,
        session_id: str,
        target: SessionStatus,
        *,
        now: datetime,
        fields: Mapping[str, Any] | None = None,
        only_from: Iterable[SessionStatus] | None = None,
    ) -> Session:
        current = get_item(SessionRecord, session_id)
        if current is None:
            raise StateConflict(f"Session '{session_id}' does not exist")
        sources = session_sources(target)
        if only_from is not None:
            sources = sources & frozenset(only_from)
        changes = {**self._status_fields(current.tenant_id, target, now), "updated_at": now, **(fields or {})}
        if target not in ACTIVE_SESSION_STATUSES:
            changes["expires_at"] = int((now + self._retention).timestamp())  # DynamoDB TTL
        condition = SessionRecord.status.is_in(*[s.value for s in sources])
        conflict = StateConflict(f"Session '{session_id}' cannot move to '{target}' from '{current.status}'")
        if current.quota_counted and target not in ACTIVE_SESSION_STATUSES:
            # Ending: the quota share goes back in the same transaction, so exactly once.
            changes["quota_counted"] = None
            resources = ResourceLimit.model_validate(current.resources)
            share = Share.session(current.tenant_id, *session_footprint(resources))
            actions = update_actions(SessionRecord, changes)
            if not DynamoTenantQuotas.update_giving_back(current, actions, condition, share):
                raise conflict
            for name, value in changes.items():
                setattr(current, name, value)
            return self._to_domain(current)
        try:
            current.update(actions=update_actions(SessionRecord, changes), condition=condition)
        except UpdateError as err:
            if condition_failed(err):
                raise conflict from err
            raise
        return self._to_domain(current)

    def update_fields(
        self, session_id: str, fields: Mapping[str, Any], *, only_if: Iterable[SessionStatus]
    ) -> None:
        record = SessionRecord(session_id=session_id)
        try:
            record.update(
                actions=update_actions(SessionRecord, fields),
                condition=SessionRecord.session_id.exists()
                & SessionRecord.status.is_in(*[s.value for s in only_if]),
            )
        except UpdateError as err:
            if condition_failed(err):
                raise StateConflict(f"Session '{session_id}' is no longer in {sorted(only_if)}") from err
            raise

    def workspace_written(self, session_id: str, *, open_until: datetime | None = None) -> None:
        """Count one write to the workspace through the API; `open_until`: a presigned upload may land
        until then (an earlier window is extended, a later one kept)."""
        S = SessionRecord
        count = S.workspace_rev.add(1)
        if open_until is not None:
            extends = S.workspace_open_until.does_not_exist() | (S.workspace_open_until <= open_until)
            try:
                S(session_id=session_id).update(
                    actions=[count, S.workspace_open_until.set(open_until)],
                    condition=S.session_id.exists() & extends,
                )
                return
            except UpdateError as err:
                if not condition_failed(err):
                    raise
        try:
            S(session_id=session_id).update(actions=[count], condition=S.session_id.exists())
        except UpdateError as err:
            if not condition_failed(err):
                raise

    def touch(self, session_id: str, now: datetime) -> None:
        try:
            SessionRecord(session_id=session_id).update(
                actions=[SessionRecord.last_activity_at.set(now)],
                condition=SessionRecord.status == SessionStatus.RUNNING.value,
            )
        except UpdateError as err:
            if not condition_failed(err):
                raise


def tenant_sessions(
    tenant_id: str,
    *,
    status: SessionStatus | None,
    filter_condition: Any,
    limit: int,
    offset: int,
    start_key: dict[str, Any] | None = None,
    with_total: bool = True,
) -> Page[Session]:
    """A tenant's sessions, newest first, from the per-tenant (or per-tenant-and-status) index."""
    index: Any
    if status is not None:
        index, key, hash_attr = SessionRecord.by_tenant_status, f"{tenant_id}#{status.value}", "tenant_status"
    else:
        index, key, hash_attr = SessionRecord.by_tenant, tenant_id, "tenant_id"
    rows, total, next_key = query_page(
        index,
        key,
        key_attrs=("session_id", hash_attr, "created_at"),
        hash_attr=hash_attr,
        limit=limit,
        offset=offset,
        start_key=start_key,
        filter_condition=filter_condition,
        with_total=with_total,
    )
    to_domain = DynamoSessionRepository._to_domain
    return Page(items=[to_domain(r) for r in rows], total=total, next_key=next_key)
