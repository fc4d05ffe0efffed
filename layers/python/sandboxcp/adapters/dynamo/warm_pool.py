"""Warm pool table: pre-started sandboxes, claimed by one session each with a conditional write, and one
demand record per template (`demand#<template>`: the refill's view of claims per minute). Demand records
carry no `available_template`, so the `available` index never sees them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pynamodb.attributes import JSONAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist, PutError, UpdateError
from pynamodb.models import Model

from sandboxcp.adapters.dynamo.common import condition_failed
from sandboxcp.adapters.tables import WarmSandboxRecord
from sandboxcp.domain.models import WarmSandbox

AVAILABLE, CLAIMED = "available", "claimed"
DEMAND_PREFIX = "demand#"


class _DemandRecord(Model):
    """Shares the warm pool table (its table name is bound from WarmSandboxRecord's at each use)."""

    class Meta:
        table_name = "warm_pool"

    pool_id = UnicodeAttribute(hash_key=True)
    demand = JSONAttribute()
    demand_at = UTCDateTimeAttribute()


def _demand_model() -> type[_DemandRecord]:
    _DemandRecord.Meta.table_name = WarmSandboxRecord.Meta.table_name
    return _DemandRecord


def _to_domain(r: WarmSandboxRecord) -> WarmSandbox:
    return WarmSandbox(
        pool_id=r.pool_id,
        template_id=r.template_id,
        status=r.status,  # type: ignore[arg-type]
        container_id=r.container_id,
        executor_url=r.executor_url,
        node=r.node,
        session_id=r.session_id,
        created_at=r.created_at,
    )


class DynamoWarmPoolRepository:
    def add(self, sandbox: WarmSandbox) -> None:
        WarmSandboxRecord(
            **sandbox.model_dump(exclude={"status"}), status=AVAILABLE, available_template=sandbox.template_id
        ).save(condition=WarmSandboxRecord.pool_id.does_not_exist())

    def available(self, template_id: str, *, limit: int = 50) -> list[WarmSandbox]:
        return [_to_domain(r) for r in WarmSandboxRecord.available.query(template_id, limit=limit)]

    def get(self, pool_id: str) -> WarmSandbox | None:
        try:
            return _to_domain(WarmSandboxRecord.get(pool_id, consistent_read=True))
        except DoesNotExist:
            return None

    def claim(self, pool_id: str, session_id: str) -> bool:
        """Take an available sandbox for a session; False when another session took it first."""
        try:
            WarmSandboxRecord(pool_id=pool_id).update(
                actions=[
                    WarmSandboxRecord.status.set(CLAIMED),
                    WarmSandboxRecord.session_id.set(session_id),
                    WarmSandboxRecord.available_template.remove(),
                ],
                condition=WarmSandboxRecord.status == AVAILABLE,
            )
        except UpdateError as err:
            if condition_failed(err):
                return False
            raise
        return True

    def remove(self, pool_id: str) -> None:
        WarmSandboxRecord(pool_id=pool_id).delete()

    def get_demand(self, template_id: str) -> Mapping[str, Any] | None:
        model = _demand_model()
        try:
            record = model.get(DEMAND_PREFIX + template_id, consistent_read=True)
        except DoesNotExist:
            return None
        return {**(record.demand or {}), "at": record.demand_at}

    def put_demand(
        self, template_id: str, demand: Mapping[str, Any], *, expected_at: datetime | None
    ) -> bool:
        model = _demand_model()
        at = demand["at"]
        body = {k: v for k, v in demand.items() if k != "at"}
        condition = model.pool_id.does_not_exist() if expected_at is None else model.demand_at == expected_at
        try:
            model(pool_id=DEMAND_PREFIX + template_id, demand=body, demand_at=at).save(condition=condition)
        except PutError as err:
            if condition_failed(err):
                return False
            raise
        return True
