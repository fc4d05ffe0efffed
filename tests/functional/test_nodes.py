"""Runtime nodes (FR-040/041): probing, 3 consecutive failures -> unhealthy, placement skips them."""

from __future__ import annotations

import http.server
import socketserver
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandboxcp.adapters.probes import RuntimeNodeProber
from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.ports import ProbeResult, RuntimeNode
from sandboxcp.domain.states import SessionStatus
from sandboxcp.services.launch import place_session
from sandboxcp.services.nodes import probe_nodes, register_local_node
from tests.functional.conftest import invoke, sample_event, seed_session

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class ScriptedProber:
    """Probe results injected per node: True/False, consumed in order (then the last one repeats)."""

    def __init__(self, **script: list[bool]) -> None:
        self.script = script
        self.probed: list[str] = []

    def probe(self, node: RuntimeNode) -> ProbeResult:
        self.probed.append(node.node_id)
        answers = self.script.get(node.node_id.replace("-", "_"), [True])
        ok = answers.pop(0) if len(answers) > 1 else answers[0]
        return ProbeResult(ok=ok, detail="" if ok else "connection refused")


def _node(deps, node_id: str, runtime: str = "process", status: str = "healthy") -> None:  # type: ignore[no-untyped-def]
    deps.nodes.register(
        RuntimeNode(node_id=node_id, runtime_type=runtime, endpoint=f"tcp://{node_id}:2375", status=status)
    )  # type: ignore[arg-type]


def _creating(deps, n: int) -> str:  # type: ignore[no-untyped-def]
    sid = f"sess_{n:016d}"
    seed_session(deps, sid, status=SessionStatus.CREATING)
    return sid


def _active_on(deps, node_id: str, n: int) -> None:  # type: ignore[no-untyped-def]
    sid = f"sess_{n:016d}"
    seed_session(deps, sid, status=SessionStatus.RUNNING)
    deps.sessions.update_fields(sid, {"runtime_node": node_id}, only_if=[SessionStatus.RUNNING])


def test_three_consecutive_failures_make_a_node_unhealthy_and_placement_skips_it(deps):
    _node(deps, "local")
    _node(deps, "local-2")
    deps.node_prober = ScriptedProber(local=[False, False, False, False])
    for i, expected in enumerate(["healthy", "healthy", "unhealthy"]):
        report = probe_nodes(deps, now=T0 + timedelta(seconds=10 * i))
        assert report.probed == 2 and report.failed == ["local"]
        node = deps.nodes.get("local")
        assert node.status == expected and node.consecutive_failures == i + 1
        assert node.last_probe_at == T0 + timedelta(seconds=10 * i)
    assert report.became_unhealthy == ["local"]
    assert deps.nodes.get("local-2").status == "healthy"
    assert [n.node_id for n in deps.nodes.list("process", statuses=("unhealthy",))] == ["local"]

    # Sessions on the healthy node outnumber those on the unhealthy one: placement still skips it.
    _active_on(deps, "local-2", 10)
    _active_on(deps, "local-2", 11)
    sid = _creating(deps, 1)
    assert place_session(deps, sid) == {"runtime": "process", "node": "local-2"}
    assert deps.sessions.get(sid).runtime_node == "local-2"


def test_one_success_makes_a_node_healthy_again(deps):
    _node(deps, "local")
    deps.node_prober = ScriptedProber(local=[False, False, False, True])
    for i in range(3):
        probe_nodes(deps, now=T0 + timedelta(seconds=10 * i))
    assert deps.nodes.get("local").status == "unhealthy"
    report = probe_nodes(deps, now=T0 + timedelta(seconds=30))
    assert report.became_healthy == ["local"] and report.failed == []
    node = deps.nodes.get("local")
    assert (node.status, node.consecutive_failures) == ("healthy", 0)


def test_failures_must_be_consecutive(deps):
    _node(deps, "local")
    deps.node_prober = ScriptedProber(local=[False, False, True, False, False, True])
    for i in range(6):
        probe_nodes(deps, now=T0 + timedelta(seconds=10 * i))
        assert deps.nodes.get("local").status == "healthy"


def test_placement_picks_the_healthy_node_with_the_fewest_active_sessions(deps):
    for node_id in ("node-a", "node-b", "node-c"):
        _node(deps, node_id)
    _node(deps, "node-d", status="draining")
    _node(deps, "docker-1", runtime="docker")  # another runtime's node is never considered
    _active_on(deps, "node-a", 10)
    _active_on(deps, "node-a", 11)
    _active_on(deps, "node-b", 12)
    _active_on(deps, "node-c", 13)
    seed_session(deps, "sess_0000000000000014", status=SessionStatus.TERMINATED)  # ended: not counted
    deps.sessions.update_fields(
        "sess_0000000000000014", {"runtime_node": "node-c"}, only_if=[SessionStatus.TERMINATED]
    )
    assert place_session(deps, _creating(deps, 1))["node"] == "node-b"  # tie b/c: lowest id
    assert place_session(deps, _creating(deps, 2))["node"] == "node-c"  # b now has 2 (the creating one)
    assert place_session(deps, _creating(deps, 3))["node"] == "node-a"  # 2 each: lowest id


def test_without_registered_nodes_placement_keeps_the_single_implicit_node(deps):
    assert place_session(deps, _creating(deps, 1)) == {"runtime": "process", "node": "local"}


def test_with_no_healthy_node_the_launch_fails(deps):
    _node(deps, "local", status="unhealthy")
    _node(deps, "local-2", status="draining")
    with pytest.raises(SandboxUnavailable):
        place_session(deps, _creating(deps, 1))


def test_draining_nodes_keep_their_status_whatever_the_probes_say(deps):
    _node(deps, "local", status="draining")
    deps.node_prober = ScriptedProber(local=[False, False, False, True])
    for i in range(4):
        probe_nodes(deps, now=T0 + timedelta(seconds=10 * i))
        assert deps.nodes.get("local").status == "draining"
    assert deps.nodes.get("local").consecutive_failures == 0


def test_only_the_deployment_runtime_nodes_are_probed(deps):
    _node(deps, "local")
    _node(deps, "docker-1", runtime="docker")
    prober = ScriptedProber()
    deps.node_prober = prober
    result = invoke("schedule_probe_nodes", sample_event("schedule_probe_nodes"))
    assert result == {"probed": 1, "failed": [], "became_unhealthy": [], "became_healthy": []}
    assert prober.probed == ["local"]


def test_a_stale_probe_result_is_not_stored(deps):
    _node(deps, "local")
    assert deps.nodes.record_probe(
        "local", status="healthy", consecutive_failures=1, now=T0, expected_failures=0
    )
    # A second prober that read the node before the first one wrote does not count the failure again.
    assert not deps.nodes.record_probe(
        "local", status="healthy", consecutive_failures=1, now=T0, expected_failures=0
    )
    assert deps.nodes.get("local").consecutive_failures == 1
    assert not deps.nodes.record_probe(
        "ghost", status="healthy", consecutive_failures=0, now=T0, expected_failures=0
    )


def test_registering_again_keeps_the_probe_history(deps):
    node = register_local_node(deps)
    assert (node.node_id, node.runtime_type) == ("local", "process")
    deps.nodes.record_probe("local", status="unhealthy", consecutive_failures=3, now=T0, expected_failures=0)
    register_local_node(deps)
    again = deps.nodes.get("local")
    assert (again.status, again.consecutive_failures, again.last_probe_at) == ("unhealthy", 3, T0)
    assert [n.node_id for n in deps.nodes.list("process", statuses=("unhealthy",))] == ["local"]


# -- the real prober ----------------------------------------------------------------------------------------
class _Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path == "/_ping"
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(b"OK" if ok else b"")

    def log_message(self, *args: object) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):  # type: ignore[no-untyped-def]
        request, _ = super().get_request()
        return request, ("local", 0)


@pytest.fixture
def docker_socket(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "docker.sock")
    server = _UnixHTTPServer(path, _Ping)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield path
    server.shutdown()
    server.server_close()


def _docker_node(endpoint: str) -> RuntimeNode:
    return RuntimeNode(node_id="docker-1", runtime_type="docker", endpoint=endpoint)


def test_docker_nodes_are_pinged_on_their_engine(deps, docker_socket, tmp_path):
    prober = RuntimeNodeProber(deps.settings, lambda: deps.runtime)
    assert prober.probe(_docker_node(f"unix://{docker_socket}")).ok
    missing = prober.probe(_docker_node(f"unix://{tmp_path / 'nope.sock'}"))
    assert not missing.ok and missing.detail

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ping)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert prober.probe(_docker_node(f"http://127.0.0.1:{server.server_port}")).ok
    finally:
        server.shutdown()
        server.server_close()
    assert not prober.probe(_docker_node(f"http://127.0.0.1:{server.server_port}")).ok


def test_the_process_node_check(deps, monkeypatch, tmp_path):
    prober = RuntimeNodeProber(
        deps.settings.model_copy(update={"sandbox_state_dir": str(tmp_path)}), lambda: deps.runtime
    )
    node = RuntimeNode(node_id="local", runtime_type="process", endpoint=f"file://{tmp_path}")
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/bwrap")
    assert prober.probe(node).ok
    monkeypatch.setattr("shutil.which", lambda name: None)
    result = prober.probe(node)
    assert not result.ok and "bwrap" in result.detail


def test_docker_nodes_use_the_runtime_client_when_it_offers_one(deps):
    from sandboxcp.adapters.runtimes.docker import DockerRuntime

    class DockerDouble(DockerRuntime):
        name = "docker"

        def __init__(self) -> None:  # no engine: only the node prober's call is played
            self.pinged: list[str] = []

        def ping_node(self, endpoint: str) -> bool:
            self.pinged.append(endpoint)
            return endpoint.endswith(":2376")

    runtime = DockerDouble()
    prober = RuntimeNodeProber(deps.settings.model_copy(update={"runtime": "docker"}), lambda: runtime)  # type: ignore[arg-type,return-value]
    assert prober.probe(_docker_node("tcp://10.0.0.5:2376")).ok
    assert not prober.probe(_docker_node("tcp://10.0.0.6:2377")).ok
    assert runtime.pinged == ["tcp://10.0.0.5:2376", "tcp://10.0.0.6:2377"]
