"""Warm pool table: pre-started sandboxes, claimed by one session each with a conditional write."""

from __future__ import annotations

from pynamodb.exceptions import DoesNotExist, UpdateError

from sandboxcp.adapters.dynamo.common import condition_failed
from sandboxcp.adapters.tables import WarmSandboxRecord
from sandboxcp.domain.models import WarmSandbox

AVAILABLE, CLAIMED = "available", "claimed"


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
