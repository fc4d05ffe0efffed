"""Placement on real Docker engines: the node placement chose is the engine the sandbox starts on, and
the container's usage (CPU, memory, disk) is measured there.

Two docker nodes on this machine: the default one (DOCKER_HOST, "local-docker") and "docker-b", a second
engine endpoint (a unix-socket proxy in front of the same dockerd that records every request, so the test
sees which endpoint the runtime spoke to). Control plane in process on moto."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from sandboxcp.adapters.runtimes.docker import DockerRuntime, TableNodeRegistry, node_from_host
from sandboxcp.domain.ports import RuntimeNode
from sandboxcp.domain.states import SessionStatus
from sandboxcp.local.aws import aws_environment, local_settings_env, provision
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.launch import place_session, start_sandbox
from sandboxcp.services.templates import seed_default_templates
from sandboxcp.settings import get_settings
from tests.functional.conftest import RecordingExecutor, seed_session
from tests.integration.conftest import docker

ENGINE = "/var/run/docker.sock"


class RecordingProxy:
    """A unix socket that forwards every connection to the engine and records each request line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.requests: list[str] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(ENGINE)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record and data[:4] in (b"GET ", b"POST", b"DELE", b"PUT ", b"HEAD"):
                    self.requests.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def two_nodes(docker_engine: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple]:  # type: ignore[type-arg]
    state = Path("/tmp") / f"sbx-place-{os.getpid()}"  # short: socket paths have a length limit
    state.mkdir(exist_ok=True)
    for key, value in {**aws_environment(""), **local_settings_env(str(state), "docker")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    cp = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # the control plane's socket (never called here)
    cp.bind(str(state / "internal.sock"))
    proxy = RecordingProxy(state / "docker-b.sock")
    with mock_aws():
        get_settings.cache_clear()
        monkeypatch.setenv("LAUNCH_STATE_MACHINE_ARN", provision(get_settings()))
        get_settings.cache_clear()
        deps = Dependencies(get_settings())
        seed_default_templates(deps)
        runtime = DockerRuntime(
            [node_from_host(f"unix://{ENGINE}")],
            state_dir=str(state),
            callback_base_url=f"unix://{state / 'internal.sock'}",
            owner=f"placement-test-{os.getpid()}",
            registry=TableNodeRegistry(deps.settings),
        )
        deps.runtime = runtime
        deps.executor = RecordingExecutor()  # the executor stays unbound: nothing here runs code
        # The default engine is full (capacity 0); docker-b has room: placement must pick docker-b.
        deps.nodes.register(
            RuntimeNode(
                node_id="local-docker", runtime_type="docker", endpoint=f"unix://{ENGINE}", capacity=0
            )
        )
        deps.nodes.register(
            RuntimeNode(
                node_id="docker-b",
                runtime_type="docker",
                endpoint=f"unix://{state / 'docker-b.sock'}",
                capacity=5,
            )
        )
        try:
            yield deps, runtime, proxy
        finally:
            runtime.destroy_all()
            proxy.close()
            cp.close()
            get_settings.cache_clear()


def test_the_sandbox_starts_on_the_engine_placement_chose_and_reports_usage(two_nodes):  # type: ignore[no-untyped-def]
    deps, runtime, proxy = two_nodes
    sid = "sess_placement0000001"
    seed_session(deps, sid, status=SessionStatus.CREATING)
    deps.sessions.update_fields(
        sid, {"container_id": None, "executor_url": None}, only_if=[SessionStatus.CREATING]
    )
    assert place_session(deps, sid) == {"runtime": "docker", "node": "docker-b"}
    start_sandbox(deps, sid, "task-token")
    session = deps.sessions.get(sid)
    assert session.runtime_node == "docker-b"
    assert session.container_id.endswith("@docker-b")  # every later call finds its engine from the id
    assert any(r.startswith("POST ") and "/containers/create" in r for r in proxy.requests), proxy.requests
    engine_id = session.container_id.partition("@")[0]
    labels = docker("inspect", "-f", '{{index .Config.Labels "sandboxcp.session"}}', engine_id).stdout.strip()
    assert labels == sid
    # A fresh runtime (another Lambda invocation) reaches it through the id alone.
    fresh = DockerRuntime(
        [node_from_host(f"unix://{ENGINE}")],
        state_dir=runtime.state_dir,
        callback_base_url=runtime.callback_base_url,
        registry=TableNodeRegistry(deps.settings),
    )
    before = len(proxy.requests)
    assert fresh.state(session.container_id) == "running"
    assert len(proxy.requests) > before  # asked docker-b, not the default engine
    # Usage of a running container: CPU, memory and the workspace's disk.
    usage = fresh.usage([session.container_id])[session.container_id]
    assert usage.memory_bytes > 0 and usage.memory_limit_bytes == 512 * 1024 * 1024
    assert 0 < usage.memory_percent < 100 and usage.cpu_percent is not None and usage.cpu_percent >= 0
    assert (
        usage.disk_bytes is not None
        and usage.disk_limit_bytes
        and usage.disk_limit_bytes >= 900 * 1024 * 1024
    )
    assert session.container_id in {m.container_id for m in runtime.list_managed()}
    fresh.destroy(session.container_id)
    assert fresh.state(session.container_id) == "missing"
