"""Placement (FR-004): the seed's scoring (warm sandbox 100, template affinity 50, load 30) over healthy
nodes with room, and the node placement chose is the node the sandbox starts on."""

from __future__ import annotations

import json

import pytest

from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.ports import ProbeResult, RuntimeNode, SandboxHandle, SandboxSpec
from sandboxcp.domain.states import SessionStatus
from sandboxcp.services.launch import place_session, start_sandbox
from sandboxcp.services.nodes import probe_nodes
from sandboxcp.services.placement import Demand, NodeView, best, rank
from sandboxcp.services.warm_pool import refill
from tests.functional.conftest import RecordingRuntime, on_aws_calls, seed_session

IMAGE = "sandboxcp/python-basic:latest"
DEMAND = Demand("python-basic", IMAGE, cpu_cores=1.0, memory_mb=512)


def test_warm_beats_affinity_beats_load():
    idle = NodeView("a-idle", capacity=10)  # load only: 30
    cached = NodeView("b-cached", capacity=10, sandboxes=9, images=frozenset({IMAGE}))  # 50 + 3
    warm = NodeView("c-warm", capacity=10, sandboxes=9, warm={"python-basic": 1})  # 100 + 50 + 3
    assert [s.node_id for s in rank([idle, cached, warm], DEMAND)] == ["c-warm", "b-cached", "a-idle"]
    assert best([idle, cached], DEMAND).node_id == "b-cached"  # type: ignore[union-attr]
    # A session with custom resources cannot take a warm sandbox: the warm node is affinity only.
    custom = Demand("python-basic", IMAGE, 2.0, 1024, warm_eligible=False)
    scored = {s.node_id: s for s in rank([cached, warm], custom)}
    assert not scored["c-warm"].warm and scored["c-warm"].affinity
    # Load breaks ties between equals: the emptier node, then the lower id.
    assert best([NodeView("x", sandboxes=5), NodeView("y", sandboxes=1)], DEMAND).node_id == "y"  # type: ignore[union-attr]
    assert best([NodeView("y"), NodeView("x")], DEMAND).node_id == "x"  # type: ignore[union-attr]


def test_full_and_unhealthy_nodes_are_skipped():
    full = NodeView("full", capacity=2, sandboxes=2, images=frozenset({IMAGE}))
    no_cpu = NodeView("no-cpu", cpu_cores=4.0, cpu_used=3.5, images=frozenset({IMAGE}))
    no_memory = NodeView("no-mem", memory_mb=1024, memory_used_mb=768, images=frozenset({IMAGE}))
    sick = NodeView("sick", status="unhealthy", warm={"python-basic": 3})
    draining = NodeView("draining", status="draining", images=frozenset({IMAGE}))
    spare = NodeView("spare", capacity=50, sandboxes=40)
    assert [s.node_id for s in rank([full, no_cpu, no_memory, sick, draining, spare], DEMAND)] == ["spare"]
    assert best([full, sick], DEMAND) is None
    # A warm sandbox on a node at capacity is still usable: taking it adds nothing to the node.
    packed = NodeView("packed", capacity=2, sandboxes=2, warm={"python-basic": 1})
    assert best([packed, spare], DEMAND).node_id == "packed"  # type: ignore[union-attr]


class NodeHonouringRuntime(RecordingRuntime):
    """Starts the sandbox where the spec says (the docker runtime does; see the integration test)."""

    def start(self, spec: SandboxSpec) -> SandboxHandle:
        handle = super().start(spec)
        return handle.model_copy(update={"node": spec.node or "local"})


def _node(deps, node_id: str, **fields) -> None:  # type: ignore[no-untyped-def]
    deps.nodes.register(
        RuntimeNode(node_id=node_id, runtime_type="process", endpoint=f"file:///{node_id}", **fields)
    )


def _creating(deps, n: int) -> str:  # type: ignore[no-untyped-def]
    sid = f"sess_{n:016d}"
    seed_session(deps, sid, status=SessionStatus.CREATING)
    deps.sessions.update_fields(
        sid, {"container_id": None, "executor_url": None}, only_if=[SessionStatus.CREATING]
    )
    return sid


def _running_on(deps, node_id: str, n: int) -> None:  # type: ignore[no-untyped-def]
    sid = f"sess_{n:016d}"
    seed_session(deps, sid, status=SessionStatus.RUNNING)
    deps.sessions.update_fields(sid, {"runtime_node": node_id}, only_if=[SessionStatus.RUNNING])


def test_the_node_chosen_is_the_node_used(deps):
    deps.runtime = NodeHonouringRuntime()
    _node(deps, "node-a")
    _node(deps, "node-b", cached_images=[IMAGE])  # affinity: the image is there
    _running_on(deps, "node-b", 10)  # more loaded, but affinity wins
    sid = _creating(deps, 1)
    assert place_session(deps, sid)["node"] == "node-b"
    start_sandbox(deps, sid, "task-token")
    [spec] = deps.runtime.started
    assert spec.node == "node-b"
    assert deps.sessions.get(sid).runtime_node == "node-b"  # not overwritten by the start step


def test_full_nodes_are_skipped_and_all_full_fails(deps):
    _node(deps, "node-a", capacity=1, cached_images=[IMAGE])
    _node(deps, "node-b", capacity=1)
    _running_on(deps, "node-a", 10)
    assert place_session(deps, _creating(deps, 1))["node"] == "node-b"  # a is full despite its affinity
    with pytest.raises(SandboxUnavailable, match="room"):
        place_session(deps, _creating(deps, 2))  # b now holds the first one
    # Memory and CPU count too (sessions' resources: 1 core, 512Mi each).
    _node(deps, "node-c", memory_mb=1024)
    _running_on(deps, "node-c", 11)
    assert place_session(deps, _creating(deps, 3))["node"] == "node-c"
    with pytest.raises(SandboxUnavailable):
        place_session(deps, _creating(deps, 4))


def test_warm_sandboxes_steer_placement_and_are_claimed_on_that_node(deps):
    deps.runtime = NodeHonouringRuntime()
    deps.settings = deps.settings.model_copy(update={"warm_pool": "python-basic=1:1"})
    _node(deps, "node-a", cached_images=[IMAGE])
    _node(deps, "node-b", capacity=5)
    for i in range(2):
        _running_on(deps, "node-a", 20 + i)
    # Refill places its warm sandbox by affinity (node-a holds the image) over load.
    refill(deps)
    [warm_spec] = deps.runtime.started
    assert warm_spec.node == "node-a"
    # node-b has no warm sandbox, no image, and less load: the warm node still wins for the session.
    sid = _creating(deps, 1)
    assert place_session(deps, sid)["node"] == "node-a"
    start_sandbox(deps, sid, "task-token")
    assert len(deps.runtime.started) == 1  # claimed, not started cold
    assert deps.sessions.get(sid).container_id == f"proc-{warm_spec.session_id}"
    # A session with custom resources cannot use a warm sandbox: affinity (the image on node-a) decides.
    other = _creating(deps, 2)
    deps.sessions.update_fields(
        other,
        {"resources": {"cpu": "2", "memory": "1Gi", "disk": "1Gi", "max_processes": 128}},
        only_if=[SessionStatus.CREATING],
    )
    assert place_session(deps, other)["node"] == "node-a"


class _AllUp:
    def probe(self, node: RuntimeNode) -> ProbeResult:
        return ProbeResult(ok=True)


def _session_table_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Queries and Scans of the sessions table made while the test runs."""
    from sandboxcp.adapters.tables import SessionRecord

    reads: list[str] = []

    def record(operation: str, request: dict) -> None:  # type: ignore[type-arg]
        if operation in ("dynamodb.Query", "dynamodb.Scan"):
            body = json.loads(request.get("body") or "{}")  # the serialized call
            if body.get("TableName") == SessionRecord.Meta.table_name:
                reads.append(operation)

    on_aws_calls(monkeypatch, record)
    return reads


def test_placement_reads_the_load_the_probe_job_stored_not_the_live_sessions(deps, monkeypatch):
    """Issue #14's scale rule: a launch's cost must not grow with the live sessions. The probe job counts
    them once a cycle and stores the count on each node; a placement reads the nodes and adds its own
    session to the chosen one at once, so launches between two counts see each other."""
    deps.node_prober = _AllUp()
    _node(deps, "node-a")
    _node(deps, "node-b")
    for i in range(3):
        _running_on(deps, "node-a", 10 + i)
    probe_nodes(deps)
    loads = {n: deps.nodes.get(n).load for n in ("node-a", "node-b")}
    assert (loads["node-a"].sandboxes, loads["node-a"].memory_mb) == (3, 3 * 512) and loads[
        "node-b"
    ].sandboxes == 0
    reads = _session_table_reads(monkeypatch)
    placed = [place_session(deps, _creating(deps, n))["node"] for n in (1, 2, 3, 4)]
    assert reads == []  # no Query or Scan of the sessions table
    assert placed == ["node-b", "node-b", "node-b", "node-a"]  # each placement saw the ones before it
    assert deps.nodes.get("node-b").load.sandboxes == 3 and deps.nodes.get("node-a").load.sandboxes == 4


def test_a_node_full_by_its_stored_load_is_recounted_before_a_launch_is_refused(deps):
    """The stored load still holds sessions that ended since the last count: placement counts afresh
    rather than refuse a launch a node has room for."""
    deps.node_prober = _AllUp()
    _node(deps, "node-a", capacity=1)
    _running_on(deps, "node-a", 10)
    probe_nodes(deps)
    assert deps.nodes.get("node-a").load.sandboxes == 1
    deps.sessions.transition(
        f"sess_{10:016d}", SessionStatus.TERMINATED, now=deps.sessions.get(f"sess_{10:016d}").updated_at
    )
    assert place_session(deps, _creating(deps, 1))["node"] == "node-a"
    assert deps.nodes.get("node-a").load.sandboxes == 1  # counted (0) and the new one added
    with pytest.raises(SandboxUnavailable, match="room"):
        place_session(deps, _creating(deps, 2))  # now it really is full
