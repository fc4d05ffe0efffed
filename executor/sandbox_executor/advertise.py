"""The URL a remote control plane reaches this executor at, announced as container_ready's
``executor_url``.

Only a TCP listener has one, and only when it can be told: ``SANDBOXCP_ADVERTISE_URL`` as given;
else ``http://$POD_IP:<port>`` (Kubernetes downward API); else the task's IP from the ECS task
metadata endpoint v4 (``GET $ECS_CONTAINER_METADATA_URI_V4/task``, the first container's
``Networks[0].IPv4Addresses[0]``). Otherwise nothing is announced and the runtime's own address
(or the unix socket it mounted) stands.
"""

from __future__ import annotations

import threading

from sandbox_executor.config import Config
from sandbox_executor.http_client import Endpoint, request
from sandbox_executor.logs import log

TYPE_CHECKING = False  # not typing's: an idle agent does not import typing (docs/capacity.md)
if TYPE_CHECKING:
    from typing import Any

# The metadata endpoint is link-local and answers in milliseconds; a few quick tries cover a
# container that starts before its agent is up, without holding readiness back for long.
ECS_TRIES = 3
ECS_TIMEOUT_S = 2.0
ECS_RETRY_S = 0.3


def advertised_url(config: Config, port: int | None, stop: threading.Event | None = None) -> str | None:
    if config.listen.kind != "tcp" or port is None:
        return None
    if config.advertise_url:
        return config.advertise_url
    if config.pod_ip:
        return _http_url(config.pod_ip, port)
    if config.ecs_metadata_uri:
        ip = ecs_task_ip(config.ecs_metadata_uri, stop or threading.Event())
        return _http_url(ip, port) if ip else None
    return None


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def ecs_task_ip(metadata_uri: str, stop: threading.Event) -> str | None:
    try:
        endpoint = Endpoint.parse(metadata_uri)
    except ValueError:
        log("advertise_unavailable", source="ecs", error="bad ECS_CONTAINER_METADATA_URI_V4")
        return None
    error = ""
    for attempt in range(1, ECS_TRIES + 1):
        try:
            resp = request(endpoint, "GET", "/task", timeout=ECS_TIMEOUT_S)
            if resp.status == 200:
                ip = _first_ipv4(resp.json())
                if ip:
                    return ip
                error = "no IPv4 address in the task metadata"
                break  # a well-formed answer without an address will not change
            error = f"HTTP {resp.status}"
        except (OSError, ValueError) as exc:
            error = type(exc).__name__
        if attempt < ECS_TRIES and stop.wait(ECS_RETRY_S * attempt):
            break
    log("advertise_unavailable", source="ecs", error=error)
    return None


def _first_ipv4(task: Any) -> str | None:
    """The first container's first network's first IPv4 address (the task's, in awsvpc mode)."""
    containers = task.get("Containers") if isinstance(task, dict) else None
    for container in containers if isinstance(containers, list) else []:
        networks = container.get("Networks") if isinstance(container, dict) else None
        for network in networks if isinstance(networks, list) else []:
            addresses = network.get("IPv4Addresses") if isinstance(network, dict) else None
            for address in addresses if isinstance(addresses, list) else []:
                if isinstance(address, str) and address:
                    return address
    return None
