"""Runtime nodes table: the hosts that run sandboxes and their probe history.

Nodes are read per runtime and status through the `runtime_status` index (`<runtime>#<status>`), never
by a Scan. Probe outcomes are conditional writes on the failure count read before the probe, so two
overlapping probe runs never both count the same failure. A node's load (for placement) is counted from
the sessions table's sparse `active` index, so its cost follows live sessions, not history, and stored on
the node's item, where each placement adds to it with an atomic counter update."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pynamodb.exceptions import UpdateError

from sandboxcp.adapters.dynamo.common import condition_failed, get_item
from sandboxcp.adapters.tables import RuntimeNodeRecord, SessionRecord
from sandboxcp.domain.ports import NODE_STATUSES, NodeLoad, NodeStatus, RuntimeNode
from sandboxcp.domain.resources import quantity_mb
from sandboxcp.domain.states import ACTIVE_SESSION_STATUSES

_ACTIVE = sorted(s.value for s in ACTIVE_SESSION_STATUSES)


def _to_domain(r: RuntimeNodeRecord) -> RuntimeNode:
    return RuntimeNode(
        node_id=r.node_id,
        runtime_type=r.runtime_type,
        endpoint=r.endpoint,
        status=r.status,  # type: ignore[arg-type]
        capacity=int(r.capacity if r.capacity is not None else 50),
        cpu_cores=float(r.cpu_capacity) if r.cpu_capacity is not None else None,
        memory_mb=int(r.memory_capacity_mb) if r.memory_capacity_mb is not None else None,
        cached_images=sorted(r.cached_images or []),
        labels=r.labels or {},
        consecutive_failures=int(r.consecutive_failures or 0),
        last_probe_at=r.last_probe_at,
        load=(
            NodeLoad(
                sandboxes=int(r.load_sandboxes or 0),
                cpu=float(r.load_cpu or 0),
                memory_mb=int(r.load_memory_mb or 0),
                counted_at=r.load_counted_at,
            )
            if r.load_counted_at is not None
            else None
        ),
    )


class DynamoNodeRepository:
    def register(self, node: RuntimeNode) -> None:
        existing = get_item(RuntimeNodeRecord, node.node_id)
        if existing is not None:
            # Refresh what the operator controls; keep the probe history and the current health.
            existing.update(
                actions=[
                    RuntimeNodeRecord.runtime_type.set(node.runtime_type),
                    RuntimeNodeRecord.endpoint.set(node.endpoint),
                    RuntimeNodeRecord.capacity.set(node.capacity),
                    (
                        RuntimeNodeRecord.cpu_capacity.set(node.cpu_cores)
                        if node.cpu_cores is not None
                        else RuntimeNodeRecord.cpu_capacity.remove()
                    ),
                    (
                        RuntimeNodeRecord.memory_capacity_mb.set(node.memory_mb)
                        if node.memory_mb is not None
                        else RuntimeNodeRecord.memory_capacity_mb.remove()
                    ),
                    RuntimeNodeRecord.labels.set(node.labels),
                    RuntimeNodeRecord.runtime_status.set(f"{node.runtime_type}#{existing.status}"),
                ]
            )
            return
        RuntimeNodeRecord(
            node_id=node.node_id,
            runtime_type=node.runtime_type,
            endpoint=node.endpoint,
            status=node.status,
            runtime_status=f"{node.runtime_type}#{node.status}",
            capacity=node.capacity,
            cpu_capacity=node.cpu_cores,
            memory_capacity_mb=node.memory_mb,
            cached_images=node.cached_images or None,
            labels=node.labels,
            consecutive_failures=node.consecutive_failures,
            last_probe_at=node.last_probe_at,
        ).save()

    def get(self, node_id: str) -> RuntimeNode | None:
        r = get_item(RuntimeNodeRecord, node_id)
        return _to_domain(r) if r else None

    def list(self, runtime_type: str, *, statuses: Iterable[NodeStatus] = NODE_STATUSES) -> list[RuntimeNode]:
        return [
            _to_domain(r)
            for status in statuses
            for r in RuntimeNodeRecord.by_status.query(f"{runtime_type}#{status}")
        ]

    def record_probe(
        self,
        node_id: str,
        *,
        status: NodeStatus,
        consecutive_failures: int,
        now: datetime,
        expected_failures: int,
    ) -> bool:
        record = get_item(RuntimeNodeRecord, node_id)
        if record is None:
            return False
        try:
            record.update(
                actions=[
                    RuntimeNodeRecord.status.set(status),
                    RuntimeNodeRecord.runtime_status.set(f"{record.runtime_type}#{status}"),
                    RuntimeNodeRecord.consecutive_failures.set(consecutive_failures),
                    RuntimeNodeRecord.last_probe_at.set(now),
                ],
                condition=RuntimeNodeRecord.consecutive_failures == expected_failures,
            )
        except UpdateError as err:
            if condition_failed(err):
                return False
            raise
        return True

    def add_images(self, node_id: str, images: Iterable[str]) -> None:
        """Set the node's cached images (a JSON list: the table's attribute predates sets)."""
        record = get_item(RuntimeNodeRecord, node_id)
        if record is None:
            return
        merged = sorted(set(record.cached_images or []) | set(images))
        if merged != sorted(record.cached_images or []):
            record.update(actions=[RuntimeNodeRecord.cached_images.set(merged)])

    def active_load(self, runtime_type: str) -> dict[str, tuple[int, float, int]]:
        load: dict[str, tuple[int, float, int]] = {}
        flt = (SessionRecord.runtime_type == runtime_type) & SessionRecord.runtime_node.exists()
        attrs = ["runtime_node", "resources"]
        for status in _ACTIVE:
            for r in SessionRecord.active.query(status, filter_condition=flt, attributes_to_get=attrs):
                res = r.resources or {}
                count, cpu, mem = load.get(str(r.runtime_node), (0, 0.0, 0))
                load[str(r.runtime_node)] = (
                    count + 1,
                    cpu + float(res.get("cpu", "1")),
                    mem + quantity_mb(str(res.get("memory", "512Mi"))),
                )
        return load

    def store_load(
        self, nodes: Iterable[str], load: dict[str, tuple[int, float, int]], now: datetime
    ) -> None:
        for node_id in nodes:
            count, cpu, memory = load.get(node_id, (0, 0.0, 0))
            _update_if_registered(
                node_id,
                [
                    RuntimeNodeRecord.load_sandboxes.set(count),
                    RuntimeNodeRecord.load_cpu.set(cpu),
                    RuntimeNodeRecord.load_memory_mb.set(memory),
                    RuntimeNodeRecord.load_counted_at.set(now),
                ],
            )

    def add_load(self, node_id: str, cpu: float, memory_mb: int) -> None:
        _update_if_registered(
            node_id,
            [
                RuntimeNodeRecord.load_sandboxes.add(1),
                RuntimeNodeRecord.load_cpu.add(cpu),
                RuntimeNodeRecord.load_memory_mb.add(memory_mb),
            ],
        )


def _update_if_registered(node_id: str, actions: list[Any]) -> None:
    """Apply `actions` to the node's item; a node removed meanwhile is not brought back."""
    try:
        RuntimeNodeRecord(node_id=node_id).update(
            actions=actions, condition=RuntimeNodeRecord.node_id.exists()
        )
    except UpdateError as err:
        if not condition_failed(err):
            raise
