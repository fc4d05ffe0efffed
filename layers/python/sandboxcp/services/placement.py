"""Placement scoring (FR-004, the seed's scheduler): which node a session's sandbox runs on.

Pure functions over a snapshot of the runtime's nodes (`NodeView`): no I/O here, so the rules are tested
directly and every caller (the launch workflow's place step, the warm-pool refill, the inline claim)
applies the same ones.

Eligible nodes are `healthy` and have room for the request: fewer sandboxes than `capacity`, and (where
the node declares them) enough free CPU cores and memory for the session's resources. Sandboxes count
whether a session holds them or they wait in a warm pool: both occupy the host.

Each eligible node scores (weights from the seed):
- **warm sandbox 100**: the node holds an unclaimed warm sandbox of the template that the session can take
  (it asks for the template's default resources);
- **template affinity 50**: the node already holds the template's image, or warm sandboxes of it
  (whether or not this session can use them), so nothing is pulled;
- **load 30 x free share**: 30 on an idle node, 0 on a full one; the share is the most used of sandboxes,
  CPU and memory.
The weights make the order strict: a warm node (>= 100) beats any affinity-only node (< 80), which beats
any node with neither (<= 30). Ties go to the node with the lower load, then the lower id."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

WARM_SCORE = 100.0
AFFINITY_SCORE = 50.0
LOAD_SCORE = 30.0


@dataclass(frozen=True)
class Demand:
    """What the session asks for."""

    template_id: str
    image: str
    cpu_cores: float
    memory_mb: int
    warm_eligible: bool = True  # default resources: a warm sandbox of the template fits


@dataclass
class NodeView:
    """A node with what it holds now."""

    node_id: str
    status: str = "healthy"
    capacity: int = 50  # sandboxes
    cpu_cores: float | None = None  # None: not limited by placement
    memory_mb: int | None = None
    sandboxes: int = 0  # live sessions' sandboxes and unclaimed warm sandboxes
    cpu_used: float = 0.0
    memory_used_mb: int = 0
    images: frozenset[str] = frozenset()
    warm: dict[str, int] = field(default_factory=dict)  # template id -> unclaimed warm sandboxes

    def load(self) -> float:
        """The most used of the node's dimensions, 0..1."""
        shares = [self.sandboxes / self.capacity if self.capacity > 0 else 1.0]
        if self.cpu_cores:
            shares.append(self.cpu_used / self.cpu_cores)
        if self.memory_mb:
            shares.append(self.memory_used_mb / self.memory_mb)
        return min(1.0, max(shares))


@dataclass(frozen=True)
class Scored:
    node_id: str
    score: float
    warm: bool
    affinity: bool
    load: float


def has_room(node: NodeView, demand: Demand, *, takes_warm: bool = False) -> bool:
    """Room for one more sandbox of `demand`. Taking one of the node's warm sandboxes adds nothing: the
    sandbox is already counted there."""
    if takes_warm:
        return True
    if node.sandboxes + 1 > node.capacity:
        return False
    if node.cpu_cores is not None and node.cpu_used + demand.cpu_cores > node.cpu_cores + 1e-9:
        return False
    return not (node.memory_mb is not None and node.memory_used_mb + demand.memory_mb > node.memory_mb)


def score(node: NodeView, demand: Demand) -> Scored | None:
    """The node's score for `demand`; None when it is not eligible (unhealthy, or no room)."""
    if node.status != "healthy":
        return None
    warm = demand.warm_eligible and node.warm.get(demand.template_id, 0) > 0
    if not has_room(node, demand, takes_warm=warm):
        return None
    affinity = demand.image in node.images or node.warm.get(demand.template_id, 0) > 0
    load = node.load()
    total = (WARM_SCORE if warm else 0.0) + (AFFINITY_SCORE if affinity else 0.0) + LOAD_SCORE * (1 - load)
    return Scored(node.node_id, round(total, 6), warm, affinity, load)


def rank(nodes: Iterable[NodeView], demand: Demand) -> list[Scored]:
    """Eligible nodes, best first."""
    scored = [s for s in (score(n, demand) for n in nodes) if s is not None]
    return sorted(scored, key=lambda s: (-s.score, s.load, s.node_id))


def best(nodes: Iterable[NodeView], demand: Demand) -> Scored | None:
    ranked = rank(nodes, demand)
    return ranked[0] if ranked else None
