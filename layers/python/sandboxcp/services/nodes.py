"""Runtime nodes (FR-040/041): registration, the probe schedule and the node snapshot placement scores.

Every 10 s (`schedule_probe_nodes`: an Express state machine loop in AWS, the ticker locally) each node
of the deployment's runtime is probed. A failure adds one to its consecutive failures and the third in a
row marks it `unhealthy`; one success resets the count and makes it `healthy` again. A `draining` node
(set by an operator) keeps its status whatever its probes say. Nodes are read per status through the
`runtime_status` index, never scanned. A successful probe of a runtime that can list a node's images
(docker) refreshes the node's cached images (template affinity).

Placement (`choose_node`) scores the healthy nodes with room by services/placement.py; with no node
registered for the runtime it keeps the single implicit node; with nodes registered but none eligible
(unhealthy, draining or full) the launch fails with SandboxUnavailable (503-style, the launch workflow
marks the session failed). What a node is per runtime: docs/placement.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from sandboxcp.domain import clock
from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.models import WarmSandbox
from sandboxcp.domain.ports import NodeStatus, RuntimeNode
from sandboxcp.observability import logger, record_metric
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.placement import Demand, NodeView, Scored, best

FAILURE_THRESHOLD = 3
# The local stack's own node: the seed's "1000 concurrent sessions per control plane instance".
LOCAL_NODE_CAPACITY = 1000


@runtime_checkable
class NodeImages(Protocol):
    """Runtimes that can tell which images a node holds (docker)."""

    def node_images(self, node_id: str) -> list[str]: ...


def default_node_id(runtime: str) -> str:
    """The node id a single-node deployment uses (what placement wrote before nodes were registered)."""
    return {"process": "local", "docker": "local-docker"}.get(runtime, runtime)  # as the runtimes name it


def register_local_node(deps: Dependencies) -> RuntimeNode:
    """Register the deployment's own node (local mode: at startup)."""
    runtime = deps.settings.runtime
    endpoint = {
        "process": f"file://{deps.settings.sandbox_state_dir}",
        "docker": deps.settings.docker_host,
    }.get(runtime, runtime)
    # The id the runtime reports as the sandbox's node (docker: "local-docker" for a unix socket).
    node_id = deps.runtime.default_node
    node = RuntimeNode(node_id=node_id, runtime_type=runtime, endpoint=endpoint, capacity=LOCAL_NODE_CAPACITY)
    deps.nodes.register(node)
    return node


@dataclass
class ProbeReport:
    probed: int = 0
    failed: list[str] = field(default_factory=list)
    became_unhealthy: list[str] = field(default_factory=list)
    became_healthy: list[str] = field(default_factory=list)


def _next_state(node: RuntimeNode, ok: bool) -> tuple[NodeStatus, int]:
    failures = 0 if ok else node.consecutive_failures + 1
    if node.status == "draining":
        return "draining", failures
    if ok:
        return "healthy", 0
    return ("unhealthy" if failures >= FAILURE_THRESHOLD else node.status), failures


def probe_nodes(deps: Dependencies, *, now: datetime | None = None) -> ProbeReport:
    now = now or clock.now()
    report = ProbeReport()
    nodes = deps.nodes.list(deps.settings.runtime)
    for node in nodes:
        result = deps.node_prober.probe(node)
        report.probed += 1
        status, failures = _next_state(node, result.ok)
        if not result.ok:
            report.failed.append(node.node_id)
            logger.warning(
                "node probe failed",
                extra={"node_id": node.node_id, "failures": failures, "detail": result.detail},
            )
        stored = deps.nodes.record_probe(
            node.node_id,
            status=status,
            consecutive_failures=failures,
            now=now,
            expected_failures=node.consecutive_failures,
        )
        if stored and status != node.status:
            (report.became_unhealthy if status == "unhealthy" else report.became_healthy).append(node.node_id)
            record_metric("NodeStatusChanges", 1, status=status)
            logger.warning("node status changed", extra={"node_id": node.node_id, "status": status})
        if result.ok:
            _refresh_images(deps, node)
    if nodes:
        recount_load(deps, deps.settings.runtime, [n.node_id for n in nodes])
    return report


def _refresh_images(deps: Dependencies, node: RuntimeNode) -> None:
    runtime = deps.runtime
    if not isinstance(runtime, NodeImages):
        return
    try:
        images = runtime.node_images(node.node_id)
    except SandboxUnavailable as err:
        logger.warning("node images not listed", extra={"node_id": node.node_id, "reason": err.detail})
        return
    if set(images) - set(node.cached_images):
        deps.nodes.add_images(node.node_id, images)


def recount_load(deps: Dependencies, runtime: str, nodes: list[str]) -> dict[str, tuple[int, float, int]]:
    """Count the live sessions on `runtime`'s nodes (one read of the sparse `active` index) and store the
    count on those nodes; the probe job does it every cycle."""
    load = deps.nodes.active_load(runtime)
    deps.nodes.store_load(nodes, load, clock.now())
    return load


def node_views(
    deps: Dependencies, runtime: str, *, warm: list[WarmSandbox] | None = None, exact: bool = False
) -> list[NodeView] | None:
    """The healthy nodes of `runtime` with their load (live sessions plus unclaimed `warm` sandboxes),
    images and warm sandboxes per template. None when the runtime has no registered node (the implicit
    single node); [] when it has nodes but none is healthy.

    The load is the one stored on the nodes (O(nodes) to read, whatever the number of live sessions):
    recounted by the probe job every cycle, and each placement adds its session at once, so a burst of
    launches between two counts is seen; sessions that ended since the last count still weigh until the
    next. `exact` (or a node never counted) counts now instead, from the live sessions."""
    healthy = deps.nodes.list(runtime, statuses=("healthy",))
    if not healthy:
        return [] if deps.nodes.list(runtime, statuses=("unhealthy", "draining")) else None
    if exact or any(n.load is None for n in healthy):
        load = recount_load(deps, runtime, [n.node_id for n in healthy])
    else:
        load = {n.node_id: (n.load.sandboxes, n.load.cpu, n.load.memory_mb) for n in healthy if n.load}
    views = {
        n.node_id: NodeView(
            node_id=n.node_id,
            status=n.status,
            capacity=n.capacity,
            cpu_cores=n.cpu_cores,
            memory_mb=n.memory_mb,
            sandboxes=load.get(n.node_id, (0, 0.0, 0))[0],
            cpu_used=load.get(n.node_id, (0, 0.0, 0))[1],
            memory_used_mb=load.get(n.node_id, (0, 0.0, 0))[2],
            images=frozenset(n.cached_images),
        )
        for n in healthy
    }
    for w in warm or []:
        view = views.get(w.node)
        if view is not None:
            view.sandboxes += 1
            view.warm[w.template_id] = view.warm.get(w.template_id, 0) + 1
    return list(views.values())


def choose_node(
    deps: Dependencies,
    runtime: str,
    demand: Demand,
    warm: list[WarmSandbox] | None = None,
    *,
    reserve: bool = False,
) -> Scored:
    """The best node for `demand` by services/placement.py (see the module docstring). `reserve`: a
    session will run there; its size is added to the node's stored load at once."""
    views = node_views(deps, runtime, warm=warm)
    if views is None:
        implicit = default_node_id(runtime)
        has_warm = demand.warm_eligible and any(w.node == implicit for w in warm or [])
        return Scored(implicit, 0.0, has_warm, has_warm, 0.0)
    chosen = best(views, demand)
    if chosen is None and views:
        # The stored load may still hold sessions that ended since it was counted: count before refusing.
        views = node_views(deps, runtime, warm=warm, exact=True) or []
        chosen = best(views, demand)
    if chosen is not None and reserve:
        deps.nodes.add_load(chosen.node_id, demand.cpu_cores, demand.memory_mb)
    if chosen is None:
        raise SandboxUnavailable(
            f"No healthy {runtime} node has room for the session"
            if views
            else f"No healthy {runtime} node is available",
            solution="Retry later, or ask an operator to add nodes or raise their capacity",
        )
    return chosen
