"""Runtime nodes (FR-040/041): registration, the probe schedule and node choice for placement.

Every 10 s (`schedule_probe_nodes`: an Express state machine loop in AWS, the ticker locally) each node
of the deployment's runtime is probed. A failure adds one to its consecutive failures and the third in a
row marks it `unhealthy`; one success resets the count and makes it `healthy` again. A `draining` node
(set by an operator) keeps its status whatever its probes say. Nodes are read per status through the
`runtime_status` index, never scanned.

Placement takes the healthy node with the fewest active sessions (ties: lowest node id); with no node
registered for the runtime it keeps the single implicit node; with nodes registered but none healthy
the launch fails with SandboxUnavailable (503-style, the launch workflow marks the session failed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sandboxcp.domain import clock
from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.ports import NodeStatus, RuntimeNode
from sandboxcp.observability import logger, record_metric
from sandboxcp.services.deps import Dependencies

FAILURE_THRESHOLD = 3


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
    node_id = str(getattr(deps.runtime, "default_node", None) or default_node_id(runtime))
    node = RuntimeNode(node_id=node_id, runtime_type=runtime, endpoint=endpoint)
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
    for node in deps.nodes.list(deps.settings.runtime):
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
    return report


def choose_node(deps: Dependencies, runtime: str) -> str:
    """The healthy node of `runtime` with the fewest active sessions (see the module docstring)."""
    healthy = deps.nodes.list(runtime, statuses=("healthy",))
    if not healthy:
        if deps.nodes.list(runtime, statuses=("unhealthy", "draining")):
            raise SandboxUnavailable(f"No healthy {runtime} node is available")
        return default_node_id(runtime)
    if len(healthy) == 1:
        return healthy[0].node_id
    load = {n.node_id: deps.ops.count_active_on_node(n.node_id) for n in healthy}
    return min(healthy, key=lambda n: (load[n.node_id], n.node_id)).node_id
