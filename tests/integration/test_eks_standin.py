"""The eks runtime against the Kubernetes API stand-in (sandboxcp.local.kube_standin), whose Pods are real
containers on the local Docker engine: a Pod from our python-basic image runs, the control plane binds its
executor over HTTP at the Pod IP, runs code there, and the executor reaches back to a control plane and an
S3 endpoint on the host through the NetworkPolicy the adapter wrote - and nowhere else.

The control plane's internal API is played by a recording HTTP server on the pod network's gateway (what
the executor calls: container_ready, status, heartbeat, result); S3 by a moto server there, driven through
the real S3 workspace store (presigned GETs and a POST policy). "The internet" is a web server on another
Docker network with a non-private address (198.18.0.0/15, the benchmarking range).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from sandboxcp.adapters.executor_client import HttpExecutorClient
from sandboxcp.adapters.runtimes.eks import EksRuntime, network_policy_manifest, pod_manifest
from sandboxcp.adapters.workspace_store import S3WorkspaceStore, s3_client_config
from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.models import Execution
from sandboxcp.domain.ports import SandboxHandle, SandboxSpec
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.states import ExecutionStatus
from sandboxcp.local.kube_standin import KubeStandin, PodEndpoint, compile_fences
from tests.integration.conftest import docker, inspect

NS = "sandboxes"
IMAGE = "sandboxcp/python-basic:latest"
BUCKET = "workspaces"
EXECUTOR = HttpExecutorClient()
LIMITS = ResourceLimit(cpu="0.5", memory="768Mi", disk="1Gi")

PROBE = """
import socket

def handler(event):
    seen = {}
    for name, host, port in event["targets"]:
        try:
            with socket.create_connection((host, port), timeout=1.5):
                seen[name] = "connected"
        except ConnectionRefusedError:
            seen[name] = "refused"  # reached the host: nothing listens there
        except OSError as exc:
            seen[name] = type(exc).__name__  # TimeoutError: dropped on the way
    return seen
"""


def _reached(outcome: str) -> bool:
    return outcome in ("connected", "refused")


# -- the control plane's internal API, recorded -----------------------------------------------------
@dataclass
class Callback:
    path: str
    authorization: str
    body: Any


@dataclass
class InternalApi:
    url: str = ""
    calls: list[Callback] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, path: str, timeout: float = 30) -> Callback:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [c for c in self.calls if c.path == path]
                if found:
                    return found[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no callback {path}; got {[c.path for c in self.calls]}")
                self.changed.wait(left)


def _internal_api_handler(api: InternalApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with api.changed:
                api.calls.append(
                    Callback(self.path, self.headers.get("Authorization", ""), json.loads(raw or b"null"))
                )
                api.changed.notify_all()
            data = b'{"status": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aws_credentials() -> Iterator[None]:
    """Fake credentials: they sign the EKS bearer token (the stand-in checks its shape) and moto's S3."""
    saved = {
        k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    }
    os.environ.update(AWS_ACCESS_KEY_ID="AKIDSTANDIN", AWS_SECRET_ACCESS_KEY="standin-secret")
    os.environ.pop("AWS_SESSION_TOKEN", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def kube(docker_engine: None) -> Iterator[KubeStandin]:
    with KubeStandin(namespaces=(NS,)) as standin:
        yield standin


@pytest.fixture(scope="module")
def internal_api(kube: KubeStandin) -> Iterator[InternalApi]:
    api = InternalApi()
    httpd = ThreadingHTTPServer((kube.gateway_ip, 0), _internal_api_handler(api))
    httpd.daemon_threads = True
    api.url = f"http://{kube.gateway_ip}:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield api
    httpd.shutdown()
    httpd.server_close()


@dataclass
class S3Endpoint:
    port: int
    store: S3WorkspaceStore


@pytest.fixture(scope="module")
def s3(kube: KubeStandin, aws_credentials: None) -> Iterator[S3Endpoint]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=kube.gateway_ip, port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{kube.gateway_ip}:{port}",
        region_name="us-east-1",
        config=s3_client_config(custom_endpoint=True),
    )
    client.create_bucket(Bucket=BUCKET)
    yield S3Endpoint(port, S3WorkspaceStore(BUCKET, client=client))
    server.stop()


@pytest.fixture(scope="module")
def runtime(kube: KubeStandin, internal_api: InternalApi, s3: S3Endpoint) -> Iterator[EksRuntime]:
    eks = EksRuntime(
        cluster_name="standin",
        endpoint=kube.url,
        ca_data=kube.ca_data,
        namespace=NS,
        region="us-east-1",
        callback_base_url=internal_api.url,
        # The S3 endpoint's address: what the NetworkPolicy lets a sandbox without network reach.
        storage_cidrs=[f"{kube.gateway_ip}/32"],
        storage_port=s3.port,
    )
    yield eks
    eks.destroy_all()


@pytest.fixture(scope="module")
def internet(docker_engine: None) -> Iterator[str]:
    """A web server at a public-looking address on another Docker network; yields its IP."""
    name = f"kube-standin-test-internet-{os.getpid()}"
    for _ in range(20):
        subnet = f"198.{random.choice((18, 19))}.{random.randrange(256)}.0/24"
        made = docker("network", "create", "--subnet", subnet, name, check=False)
        if made.returncode == 0:
            break
    else:
        pytest.fail(f"no free /24 in 198.18.0.0/15 for the internet stand-in: {made.stderr}")
    docker(
        "run", "-d", "--name", name, "--network", name, "--read-only", "--cap-drop", "ALL",
        "--entrypoint", "/usr/bin/python3.11", IMAGE, "-m", "http.server", "8000", "--bind", "0.0.0.0",
    )  # fmt: skip
    try:
        ip = inspect(name)["NetworkSettings"]["Networks"][name]["IPAddress"]  # type: ignore[index]
        yield str(ip)
    finally:
        docker("rm", "-f", name, check=False)
        docker("network", "rm", name, check=False)


# -- helpers ----------------------------------------------------------------------------------------
def _session_id() -> str:
    return "sess_" + "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=16))


def _token(session_id: str) -> str:
    return f"cb_{session_id}.{random.getrandbits(128):032x}"


def _spec(session_id: str, *, network: bool = False, image: str = IMAGE, pool: bool = False) -> SandboxSpec:
    env = {"SANDBOXCP_POOL_ID": session_id} if pool else {"SANDBOXCP_SESSION_ID": session_id}
    return SandboxSpec(
        session_id=session_id,
        image=image,
        resources=LIMITS,
        network_enabled=network,
        env=env,
        callback_token="" if pool else _token(session_id),
    )


def _bind(api: InternalApi, handle: SandboxHandle, session_id: str, token: str, env: dict[str, str]) -> None:
    """What the launch does after start: bind over the runtime-reported address, then the executor
    announces itself to the control plane with the token it was given."""
    assert handle.executor_url
    EXECUTOR.bind(handle.executor_url, session_id, token, env, wait_s=30)
    ready = api.wait_for(f"/internal/sessions/{session_id}/container_ready")
    assert ready.authorization == f"Bearer {token}"


def _run(
    api: InternalApi,
    handle: SandboxHandle,
    session_id: str,
    token: str,
    code: str,
    event: dict[str, Any],
    workspace: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Submit over HTTP to the Pod IP; the result comes back through the internal API."""
    execution_id = f"exec_{datetime.now(UTC):%Y%m%d}_{random.getrandbits(32):08x}"
    execution = Execution(
        execution_id=execution_id,
        session_id=session_id,
        tenant_id="tenant-a",
        status=ExecutionStatus.PENDING,
        code=code,
        language="python",
        timeout=30,
        event=event,
        created_at=datetime.now(UTC),
    )
    assert handle.executor_url
    EXECUTOR.submit(
        handle.executor_url, execution, workspace, executor_key=hashlib.sha256(token.encode()).hexdigest()
    )
    result = api.wait_for(f"/internal/executions/{execution_id}/result", timeout=60)
    assert result.authorization == f"Bearer {token}"
    return dict(result.body)


def _chains_for(ip: str) -> list[str]:
    listed = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout
    tag = bytes(int(part) for part in ip.split(".")).hex()
    return [line for line in listed.splitlines() if tag in line or f"{ip}/32" in line]


# -- tests ------------------------------------------------------------------------------------------
def test_a_pod_runs_hardened_is_bound_over_http_and_reports_back(
    runtime: EksRuntime, kube: KubeStandin, internal_api: InternalApi, s3: S3Endpoint
) -> None:
    session_id = _session_id()
    spec = _spec(session_id)
    handle = runtime.start(spec)
    pod_ip = handle.executor_url.removeprefix("http://").split(":")[0] if handle.executor_url else ""
    assert kube.subnet is not None and pod_ip in {str(ip) for ip in kube.subnet.hosts()}

    # The container honours the Pod spec.
    container = inspect(kube.container_of(NS, handle.container_id) or "missing")
    assert container is not None and container["State"]["Running"]
    host = container["HostConfig"]
    assert container["Config"]["User"] == "1000:1000"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] == host["MemorySwap"] == 768 * 2**20
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] > 0
    assert container["Config"]["Labels"]["sandboxcp.io/session"] == session_id
    assert container["NetworkSettings"]["Networks"][kube.network_name]["IPAddress"] == pod_ip
    # No secret in what the container was given (its env is what `docker inspect` and the Pod show).
    env = dict(item.split("=", 1) for item in container["Config"]["Env"])
    assert spec.callback_token not in json.dumps(container["Config"])
    assert env["POD_IP"] == pod_ip and env["SANDBOXCP_SESSION_ID"] == session_id

    _bind(internal_api, handle, session_id, spec.callback_token, {"GREETING": "hello from the bind"})

    # A workspace file goes in by presigned GET, an output comes out by the POST policy - no network.
    s3.store.put(session_id, "input.txt", b"uploaded before the run")
    plan = {
        "downloads": [
            {**f.model_dump(), "url": s3.store.presign_get(session_id, f.path)}
            for f in s3.store.list(session_id)
        ],
        "upload": s3.store.presign_post(session_id, path=None, max_bytes=1 << 20),
        "quota_bytes": 1 << 30,
    }
    code = """
import os

def handler(event):
    status = open("/proc/self/status").read()
    try:
        open("/etc/written-by-sandbox", "w")
        root = "writable"
    except OSError:
        root = "read-only"
    with open("out.txt", "w") as f:
        f.write("made in the pod")
    return {
        "uid": os.getuid(),
        "greeting": os.environ.get("GREETING"),
        "token_in_env": any("TOKEN" in k for k in os.environ),
        "input": open("input.txt").read(),
        "cap_eff": [l.split()[1] for l in status.splitlines() if l.startswith("CapEff")][0],
        "no_new_privs": [l.split()[1] for l in status.splitlines() if l.startswith("NoNewPrivs")][0],
        "root": root,
    }
"""
    report = _run(internal_api, handle, session_id, spec.callback_token, code, {}, plan)
    assert report["status"] == "success", report
    assert report["return_value"] == {
        "uid": 1000,
        "greeting": "hello from the bind",
        "token_in_env": False,
        "input": "uploaded before the run",
        "cap_eff": "0000000000000000",
        "no_new_privs": "1",
        "root": "read-only",
    }
    assert [a["path"] for a in report["artifacts"]] == ["out.txt"]
    assert s3.store.read(session_id, "out.txt") == b"made in the pod"

    # The adapter's logs and state read the container through the API.
    assert runtime.state(handle.container_id) == "running"
    assert any("bound" in line for line in runtime.logs(handle.container_id, tail=50))
    runtime.destroy(handle.container_id)


def test_network_none_reaches_only_the_control_plane_and_s3(
    runtime: EksRuntime, kube: KubeStandin, internal_api: InternalApi, s3: S3Endpoint, internet: str
) -> None:
    gateway = kube.gateway_ip
    with socket.create_server((gateway, 0)) as host_service:  # neither the control plane nor S3
        other_port = host_service.getsockname()[1]
        neighbour_id = _session_id()
        neighbour = runtime.start(_spec(neighbour_id, network=True))
        neighbour_ip = (neighbour.executor_url or "").removeprefix("http://").split(":")[0]
        internet_ip = internet
        targets = [
            ("control_plane", gateway, int(internal_api.url.rsplit(":", 1)[1])),
            ("s3", gateway, s3.port),
            ("host_service", gateway, other_port),
            ("internet", internet_ip, 8000),
            ("other_sandbox_executor", neighbour_ip, 8080),
        ]  # not the instance metadata address: tests send traffic only to what they made (its fence is
        # checked in test_the_open_network_fence_excepts_private_and_link_local_ranges)
        outcomes = {}
        for network in (False, True):
            session_id = _session_id()
            spec = _spec(session_id, network=network)
            handle = runtime.start(spec)
            _bind(internal_api, handle, session_id, spec.callback_token, {})
            report = _run(internal_api, handle, session_id, spec.callback_token, PROBE, {"targets": targets})
            assert report["status"] == "success", report
            outcomes[network] = report["return_value"]
            runtime.destroy(handle.container_id)
        runtime.destroy(neighbour.container_id)

    none, open_ = outcomes[False], outcomes[True]
    assert _reached(none["control_plane"]) and _reached(none["s3"]), none
    assert not any(_reached(none[name]) for name in ("host_service", "internet", "other_sandbox_executor")), (
        none
    )
    # With network: the internet, but still no private address other than the callback, nor metadata.
    assert open_["internet"] == "connected", open_
    assert _reached(open_["control_plane"]), open_
    assert not any(_reached(open_[n]) for n in ("host_service", "other_sandbox_executor")), open_
    # Dropped by the policy (a timeout), not refused: the service was listening all along.
    assert none["host_service"] == "TimeoutError"


def test_delete_removes_the_container_and_its_fence(runtime: EksRuntime, kube: KubeStandin) -> None:
    session_id = _session_id()
    handle = runtime.start(_spec(session_id))
    container_id = kube.container_of(NS, handle.container_id)
    pod_ip = (handle.executor_url or "").removeprefix("http://").split(":")[0]
    assert container_id and inspect(container_id) is not None
    assert _chains_for(pod_ip), "the pod is fenced while it runs"
    runtime.destroy(handle.container_id)
    assert runtime.state(handle.container_id) in ("exited", "missing")  # deleting, then gone
    assert kube.wait_gone(NS, handle.container_id)
    assert runtime.state(handle.container_id) == "missing"
    assert inspect(container_id) is None
    assert _chains_for(pod_ip) == []
    assert handle.container_id not in [m.container_id for m in runtime.list_managed()]


def test_a_warm_pod_is_reachable_and_bindable_without_a_token(
    runtime: EksRuntime, internal_api: InternalApi
) -> None:
    pool_id = "pool_" + _session_id().removeprefix("sess_")
    warm = runtime.start(_spec(pool_id, pool=True))
    assert warm.executor_url, "a warm sandbox needs an address the pool can store"
    # Later a session claims it: bound with that session's id, token and env vars.
    session_id = _session_id()
    token = _token(session_id)
    _bind(internal_api, warm, session_id, token, {"CLAIMED_BY": session_id})
    report = _run(
        internal_api,
        warm,
        session_id,
        token,
        "import os\ndef handler(e):\n    return os.environ['CLAIMED_BY']",
        {},
    )
    assert report["return_value"] == session_id
    runtime.destroy(warm.container_id)


def test_a_template_image_launches(runtime: EksRuntime, kube: KubeStandin, internal_api: InternalApi) -> None:
    """A template created through the API names any image: the Pod runs exactly that image."""
    image = f"tenant-templates/custom-python:{os.getpid()}"
    docker("tag", IMAGE, image)
    try:
        session_id = _session_id()
        spec = _spec(session_id, image=image)
        handle = runtime.start(spec)
        container = inspect(kube.container_of(NS, handle.container_id) or "missing")
        assert container is not None and container["Config"]["Image"] == image
        _bind(internal_api, handle, session_id, spec.callback_token, {})
        report = _run(
            internal_api, handle, session_id, spec.callback_token, "def handler(e):\n    return 42", {}
        )
        assert report["return_value"] == 42
        runtime.destroy(handle.container_id)
    finally:
        docker("rmi", image, check=False)


def test_an_image_that_is_not_there_fails_fast_and_leaves_nothing(
    runtime: EksRuntime, kube: KubeStandin
) -> None:
    session_id = _session_id()
    started = time.monotonic()
    with pytest.raises(SandboxUnavailable, match="ErrImageNeverPull"):
        runtime.start(_spec(session_id, image="sandboxcp/no-such-image:latest"))
    assert time.monotonic() - started < 10
    assert kube.wait_gone(NS, f"sandbox-{session_id.replace('_', '-')}")


def test_health_ping_reads_the_namespace(runtime: EksRuntime) -> None:
    assert runtime.ping() is True


def _allows(fragments: tuple[str, ...] | None, ip: str, port: int) -> bool:
    """Whether a compiled fence lets TCP to ip:port through (fragments are `-d CIDR -p tcp --dport N`)."""
    import ipaddress

    assert fragments is not None
    for fragment in fragments:
        words = fragment.split()
        cidr = words[words.index("-d") + 1] if "-d" in words else "0.0.0.0/0"
        dport = words[words.index("--dport") + 1] if "--dport" in words else None
        if ipaddress.ip_address(ip) in ipaddress.ip_network(cidr) and dport in (None, str(port)):
            return True
    return False


def test_the_open_network_fence_excepts_private_and_link_local_ranges() -> None:
    """The adapter's policies, compiled by the stand-in into iptables matches (no engine needed)."""
    session_id = _session_id()
    pod = PodEndpoint(
        NS,
        "p",
        "10.244.7.9",
        pod_manifest(_spec(session_id), namespace=NS, callback_base_url="")["metadata"]["labels"],
    )
    for network in (False, True):
        policy = network_policy_manifest(
            _spec(session_id, network=network),
            namespace=NS,
            callback_base_url="http://10.244.7.1:8000",
            storage_cidrs=["10.244.7.1/32"],
            storage_port=9000,
        )
        policy["metadata"]["namespace"] = NS
        fence = compile_fences([pod], [policy], {NS: {}})["10.244.7.9"]
        assert _allows(fence.egress, "10.244.7.1", 8000) and _allows(fence.egress, "10.244.7.1", 9000)
        for blocked in ("169.254.169.254", "169.254.170.23", "10.244.7.1", "192.168.1.1", "100.64.0.1"):
            assert not _allows(fence.egress, blocked, 80), (network, blocked)
        assert _allows(fence.egress, "93.184.216.34", 443) is network
        assert _allows(fence.ingress, "10.244.7.1", 8080) and not _allows(fence.ingress, "10.244.7.1", 22)


def test_the_standin_refuses_host_access_and_reports_bad_pods(
    kube: KubeStandin, aws_credentials: None, tmp_path: Path
) -> None:
    """Through the kubernetes client, as the adapter talks to it."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from sandboxcp.adapters.runtimes.eks_auth import EksTokenSource

    configuration = client.Configuration()
    configuration.host = kube.url
    (tmp_path / "ca.pem").write_bytes(kube.ca_pem)
    configuration.ssl_ca_cert = str(tmp_path / "ca.pem")
    configuration.api_key = {"authorization": "Bearer " + EksTokenSource("standin", "us-east-1").token()}
    core = client.CoreV1Api(client.ApiClient(configuration))

    def pod(name: str, **container: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {"containers": [{"name": "c", "image": IMAGE, **container}]}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}

    for body in (
        pod("privileged", securityContext={"privileged": True}),
        {**pod("host-network"), "spec": {**pod("x")["spec"], "hostNetwork": True}},
    ):
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_pod(NS, body)
        assert refused.value.status == 403
    # Accepted, but the kubelet's runAsNonRoot check stops a root user: waiting, never running.
    core.create_namespaced_pod(NS, pod("as-root", securityContext={"runAsUser": 0, "runAsNonRoot": True}))
    deadline = time.monotonic() + 10
    waiting: dict[str, Any] = {}
    while time.monotonic() < deadline and not waiting:
        status = core.read_namespaced_pod("as-root", NS).status
        state = status.container_statuses[0].state if status.container_statuses else None
        waiting = (
            {"reason": state.waiting.reason}
            if state and state.waiting and state.waiting.reason != "ContainerCreating"
            else {}
        )
        time.sleep(0.1)
    assert waiting == {"reason": "CreateContainerConfigError"}
    assert kube.container_of(NS, "as-root") is None
    core.delete_namespaced_pod("as-root", NS, grace_period_seconds=0)
    assert kube.wait_gone(NS, "as-root")
    with pytest.raises(ApiException) as missing:
        core.read_namespace("no-such-namespace")
    assert missing.value.status == 404
