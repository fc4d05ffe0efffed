"""Operator views over the sessions and executions tables: container listings, template usage, node load
and the live gauges of GET /metrics. Every read is a Query (or a Query's COUNT) on an index:

- `active` (sparse: creating/running only) for anything about live sandboxes, so its cost follows active
  work, not history;
- `status_created` for an admin's listing filtered by status (all tenants);
- `tenant_created` / `tenant_status` for a tenant's own containers and its live-session gauge;
- executions `inflight` (sparse: pending/running only) for the in-flight gauge (a tenant's: filtered)."""

from __future__ import annotations

from pynamodb.expressions.condition import Condition

from sandboxcp.adapters.dynamo.common import page_slice
from sandboxcp.adapters.dynamo.sessions import DynamoSessionRepository, tenant_sessions
from sandboxcp.adapters.tables import ExecutionRecord, SessionRecord
from sandboxcp.domain.models import Session
from sandboxcp.domain.ports import Page
from sandboxcp.domain.states import ACTIVE_SESSION_STATUSES, SessionStatus

_INFLIGHT = "1"  # the executions table's sparse `inflight` marker
_ACTIVE = sorted(s.value for s in ACTIVE_SESSION_STATUSES)
_to_domain = DynamoSessionRepository._to_domain


def _container_filter(runtime_type: str | None, tenant_id: str | None = None) -> Condition:
    cond: Condition = SessionRecord.container_id.exists()
    if runtime_type:
        cond = cond & (SessionRecord.runtime_type == runtime_type)
    if tenant_id:
        cond = cond & (SessionRecord.tenant_id == tenant_id)
    return cond


class DynamoOperationsQueries:
    # -- counts ------------------------------------------------------------------------------------------
    def count_active_for_template(self, template_id: str) -> int:
        flt = SessionRecord.template_id == template_id
        return sum(SessionRecord.active.count(s, filter_condition=flt) for s in _ACTIVE)

    def count_active_on_node(self, node_id: str) -> int:
        flt = SessionRecord.runtime_node == node_id
        return sum(SessionRecord.active.count(s, filter_condition=flt) for s in _ACTIVE)

    def count_active(self, tenant_id: str | None = None) -> dict[str, int]:
        if tenant_id is None:
            return {s: SessionRecord.active.count(s) for s in _ACTIVE}
        # The tenant's own partition per status: its cost follows that tenant's live sessions.
        return {s: SessionRecord.by_tenant_status.count(f"{tenant_id}#{s}") for s in _ACTIVE}

    def count_inflight_executions(self, tenant_id: str | None = None) -> int:
        # No per-tenant execution index: the sparse in-flight index, filtered, still reads live work only.
        flt = None if tenant_id is None else ExecutionRecord.tenant_id == tenant_id
        return int(ExecutionRecord.inflight_index.count(_INFLIGHT, filter_condition=flt))

    # -- container listings ------------------------------------------------------------------------------
    def containers_by_status(
        self, status: SessionStatus, *, runtime_type: str | None, limit: int, offset: int
    ) -> Page[Session]:
        flt = _container_filter(runtime_type)
        total = SessionRecord.by_status.count(status.value, filter_condition=flt)
        rows = SessionRecord.by_status.query(status.value, filter_condition=flt, scan_index_forward=False)
        return Page(items=[_to_domain(r) for r in page_slice(rows, limit, offset)], total=total)

    def active_containers(self, *, runtime_type: str | None) -> list[Session]:
        flt = _container_filter(runtime_type)
        return [_to_domain(r) for s in _ACTIVE for r in SessionRecord.active.query(s, filter_condition=flt)]

    def containers_for_tenant(
        self,
        tenant_id: str,
        *,
        status: SessionStatus | None,
        runtime_type: str | None,
        limit: int,
        offset: int,
    ) -> Page[Session]:
        return tenant_sessions(
            tenant_id,
            status=status,
            filter_condition=_container_filter(runtime_type),
            limit=limit,
            offset=offset,
        )

    def find_by_container(self, container_id: str, *, tenant_id: str | None) -> Session | None:
        flt = (SessionRecord.container_id == container_id) & (
            (SessionRecord.tenant_id == tenant_id) if tenant_id else SessionRecord.tenant_id.exists()
        )
        for s in _ACTIVE:
            for r in SessionRecord.active.query(s, filter_condition=flt):
                return _to_domain(r)
        if tenant_id:  # an ended container: look through the tenant's own sessions only
            for r in SessionRecord.by_tenant.query(tenant_id, filter_condition=flt, scan_index_forward=False):
                return _to_domain(r)
        return None
