"""The local stack on a remote Docker engine (`sandboxcp local --runtime docker-remote`), as deployed: the
docker runtime reaches the engine over TCP with mutual TLS (its client certificate from the Secrets Manager
secret DOCKER_TLS_SECRET_ARN names, in moto), runs each sandbox on the sandbox network (or the open one,
for a template with network), reaches the executor at the port the engine published, and the executor
calls the internal API and moves the workspace over HTTP (presigned requests through the S3 front). No
unix socket goes into a sandbox."""

from __future__ import annotations

import json
import re
import socket
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Stack, start_stack, stop_stack, wait_for
from tests.integration.conftest import create_running_session, docker, inspect, run_code


def _docker_host_port(stack: Stack) -> int:
    found = re.search(r"^DOCKER_HOST=tcp://127\.0\.0\.1:(\d+)$", stack.output(), re.M)
    assert found, stack.output()[-2000:]
    return int(found.group(1))


def _sandboxes(stack: Stack) -> list[str]:
    """Containers of this stack (the docker runtime labels them with its state dir)."""
    return docker("ps", "-aq", "--filter", f"label=sandboxcp.owner={stack.state_dir}").stdout.split()


def _env(container: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container["Config"]["Env"])


@pytest.fixture(scope="module")
def remote_stack(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("docker-remote-stack"), runtime="docker-remote")
    yield stack
    stop_stack(stack)
    assert wait_for(lambda: not _sandboxes(stack), timeout=30), "a sandbox outlived the stack"
    networks = docker("network", "ls", "-q", "--filter", "label=sandboxcp.docker-remote").stdout.split()
    mine = [n for n in networks if str(stack.process.pid) in docker("network", "inspect", n).stdout]
    assert not mine, "a sandbox network outlived the stack"


def test_the_engine_answers_only_over_tls_with_a_client_certificate(remote_stack: Stack) -> None:
    port = _docker_host_port(remote_stack)
    request = b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"
    # Plain HTTP: no answer an HTTP client could read.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        plain.sendall(request)
        try:
            answer = plain.recv(1024)
        except OSError:
            answer = b""
    assert not answer.startswith(b"HTTP/"), answer
    # TLS without a client certificate: the handshake (or the first read after it) fails.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        pytest.raises((ssl.SSLError, ConnectionError, OSError)),
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(request)
        if not tls.recv(1024):
            raise ConnectionError("closed without an answer")
    # The control plane, with the certificate from its secret, pings the engine (the health check).
    with remote_stack.client() as api:
        runtime = api.get("/health").json()["checks"]["runtime"]
    assert runtime["status"] == "healthy" and runtime["runtime"] == "docker", runtime


def test_a_sandbox_runs_on_the_remote_engine_as_deployed(remote_stack: Stack) -> None:
    with remote_stack.client() as api:
        sid = create_running_session(api, env_vars={"GREETING": "hello-from-bind"})
        session = api.get(f"/sessions/{sid}").json()
        assert session["runtime_node"] == "127.0.0.1", session  # the engine's host, from DOCKER_HOST
        container = inspect(session["container_id"].partition("@")[0])
        assert container is not None
        host = container["HostConfig"]
        assert host["NetworkMode"].endswith("-sandboxes"), host["NetworkMode"]
        assert host["PortBindings"]["8080/tcp"][0]["HostIp"] == "127.0.0.1", host["PortBindings"]
        assert not host.get("Binds"), host.get("Binds")  # no socket, no host directory
        assert "/workspace" in (host.get("Tmpfs") or {}), host.get("Tmpfs")
        env = _env(container)
        # The token comes with the bind, never in the container's config (the docker runtime does put the
        # session's env vars there: whoever can inspect a container on the engine owns its host anyway).
        assert not [k for k in env if "TOKEN" in k] and "cb_" not in json.dumps(container), env
        callback = urlsplit(env["SANDBOXCP_CALLBACK_URL"])
        assert callback.scheme == "http" and env["SANDBOXCP_S3_VIA"] == env["SANDBOXCP_CALLBACK_URL"], env
        assert env["SANDBOXCP_LISTEN"] == "tcp:0.0.0.0:8080", env
        # The workspace both ways over presigned HTTP: a file put through the API is read by the code,
        # a file the code writes comes back through the API.
        put = api.post(f"/sessions/{sid}/files/upload", files={"file": ("in.txt", b"from the api")})
        assert put.status_code in (200, 201), put.text
        status, result = run_code(
            api,
            sid,
            "import os\ndef handler(e):\n    open('/workspace/out.txt', 'w').write('from the sandbox')\n"
            "    return [os.getuid(), os.environ.get('GREETING'), open('/workspace/in.txt').read()]",
        )
        assert status == "completed", result
        assert result["return_value"] == [1000, "hello-from-bind", "from the api"], result
        got = api.get(f"/sessions/{sid}/files/out.txt")
        assert got.status_code == 200 and got.content == b"from the sandbox", got.text
        assert api.delete(f"/sessions/{sid}").status_code == 200


def test_a_template_with_network_runs_on_the_open_network(remote_stack: Stack) -> None:
    with remote_stack.client() as api:
        created = api.post(
            "/templates",
            json={
                "id": "open-remote",
                "name": "open on docker-remote",
                "image": "sandboxcp/python-basic:latest",
                "default_resources": {"cpu": "0.5", "memory": "256Mi", "disk": "1Gi"},
                "security_context": {"network_enabled": True},
            },
        )
        assert created.status_code == 201, created.text
        sid = create_running_session(api, template_id="open-remote")
        container = inspect(api.get(f"/sessions/{sid}").json()["container_id"].partition("@")[0])
        assert container is not None
        assert container["HostConfig"]["NetworkMode"].endswith("-open"), container["HostConfig"]
        status, result = run_code(api, sid, "def handler(e):\n    return 'ran'")
        assert status == "completed" and result["return_value"] == "ran", result
        api.delete(f"/sessions/{sid}")
