"""The `docker` runtime: one container per session on a Docker engine, through the Engine API over httpx
(no docker SDK, no CLI). See docs/runtimes-docker.md.

Every sandbox container runs the template's image as uid/gid 1000 with a read-only root filesystem, every
capability dropped, no-new-privileges, pids/memory/CPU limits (memory without swap), a 64 MiB tmpfs /tmp,
a /workspace limited to the session's disk size (so a session cannot fill the node's disk: an ext4 image
on a local engine, see disk.py; a tmpfs of that size on a remote one), a private IPC namespace and no
network unless the template allows it. The executor's supervisor is PID 1 (no docker-init: PID 1 would
hold the environment and the log pipe where user code could read or write them; ours is non-dumpable).
Labels `sandboxcp.managed=true` and `sandboxcp.session=<id>` mark what we own.

Two ways to wire a sandbox, chosen per node:
- **socket mode** (local engine, `unix://` DOCKER_HOST, and a `unix://` CALLBACK_BASE_URL, i.e. local
  mode): the control plane's socket is bind-mounted at /run/controlplane.sock, and a per-session host dir
  (`/run/sandboxcp/<hash>/<id>`, sockets.py) at /run/sandbox, where the executor's supervisor binds its
  socket once.
  The moment that socket exists, `start` *seals* the dir (chown root, 0755): sandbox code, which runs as
  uid 1000 like the executor, can then neither remove, rename nor replace the socket, so the path the
  control plane connects to cannot be redirected (docs/security.md). The container needs no network.
- **TCP mode** (remote engines, or an HTTP callback URL): the executor listens on 0.0.0.0:8080, published
  on the node's publish address (127.0.0.1 for a local engine) at a port the engine picks; the container
  is on the node's sandbox network (it must reach CALLBACK_BASE_URL). The address comes from the engine.
In both, the callback token is never in the container's environment: the launch binds the executor over
that address once it listens.

**Nodes** (docs/placement.md): the default node comes from DOCKER_HOST; every other Docker host is a row of
the runtime nodes table (`runtime_type` docker, `endpoint` its engine URL, labels `publish_host` and
`sandbox_network`), looked up when placement picks it (`SandboxSpec.node`). A container on a node other
than the default one has the id `<engine id>@<node id>`, so every later call (destroy, state, logs, usage)
reaches the engine that holds it, from any process. Usage (CPU, memory, disk) comes from the container's
cgroup on a local engine (two samples 100 ms apart) and from the engine's stats endpoint elsewhere.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from sandboxcp.adapters.runtimes import disk, docker_tls, sockets, spare_disks
from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.ports import ManagedSandbox, SandboxHandle, SandboxSpec, SandboxState
from sandboxcp.domain.usage import ContainerUsage

if TYPE_CHECKING:
    from sandboxcp.settings import Settings

log = logging.getLogger(__name__)

SANDBOX_UID = 1000
EXECUTOR_PORT = 8080
CP_SOCKET_IN_SANDBOX = "/run/controlplane.sock"
RUN_DIR_IN_SANDBOX = "/run/sandbox"
WORKSPACE = "/workspace"
TMP_TMPFS = "rw,nosuid,nodev,size=64m,mode=1777"
# The disk limit: the kernel refuses writes past it (the pages also count against the memory limit).
WORKSPACE_TMPFS = f"rw,exec,nosuid,nodev,size={{disk_mb}}m,uid={1000},gid={1000},mode=0755"
MANAGED_LABEL = "sandboxcp.managed"
SESSION_LABEL = "sandboxcp.session"
OWNER_LABEL = "sandboxcp.owner"
# The Engine API version we speak; lower when the engine is older (20.10 speaks 1.41), never higher.
MAX_API_VERSION = (1, 45)
MIN_API_VERSION = (1, 41)
_TIMEOUT = httpx.Timeout(30.0, connect=5.0)

_STATES: dict[str, SandboxState] = {
    "created": "creating",
    "running": "running",
    "paused": "running",
    "restarting": "running",
    "removing": "exited",
    "exited": "exited",
    "dead": "exited",
}
# Where sandboxes' workspace disks are formatted and mounted while the engine creates their containers.
_WORKSPACE_DISKS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="workspace-disk")


class DockerApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


# -- nodes -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DockerNode:
    """One Docker engine. `publish_host` is where published executor ports are bound and reached."""

    node_id: str
    endpoint: str  # unix:///var/run/docker.sock | tcp://host:2376
    publish_host: str = "127.0.0.1"
    network: str = "bridge"  # TCP mode: the network sandboxes join (must reach the callback URL)
    # TCP mode: the network of sandboxes whose template allows network ("": `network` for every sandbox)
    open_network: str = ""

    @property
    def is_local(self) -> bool:
        return self.endpoint.startswith("unix://")

    @classmethod
    def from_record(cls, record: Any) -> DockerNode:
        """From a RuntimeNodeRecord (or anything with node_id, endpoint and optional labels)."""
        labels = dict(getattr(record, "labels", None) or {})
        endpoint = str(record.endpoint)
        host = None if endpoint.startswith("unix://") else urlsplit(endpoint).hostname
        return cls(
            node_id=str(record.node_id),
            endpoint=endpoint,
            publish_host=str(labels.get("publish_host") or host or "127.0.0.1"),
            network=str(labels.get("sandbox_network") or "bridge"),
            open_network=str(labels.get("sandbox_open_network") or ""),
        )


@dataclass(frozen=True)
class NodeLoad:
    node_id: str
    status: str
    capacity: int
    sessions: int


def choose_node(candidates: Iterable[NodeLoad]) -> str | None:
    """The healthy node with the fewest sessions that still has room (ties: lowest id); None if full.

    The hook for several engines: feed it the `docker#healthy` RuntimeNodeRecords with their session
    counts. With one node (the default, DOCKER_HOST) there is nothing to choose."""
    usable = [c for c in candidates if c.status == "healthy" and c.sessions < c.capacity]
    if not usable:
        return None
    return min(usable, key=lambda c: (c.sessions, c.node_id)).node_id


# -- the Engine API client ---------------------------------------------------------------------------
class EngineClient:
    """A thin Engine API client for one node: unix socket, or TCP with client TLS."""

    def __init__(self, node: DockerNode, tls: docker_tls.TlsMaterial | None = None) -> None:
        self.node = node
        self._lock = threading.Lock()
        self._prefix: str | None = None
        if node.endpoint.startswith("unix://"):
            transport = httpx.HTTPTransport(uds=node.endpoint.removeprefix("unix://"))
            self._http = httpx.Client(transport=transport, base_url="http://docker", timeout=_TIMEOUT)
        elif node.endpoint.startswith("tcp://"):
            if tls is None:
                raise SandboxUnavailable(
                    f"Docker node '{node.node_id}' ({node.endpoint}) needs client TLS",
                    solution="Set DOCKER_TLS_SECRET_ARN (or DOCKER_CERT_PATH) for remote Docker engines",
                )
            self._http = httpx.Client(
                base_url="https://" + node.endpoint.removeprefix("tcp://"),
                verify=tls.ssl_context(),
                timeout=_TIMEOUT,
            )
        else:
            raise SandboxUnavailable(f"Unsupported DOCKER_HOST '{node.endpoint}' (unix:// or tcp://)")

    def close(self) -> None:
        self._http.close()

    def _api_prefix(self) -> str:
        if self._prefix is None:
            with self._lock:
                if self._prefix is None:
                    info = self._send("GET", "/version").json()
                    server = _version_tuple(str(info.get("ApiVersion", "1.41")))
                    if server < MIN_API_VERSION:
                        raise SandboxUnavailable(
                            f"Docker engine on '{self.node.node_id}' speaks API {info.get('ApiVersion')};"
                            f" {MIN_API_VERSION[0]}.{MIN_API_VERSION[1]} or newer is needed"
                        )
                    use = min(server, MAX_API_VERSION)
                    self._prefix = f"/v{use[0]}.{use[1]}"
        return self._prefix

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        try:
            return self._http.request(
                method,
                path,
                params=params,
                json=body,
                timeout=_TIMEOUT if timeout is None else timeout,
            )
        except httpx.HTTPError as exc:
            raise SandboxUnavailable(
                f"Docker engine '{self.node.node_id}' at {self.node.endpoint} is unreachable:"
                f" {type(exc).__name__}: {exc}",
                solution="Start the engine (scripts/start_dockerd.sh locally) and retry",
            ) from None

    def get_ping(self, timeout: float = 2.0) -> bool:
        return self._send("GET", "/_ping", timeout=timeout).status_code == 200

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        ok: tuple[int, ...] = (200, 201, 204),
        timeout: float | None = None,
    ) -> httpx.Response:
        resp = self._send(method, self._api_prefix() + path, params=params, body=body, timeout=timeout)
        if resp.status_code not in ok:
            raise DockerApiError(resp.status_code, _engine_message(resp))
        return resp


def _version_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return MIN_API_VERSION


def _engine_message(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("message") or resp.text).strip()
    except ValueError:
        return resp.text.strip()


def demux_logs(data: bytes) -> bytes:
    """The logs endpoint of a container without a TTY multiplexes stdout and stderr in frames:
    1 byte stream (1 stdout, 2 stderr), 3 zero bytes, a 4-byte big-endian length, then the payload.
    Anything that does not parse as frames (a TTY container's raw stream) is returned as is."""
    out = bytearray()
    i = 0
    while i + 8 <= len(data):
        stream, size = data[i], int.from_bytes(data[i + 4 : i + 8], "big")
        if stream not in (0, 1, 2) or data[i + 1 : i + 4] != b"\0\0\0" or i + 8 + size > len(data):
            return data if i == 0 else bytes(out) + data[i:]
        out += data[i + 8 : i + 8 + size]
        i += 8 + size
    return bytes(out) + data[i:]


# -- the runtime -------------------------------------------------------------------------------------
class DockerRuntime:
    name = "docker"
    addresses_at_start = True  # socket path or published port (ports.Runtime)

    def __init__(
        self,
        nodes: list[DockerNode],
        *,
        state_dir: str,
        callback_base_url: str,
        tls: docker_tls.TlsMaterial | None = None,
        tls_secret_arn: str = "",
        tls_cert_path: str = "",
        region: str = "",
        owner: str = "",
        registry: NodeRegistry | None = None,
    ) -> None:
        if not nodes:
            raise SandboxUnavailable("The docker runtime has no node")
        self.nodes = {n.node_id: n for n in nodes}
        self.default_node = nodes[0].node_id
        self.state_dir = Path(state_dir)
        self.callback_base_url = callback_base_url
        self.owner = owner or str(self.state_dir)
        self._tls = tls
        self._tls_secret = (tls_secret_arn, region)
        self._tls_cert_path = tls_cert_path
        self._clients: dict[str, EngineClient] = {}
        self._lock = threading.Lock()
        # Containers this instance started: container id -> (node id, session id). destroy_all() stops
        # exactly these (several local stacks may share one engine); other lookups ask the engine.
        self._started: dict[str, tuple[str, str]] = {}
        self._registry = registry  # the runtime nodes table: every Docker host besides the default one

    @classmethod
    def from_settings(cls, settings: Settings) -> DockerRuntime:
        """One node from DOCKER_HOST ("local-docker" for a unix socket). Remote (tcp://) engines get
        client TLS from DOCKER_TLS_SECRET_ARN, or from DOCKER_CERT_PATH (Docker's own variable).
        Nothing is contacted or read here: the first API call does that."""
        node = node_from_host(settings.docker_host or "unix:///var/run/docker.sock")
        node = replace(
            node,
            network=settings.docker_sandbox_network or node.network,
            open_network=settings.docker_open_network or node.open_network,
            publish_host=settings.docker_publish_host or node.publish_host,
        )
        return cls(
            [node],
            state_dir=settings.sandbox_state_dir,
            callback_base_url=settings.callback_base_url,
            tls_secret_arn=settings.docker_tls_secret_arn,
            tls_cert_path=settings.docker_cert_path,
            region=settings.aws_region,
            registry=TableNodeRegistry(settings),
        )

    # -- plumbing ------------------------------------------------------------------------------------
    def node(self, node_id: str | None) -> DockerNode:
        """A node by id: the default one, one seen before, or a docker node of the nodes table."""
        node_id = node_id or self.default_node
        known = self.nodes.get(node_id)
        if known is not None:
            return known
        found = self._registry.get(node_id) if self._registry is not None else None
        if found is None:
            raise SandboxUnavailable(f"Docker node '{node_id}' is not registered")
        with self._lock:
            return self.nodes.setdefault(node_id, found)

    def client(self, node_id: str | None = None) -> EngineClient:
        node = self.node(node_id)
        with self._lock:
            existing = self._clients.get(node.node_id)
            if existing is not None:
                return existing
            tls = None if node.is_local else self._load_tls()
            made = self._clients[node.node_id] = EngineClient(node, tls)
            return made

    def _load_tls(self) -> docker_tls.TlsMaterial | None:
        if self._tls is None:
            arn, region = self._tls_secret
            if arn:
                self._tls = docker_tls.from_secret(arn, region)
            elif self._tls_cert_path:
                self._tls = docker_tls.from_directory(self._tls_cert_path)
        return self._tls

    def _node_of(self, container_id: str) -> str:
        if "@" in container_id:
            return container_id.partition("@")[2]
        started = self._started.get(container_id)
        return started[0] if started else self.default_node

    def _qualified(self, engine_id: str, node_id: str) -> str:
        return engine_id if node_id == self.default_node else f"{engine_id}@{node_id}"

    def _session_dir(self, session_id: str) -> Path:
        return self.state_dir / "sessions" / session_id

    def _run_dir(self, session_id: str) -> Path:
        """Bound at /run/sandbox; short (sockets.py) because the control plane connects to a socket in it."""
        return sockets.socket_dir(self.state_dir) / session_id

    def socket_mode(self, node: DockerNode) -> bool:
        """Sandboxes reach the control plane through its bind-mounted unix socket (local mode)."""
        if not self.callback_base_url.startswith("unix://"):
            return False
        if not node.is_local:
            raise SandboxUnavailable(
                f"CALLBACK_BASE_URL is a unix socket but Docker node '{node.node_id}' is remote",
                solution="Give remote engines an HTTPS CALLBACK_BASE_URL they can reach",
            )
        return True

    def place(self, spec: SandboxSpec) -> DockerNode:
        """Where a session runs: the node placement chose (services/placement.py), else the default one."""
        return self.node(spec.node)

    # -- Runtime interface ---------------------------------------------------------------------------
    def start(self, spec: SandboxSpec) -> SandboxHandle:
        node = self.place(spec)
        engine = self.client(node.node_id)
        socket_mode = self.socket_mode(node)
        sdir = self._session_dir(spec.session_id)
        workspace: Future[None] | None = None
        if socket_mode:
            try:
                use_disk = disk.available()
                disk_ready = use_disk and spare_disks.take(
                    self.state_dir, sdir, spec.resources.disk_mb, (SANDBOX_UID, SANDBOX_UID)
                )
                _prepare_dirs(sdir, self._run_dir(spec.session_id))
                if use_disk and not disk_ready:
                    disk.prepare(sdir)
                    # Formatted and mounted while the engine creates the container (the bind is
                    # resolved at start, which waits for it): 15-40 ms less per launch here.
                    workspace = _WORKSPACE_DISKS.submit(
                        disk.format_and_mount, sdir, spec.resources.disk_mb, (SANDBOX_UID, SANDBOX_UID)
                    )
            except (OSError, disk.DiskUnavailable) as exc:
                _remove_dirs(sdir, self._run_dir(spec.session_id))
                raise SandboxUnavailable(
                    f"Cannot prepare the sandbox's directories in {sdir}: {exc}"
                ) from None
        name = container_name(spec.session_id)
        config = self.container_config(spec, node, sdir, socket_mode=socket_mode)
        try:
            try:
                container_id = self._create(engine, name, config, spec.image)
            except SandboxUnavailable:
                with contextlib.suppress(SandboxUnavailable):
                    _wait_for_workspace(workspace, sdir)  # nothing may mount after the dirs are gone
                raise
            try:
                _wait_for_workspace(workspace, sdir)
                engine.call("POST", f"/containers/{container_id}/start", ok=(204, 304))
            except (DockerApiError, SandboxUnavailable) as exc:
                self._remove(engine, container_id)
                if isinstance(exc, SandboxUnavailable):
                    raise
                raise SandboxUnavailable(
                    f"Docker could not start the sandbox of session {spec.session_id}: {exc.message}"
                ) from None
        except SandboxUnavailable:
            _remove_dirs(sdir, self._run_dir(spec.session_id))
            raise
        engine_id, container_id = container_id, self._qualified(container_id, node.node_id)
        self._started[container_id] = (node.node_id, spec.session_id)
        if socket_mode:
            try:
                _seal_when_listening(self._run_dir(spec.session_id), engine, engine_id)
            except SandboxUnavailable:
                self.destroy(container_id)
                raise
            executor_url = f"unix://{self._run_dir(spec.session_id) / 'executor.sock'}"
        else:
            executor_url = self._published_url(engine, node, engine_id)
        return SandboxHandle(container_id=container_id, node=node.node_id, executor_url=executor_url)

    def destroy(self, container_id: str) -> None:
        node_id = self._node_of(container_id)
        engine = self.client(node_id)
        engine_id = _engine_id(container_id)
        session_id = self._started.get(container_id, ("", ""))[1]
        if not session_id:
            with contextlib.suppress(DockerApiError):
                labels = engine.call("GET", f"/containers/{engine_id}/json").json()["Config"]["Labels"]
                session_id = (labels or {}).get(SESSION_LABEL, "")
        self._remove(engine, engine_id)
        self._started.pop(container_id, None)
        if session_id and self.node(node_id).is_local and self._no_container_of(engine, session_id):
            # Only when no container of the session is left: destroying a stale container of a session
            # that was relaunched (the orphan reaper does) must not pull the dirs from under the new one.
            _remove_dirs(self._session_dir(session_id), self._run_dir(session_id))

    def states(self, container_ids: Sequence[str]) -> dict[str, SandboxState]:
        """One inspect per sandbox, on the engine that holds it."""
        return {container_id: self.state(container_id) for container_id in container_ids}

    def state(self, container_id: str) -> SandboxState:
        try:
            info = self.client(self._node_of(container_id)).call(
                "GET", f"/containers/{_engine_id(container_id)}/json"
            )
        except DockerApiError as exc:
            if exc.status == 404:
                return "missing"
            raise SandboxUnavailable(f"Docker inspect failed: {exc.message}") from None
        return _STATES.get(str(info.json().get("State", {}).get("Status", "")), "exited")

    def executor_url(self, container_id: str) -> str | None:
        node_id, session_id = self._started.get(container_id, (self._node_of(container_id), ""))
        node = self.node(node_id)
        if self.socket_mode(node):
            return f"unix://{self._run_dir(session_id) / 'executor.sock'}" if session_id else None
        try:
            return self._published_url(self.client(node_id), node, _engine_id(container_id))
        except (DockerApiError, SandboxUnavailable):
            return None

    # -- beyond the interface ------------------------------------------------------------------------
    def logs(self, container_id: str, tail: int = 100, since: datetime | None = None) -> list[str]:
        """The executor's output (stdout and stderr interleaved as the engine stored them), last `tail`
        lines, optionally only those after `since`. A container that is gone has no logs."""
        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "tail": str(max(0, tail))}
        if since is not None:
            params["since"] = f"{since.timestamp():.6f}"
        try:
            resp = self.client(self._node_of(container_id)).call(
                "GET", f"/containers/{_engine_id(container_id)}/logs", params=params
            )
        except DockerApiError as exc:
            if exc.status == 404:
                return []
            raise SandboxUnavailable(f"Docker logs failed: {exc.message}") from None
        return demux_logs(resp.content).decode("utf-8", "replace").splitlines()

    def list_managed(self, node_id: str | None = None) -> list[ManagedSandbox]:
        """(container id, session id, state) of the sandbox containers this deployment owns on the node
        (without one: on every node, the registered ones included), for orphan reaping. Label
        sandboxcp.owner: local stacks sharing an engine never see each other's."""
        if node_id is None:
            ids = dict.fromkeys([self.default_node, *self.nodes])
            ids.update(dict.fromkeys(n.node_id for n in (self._registry.all() if self._registry else [])))
            out: list[ManagedSandbox] = []
            for nid in ids:
                try:
                    out += self.list_managed(nid)
                except SandboxUnavailable as exc:  # an unreachable node: the others are still reaped
                    log.warning("docker node %s not listed: %s", nid, exc.detail)
            return out
        labels = [f"{MANAGED_LABEL}=true", f"{OWNER_LABEL}={self.owner}"]
        resp = self.client(node_id).call(
            "GET", "/containers/json", params={"all": "1", "filters": json.dumps({"label": labels})}
        )
        return [
            ManagedSandbox(
                self._qualified(str(c["Id"]), node_id),
                (c.get("Labels") or {}).get(SESSION_LABEL) or None,
                _STATES.get(str(c.get("State", "")), "exited"),
            )
            for c in resp.json()
        ]

    def node_images(self, node_id: str) -> list[str]:
        """The image tags a node holds (template affinity in placement)."""
        try:
            images = self.client(node_id).call("GET", "/images/json").json()
        except DockerApiError as exc:
            raise SandboxUnavailable(f"Docker could not list images: {exc.message}") from None
        return sorted({tag for i in images for tag in (i.get("RepoTags") or []) if tag != "<none>:<none>"})

    # -- usage -----------------------------------------------------------------------------------------
    def usage(self, container_ids: Iterable[str]) -> dict[str, ContainerUsage]:
        """CPU (% of the sandbox's CPU limit), memory and disk use of running containers; a container that
        is gone or not running is left out. Local engines: from the cgroups, sampled together over 100 ms;
        remote ones: the stats endpoint (which itself samples over a second), in parallel."""
        ids = list(dict.fromkeys(container_ids))
        out: dict[str, ContainerUsage] = {}
        local = [
            c for c in ids if self.node(self._node_of(c)).is_local and _cgroup_dirs(_engine_id(c), probe=True)
        ]
        if local:
            out.update(self._cgroup_usage(local))
        remote = [c for c in ids if c not in out]
        if remote:
            with ThreadPoolExecutor(max_workers=min(8, len(remote))) as pool:
                for cid, got in zip(remote, pool.map(self._stats_usage, remote), strict=True):
                    if got is not None:
                        out[cid] = got
        return out

    def _inspect(self, container_id: str) -> dict[str, Any] | None:
        try:
            return dict(
                self.client(self._node_of(container_id))
                .call("GET", f"/containers/{_engine_id(container_id)}/json")
                .json()
            )
        except DockerApiError:
            return None

    def _cgroup_usage(self, container_ids: list[str]) -> dict[str, ContainerUsage]:
        infos = {c: self._inspect(c) for c in container_ids}
        running = {c: i for c, i in infos.items() if i and (i.get("State") or {}).get("Status") == "running"}
        first = {c: _cgroup_cpu_ns(str(i["Id"])) for c, i in running.items()}
        t0 = time.monotonic()
        time.sleep(0.1)
        out: dict[str, ContainerUsage] = {}
        for c, info in running.items():
            full = str(info["Id"])
            second, elapsed = _cgroup_cpu_ns(full), time.monotonic() - t0
            before = first[c]
            cpu_share = (
                (second - before) / (elapsed * 1e9) if second is not None and before is not None else 0.0
            )
            host = info.get("HostConfig") or {}
            out[c] = _usage(
                cpu_share,
                float(host.get("NanoCpus") or 0) / 1e9,
                _cgroup_memory(full),
                int(host.get("Memory") or 0),
                self._disk(c, info),
            )
        return out

    def _stats_usage(self, container_id: str) -> ContainerUsage | None:
        info = self._inspect(container_id)
        if not info or (info.get("State") or {}).get("Status") != "running":
            return None
        try:
            stats = (
                self.client(self._node_of(container_id))
                .call("GET", f"/containers/{_engine_id(container_id)}/stats", params={"stream": "false"})
                .json()
            )
        except (DockerApiError, SandboxUnavailable):
            return None
        cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
        cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get(
            "total_usage", 0
        )
        system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
        online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [1])
        share = cpu_delta / system_delta * online if system_delta > 0 and cpu_delta > 0 else 0.0
        mem = stats.get("memory_stats") or {}
        mstats = mem.get("stats") or {}
        used = int(mem.get("usage", 0)) - int(
            mstats.get("total_inactive_file", mstats.get("inactive_file", 0))
        )
        host = info.get("HostConfig") or {}
        return _usage(
            share,
            float(host.get("NanoCpus") or 0) / 1e9,
            max(0, used),
            int(host.get("Memory") or mem.get("limit") or 0),
            self._disk(container_id, info),
        )

    def _disk(self, container_id: str, info: Mapping[str, Any]) -> tuple[int, int] | None:
        """(used, size) bytes of the sandbox's /workspace: the host side of a local disk image, else
        statvfs inside the container (an exec)."""
        session_id = ((info.get("Config") or {}).get("Labels") or {}).get(SESSION_LABEL, "")
        mount = self._session_dir(session_id) / disk.MOUNT_POINT if session_id else None
        if mount is not None and self.node(self._node_of(container_id)).is_local and os.path.ismount(mount):
            return disk.space(str(mount))
        return self._exec_statvfs(container_id)

    def _exec_statvfs(self, container_id: str) -> tuple[int, int] | None:
        engine = self.client(self._node_of(container_id))
        code = (
            "import os;s=os.statvfs('/workspace');"
            "print(s.f_frsize*(s.f_blocks-s.f_bfree),s.f_frsize*s.f_blocks)"
        )
        try:
            made = engine.call(
                "POST",
                f"/containers/{_engine_id(container_id)}/exec",
                body={"Cmd": ["python3", "-c", code], "AttachStdout": True, "AttachStderr": False},
                ok=(201,),
            ).json()
            raw = engine.call(
                "POST", f"/exec/{made['Id']}/start", body={"Detach": False, "Tty": False}, timeout=5.0
            ).content
        except (DockerApiError, SandboxUnavailable, KeyError):
            return None
        try:
            used, size = demux_logs(raw).decode().split()
            return int(used), int(size)
        except ValueError:
            return None

    def ping(self) -> bool:
        """The default engine answers `GET /_ping` (the health check)."""
        return self._ping(self.client())

    def ping_node(self, endpoint: str) -> bool:
        """A node's engine answers `GET /_ping`, with this runtime's client TLS (the node prober)."""
        node = next((n for n in self.nodes.values() if n.endpoint == endpoint), None)
        if node is not None:
            return self._ping(self.client(node.node_id))
        probe = EngineClient(
            node_from_host(endpoint), None if endpoint.startswith("unix://") else self._load_tls()
        )
        try:
            return self._ping(probe)
        finally:
            probe.close()

    @staticmethod
    def _ping(engine: EngineClient) -> bool:
        try:
            return engine.get_ping()
        except SandboxUnavailable:
            return False

    def destroy_all(self) -> None:
        """Remove every container this runtime started (the local stack calls this when it stops)."""
        for container_id in list(self._started):
            try:
                self.destroy(container_id)
            except SandboxUnavailable as exc:
                log.warning("could not remove sandbox container %s: %s", container_id, exc.detail)

    # -- helpers -------------------------------------------------------------------------------------
    def container_config(
        self, spec: SandboxSpec, node: DockerNode, sdir: Path, *, socket_mode: bool
    ) -> dict[str, Any]:
        res = spec.resources
        memory = res.memory_mb * 1024 * 1024
        env = {
            **spec.env,
            "HOME": WORKSPACE,
            "PYTHONDONTWRITEBYTECODE": "1",
            "SANDBOXCP_CONTAINER_ID": container_name(spec.session_id),
            "SANDBOXCP_WORKSPACE": WORKSPACE,
        }
        host: dict[str, Any] = {
            "ReadonlyRootfs": True,
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "PidsLimit": res.max_processes,
            "Memory": memory,
            "MemorySwap": memory,  # equal to Memory: no swap
            "NanoCpus": int(res.cpu_cores * 1e9),
            "Tmpfs": {"/tmp": TMP_TMPFS},
            "IpcMode": "private",
            "RestartPolicy": {"Name": "no"},
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "1"}},
            "Binds": [],
        }
        config: dict[str, Any] = {
            "Image": spec.image,
            "User": f"{SANDBOX_UID}:{SANDBOX_UID}",
            "WorkingDir": WORKSPACE,
            "Hostname": "sandbox",
            "Labels": {MANAGED_LABEL: "true", SESSION_LABEL: spec.session_id, OWNER_LABEL: self.owner},
            "StopTimeout": 5,
            "HostConfig": host,
        }
        if socket_mode and disk.available():
            host["Binds"].append(f"{sdir / disk.MOUNT_POINT}:{WORKSPACE}:rw")
        else:
            host["Tmpfs"][WORKSPACE] = WORKSPACE_TMPFS.format(disk_mb=res.disk_mb)
        if socket_mode:
            cp_socket = self.callback_base_url.removeprefix("unix://")
            host["Binds"] += [
                f"{self._run_dir(spec.session_id)}:{RUN_DIR_IN_SANDBOX}:rw",
                f"{cp_socket}:{CP_SOCKET_IN_SANDBOX}:rw",
            ]
            host["NetworkMode"] = "bridge" if spec.network_enabled else "none"
            env["SANDBOXCP_LISTEN"] = f"unix:{RUN_DIR_IN_SANDBOX}/executor.sock"
            env["SANDBOXCP_CALLBACK_URL"] = f"unix://{CP_SOCKET_IN_SANDBOX}"
        else:
            host["NetworkMode"] = (
                node.open_network if spec.network_enabled and node.open_network else node.network
            )
            host["PortBindings"] = {f"{EXECUTOR_PORT}/tcp": [{"HostIp": node.publish_host, "HostPort": ""}]}
            config["ExposedPorts"] = {f"{EXECUTOR_PORT}/tcp": {}}
            env["SANDBOXCP_LISTEN"] = f"tcp:0.0.0.0:{EXECUTOR_PORT}"
            env["SANDBOXCP_CALLBACK_URL"] = self.callback_base_url
        config["Env"] = [f"{k}={v}" for k, v in env.items()]
        return config

    def _create(self, engine: EngineClient, name: str, config: dict[str, Any], image: str) -> str:
        for attempt in (1, 2):
            try:
                resp = engine.call(
                    "POST", "/containers/create", params={"name": name}, body=config, ok=(201,)
                )
                for warning in resp.json().get("Warnings") or []:
                    log.warning("docker: %s", warning)
                return str(resp.json()["Id"])
            except DockerApiError as exc:
                if exc.status == 404 and "image" in exc.message.lower():
                    raise SandboxUnavailable(
                        f"Image '{image}' is not on Docker node '{engine.node.node_id}'",
                        solution="Build the template images with scripts/build_images.sh"
                        " (or push them to the node's registry)",
                    ) from None
                if exc.status == 409 and attempt == 1:
                    # A container of an earlier launch attempt of this session holds the name.
                    self._remove(engine, name)
                    continue
                raise SandboxUnavailable(f"Docker could not create the sandbox: {exc.message}") from None
        raise SandboxUnavailable(f"Docker could not create container '{name}'")  # pragma: no cover

    @staticmethod
    def _remove(engine: EngineClient, container_id: str) -> None:
        try:
            engine.call(
                "DELETE",
                f"/containers/{container_id}",
                params={"force": "true", "v": "true"},
                ok=(204, 404),
            )
        except DockerApiError as exc:
            if exc.status == 409 and "in progress" in exc.message:
                return  # someone else is removing it
            raise SandboxUnavailable(
                f"Docker could not remove container {container_id}: {exc.message}"
            ) from None

    @staticmethod
    def _no_container_of(engine: EngineClient, session_id: str) -> bool:
        try:
            engine.call("GET", f"/containers/{container_name(session_id)}/json")
        except DockerApiError as exc:
            return exc.status == 404
        return False

    @staticmethod
    def _published_url(engine: EngineClient, node: DockerNode, container_id: str) -> str:  # an engine id
        info = engine.call("GET", f"/containers/{container_id}/json").json()
        ports = ((info.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{EXECUTOR_PORT}/tcp") or []
        if not ports:
            raise SandboxUnavailable(f"Docker published no port for the executor of {container_id}")
        host = node.publish_host
        return (
            f"http://[{host}]:{ports[0]['HostPort']}"
            if ":" in host
            else f"http://{host}:{ports[0]['HostPort']}"
        )


class NodeRegistry:
    """Where the docker nodes besides the default one are registered."""

    def get(self, node_id: str) -> DockerNode | None:
        raise NotImplementedError

    def all(self) -> list[DockerNode]:
        raise NotImplementedError


class TableNodeRegistry(NodeRegistry):
    """The runtime nodes table (`runtime_type` docker)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def _repo(self) -> Any:
        from sandboxcp.adapters.dynamo.nodes import DynamoNodeRepository
        from sandboxcp.adapters.tables import bind_tables

        bind_tables(self._settings)
        return DynamoNodeRepository()

    def get(self, node_id: str) -> DockerNode | None:
        node = self._repo().get(node_id)
        return DockerNode.from_record(node) if node is not None and node.runtime_type == "docker" else None

    def all(self) -> list[DockerNode]:
        return [DockerNode.from_record(n) for n in self._repo().list("docker")]


def _engine_id(container_id: str) -> str:
    return container_id.partition("@")[0]


_CGROUP_ROOTS = ("/sys/fs/cgroup",)


def _cgroup_dirs(full_id: str, *, probe: bool = False) -> dict[str, Path]:
    """The container's cgroup dirs on this host: cgroup v1 (cgroupfs driver) or v2 (cgroupfs or
    systemd driver). With `probe`, `full_id` may be a short id or a name: then only whether any exist."""
    out: dict[str, Path] = {}
    for root in _CGROUP_ROOTS:
        base = Path(root)
        v1 = {"cpu": base / "cpuacct" / "docker" / full_id, "memory": base / "memory" / "docker" / full_id}
        if v1["cpu"].is_dir() and v1["memory"].is_dir():
            return v1
        for v2 in (base / "docker" / full_id, base / "system.slice" / f"docker-{full_id}.scope"):
            if (v2 / "cpu.stat").is_file():
                return {"cpu": v2, "memory": v2}
    if probe:  # a short id or qualified id: look for the prefix (one listdir)
        with contextlib.suppress(OSError):
            short = _engine_id(full_id)
            for entry in os.listdir(Path(_CGROUP_ROOTS[0]) / "cpuacct" / "docker"):
                if entry.startswith(short):
                    return {"probe": Path(entry)}
            for entry in os.listdir(Path(_CGROUP_ROOTS[0]) / "docker"):
                if entry.startswith(short):
                    return {"probe": Path(entry)}
    return out


def _cgroup_cpu_ns(full_id: str) -> int | None:
    dirs = _cgroup_dirs(full_id)
    if not dirs:
        return None
    try:
        if (dirs["cpu"] / "cpuacct.usage").is_file():
            return int((dirs["cpu"] / "cpuacct.usage").read_text())
        for line in (dirs["cpu"] / "cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec "):
                return int(line.split()[1]) * 1000
    except (OSError, ValueError):
        return None
    return None


def _cgroup_memory(full_id: str) -> int:
    """Bytes in use without the reclaimable page cache (what `docker stats` shows)."""
    dirs = _cgroup_dirs(full_id)
    if not dirs:
        return 0
    d = dirs["memory"]
    try:
        if (d / "memory.usage_in_bytes").is_file():
            used = int((d / "memory.usage_in_bytes").read_text())
            stat_key = "total_inactive_file"
            stat = (d / "memory.stat").read_text()
        else:
            used = int((d / "memory.current").read_text())
            stat_key = "inactive_file"
            stat = (d / "memory.stat").read_text()
    except (OSError, ValueError):
        return 0
    for line in stat.splitlines():
        key, _, value = line.partition(" ")
        if key == stat_key and value.strip().isdigit():
            return max(0, used - int(value))
    return used


def _usage(
    cpu_share: float, cpu_limit: float, memory: int, memory_limit: int, workspace: tuple[int, int] | None
) -> ContainerUsage:
    """`cpu_share`: cores in use (1.0 = one core busy)."""
    return ContainerUsage.of(
        cpu_cores_used=cpu_share,
        cpu_limit=cpu_limit,
        memory_bytes=memory,
        memory_limit_bytes=memory_limit,
        disk_bytes=workspace[0] if workspace else None,
        disk_limit_bytes=workspace[1] if workspace else None,
    )


def node_from_host(host: str) -> DockerNode:
    """The default node from DOCKER_HOST: "local-docker" for a unix socket, else named by its host."""
    if host.startswith("unix://"):
        return DockerNode("local-docker", host)
    hostname = urlsplit(host).hostname or "docker"
    return DockerNode(hostname, host, publish_host=hostname)


def container_name(session_id: str) -> str:
    return f"sandbox-{session_id}"


def _prepare_dirs(sdir: Path, run: Path) -> None:
    """The session's run dir, owned by the sandbox user (uid 1000 inside is uid 1000 here: no user
    namespace remapping) until the executor's socket is in it. Only root can seal it afterwards, so only
    root may launch socket-mode sandboxes."""
    if os.geteuid() != 0:
        raise OSError("socket-mode sandboxes need a root launcher (the run dir is sealed with chown)")
    sdir.mkdir(parents=True, exist_ok=True)
    os.chmod(sdir, 0o700)  # host users cannot reach into a sandbox's dirs
    shutil.rmtree(run, ignore_errors=True)  # never reuse what an earlier sandbox could write
    run.mkdir()
    os.chown(run, SANDBOX_UID, SANDBOX_UID)
    os.chmod(run, 0o700)


def _wait_for_workspace(workspace: Future[None] | None, sdir: Path) -> None:
    """Until `disk.format_and_mount` is done; SandboxUnavailable if it failed."""
    if workspace is None:
        return
    try:
        workspace.result()
    except (OSError, disk.DiskUnavailable) as exc:
        raise SandboxUnavailable(f"Cannot prepare the sandbox's workspace in {sdir}: {exc}") from None


def _remove_dirs(sdir: Path, run: Path) -> None:
    disk.remove(sdir)  # unmount first: rmtree must not walk into (or stop at) the workspace's mount
    shutil.rmtree(sdir, ignore_errors=True)
    shutil.rmtree(run, ignore_errors=True)


_SEAL_WAIT_S = 30.0


def _seal_when_listening(run: Path, engine: EngineClient, container_id: str) -> None:
    """Wait for the executor's socket in `run`, then make `run` root's (0755): from then on nothing in
    the sandbox can unlink, rename or replace it. No user code runs before this: the executor is not
    bound (it has no session to run code for) until the launch binds it, after we return."""
    sock = run / "executor.sock"
    deadline = time.monotonic() + _SEAL_WAIT_S
    for tick in itertools.count():
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(sock).st_mode):
                break
        # Ask the engine only now and then whether the container died (every ~0.5 s).
        if time.monotonic() > deadline or (tick % 50 == 49 and _exited(engine, container_id)):
            raise SandboxUnavailable(f"The executor of {container_id} never opened its socket")
        time.sleep(0.01)
    os.chown(run, 0, 0)
    os.chmod(run, 0o755)
    # What was in the dir before the seal could be anything the sandbox made: only the socket may stay.
    for entry in os.listdir(run):
        if entry != "executor.sock":
            raise SandboxUnavailable(f"Unexpected file {entry!r} in the sandbox's run dir")


def _exited(engine: EngineClient, container_id: str) -> bool:
    try:
        info = engine.call("GET", f"/containers/{container_id}/json").json()
    except (DockerApiError, SandboxUnavailable):
        return True
    return str(info.get("State", {}).get("Status", "")) not in ("created", "running")
