"""Reachability probes: runtime nodes (the node prober) and the backing services of GET /health.

Every probe is cheap and bounded by a short timeout:
- docker nodes: `GET /_ping` on the engine through the docker runtime's `ping_node(endpoint)` (it holds
  the client TLS of remote engines); without that runtime at hand: `GET /_ping` over the unix socket or
  plain HTTP (2375), and for a TLS engine (2376) a TCP connect showing the host is up;
- the process node: bubblewrap is installed and the state directory is writable;
- ecs / eks (one logical node each): the runtime's `ping()` (DescribeClusters / a namespace read);
- health: a GetItem on the templates table, HeadBucket on the workspace bucket, the runtime as above."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from sandboxcp.domain.ports import ProbeResult, Runtime, RuntimeNode
from sandboxcp.settings import Settings

TIMEOUT_S = 2.0


def _aws_client(service: str, region: str) -> Any:
    import boto3
    from botocore.config import Config

    retries: Any = {"total_max_attempts": 1, "mode": "standard"}
    config = Config(connect_timeout=TIMEOUT_S, read_timeout=TIMEOUT_S, retries=retries)
    session: Any = boto3.session.Session()
    return session.client(service, region_name=region, config=config)


def docker_ping(endpoint: str, timeout: float = TIMEOUT_S) -> None:
    """Raise unless the Docker engine at `endpoint` answers `GET /_ping`."""
    import httpx

    url = urlparse(endpoint)
    if url.scheme == "unix":
        with httpx.Client(transport=httpx.HTTPTransport(uds=url.path), timeout=timeout) as client:
            client.get("http://docker/_ping").raise_for_status()
        return
    if url.scheme in ("http", "https") or (url.scheme == "tcp" and url.port == 2375):
        base = endpoint if url.scheme != "tcp" else f"http://{url.hostname}:{url.port}"
        httpx.get(f"{base.rstrip('/')}/_ping", timeout=timeout).raise_for_status()
        return
    if url.scheme == "tcp" and url.hostname:
        with socket.create_connection((url.hostname, url.port or 2376), timeout=timeout):
            return
    raise ValueError(f"unsupported docker endpoint '{endpoint}'")


def process_host_check(state_dir: str) -> None:
    if shutil.which("bwrap") is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed")
    os.makedirs(state_dir, exist_ok=True)
    if not os.access(state_dir, os.W_OK):
        raise RuntimeError("the sandbox state directory is not writable")


def runtime_ping(runtime: Runtime, settings: Settings) -> None:
    """The deployment runtime's own check (ports.Runtime.ping): docker `GET /_ping`, ecs
    DescribeClusters, eks a namespace read, process bubblewrap and its state directory."""
    if runtime.ping() is False:
        raise RuntimeError(f"the {runtime.name} runtime did not answer")


class RuntimeNodeProber:
    def __init__(self, settings: Settings, runtime: Callable[[], Runtime]) -> None:
        self.settings = settings
        self._runtime = runtime  # built lazily: a docker node probe needs no runtime client

    def probe(self, node: RuntimeNode) -> ProbeResult:
        try:
            self._probe(node)
        except Exception as err:  # any failure is a failed probe; the detail is for the operator
            return ProbeResult(ok=False, detail=f"{type(err).__name__}: {err}"[:300])
        return ProbeResult(ok=True)

    def _probe(self, node: RuntimeNode) -> None:
        if node.runtime_type == "process":
            process_host_check(self.settings.sandbox_state_dir)
        elif node.runtime_type == "docker":
            runtime = self._runtime() if self.settings.runtime == "docker" else None
            if runtime is not None:
                from sandboxcp.adapters.runtimes.docker import DockerRuntime

                # The docker runtime's client: unix socket or TCP with its client TLS.
                if isinstance(runtime, DockerRuntime) and runtime.ping_node(node.endpoint) is False:
                    raise RuntimeError("the engine did not answer")
            else:
                docker_ping(node.endpoint)
        elif node.runtime_type == self.settings.runtime:
            runtime_ping(self._runtime(), self.settings)


class AwsHealthChecks:
    def __init__(self, settings: Settings, runtime: Callable[[], Runtime]) -> None:
        self.settings = settings
        self._runtime = runtime
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = _aws_client(service, self.settings.aws_region)
            return self._clients[service]

    def dynamodb(self) -> None:
        # A GetItem of a key that never exists: the cheapest read that proves table and credentials work.
        self._client("dynamodb").get_item(
            TableName=self.settings.templates_table, Key={"template_id": {"S": "__health__"}}
        )

    def storage(self) -> None:
        self._client("s3").head_bucket(Bucket=self.settings.workspace_bucket)

    def runtime(self) -> None:
        runtime_ping(self._runtime(), self.settings)
