"""Configuration from ``SANDBOXCP_*`` environment variables (the launcher sets them)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from sandbox_executor.http_client import Endpoint
from sandbox_executor.records import Record

DEFAULT_LISTEN = "tcp:0.0.0.0:8080"
DEFAULT_WORKSPACE = "/workspace"
POOL_ID_RE = re.compile(r"pool_[a-z0-9]{16}")


class ConfigError(ValueError):
    """The environment does not describe a runnable executor."""


class ListenSpec(Record):
    """Where the executor serves: a unix socket path, a TCP host and port, or a listening socket
    inherited as file descriptor ``fd`` (the process runtime makes it outside the sandbox, where
    sandbox code can neither replace nor reach its path)."""

    __slots__ = __match_args__ = ("kind", "path", "host", "port", "fd")
    kind: str  # "unix", "tcp" or "fd"
    path: str
    host: str
    port: int
    fd: int

    def __init__(self, kind: str, path: str = "", host: str = "", port: int = 0, fd: int = -1) -> None:
        self._init(kind=kind, path=path, host=host, port=port, fd=fd)

    def describe(self) -> str:
        if self.kind == "fd":
            return f"fd:{self.fd}"
        return f"unix:{self.path}" if self.kind == "unix" else f"tcp:{self.host}:{self.port}"

    @classmethod
    def parse(cls, spec: str) -> ListenSpec:
        if spec.startswith("unix:"):
            rest = spec[len("unix:") :]
            # Accept both unix:/abs and unix:///abs; the path itself must be absolute.
            path = "/" + rest.lstrip("/") if rest.startswith("/") else rest
            if not path.startswith("/"):
                raise ConfigError(f"SANDBOXCP_LISTEN unix path must be absolute: {spec!r}")
            return cls(kind="unix", path=path)
        if spec.startswith("tcp:"):
            host, sep, port_text = spec[len("tcp:") :].rpartition(":")
            if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
                raise ConfigError(f"SANDBOXCP_LISTEN must look like tcp:HOST:PORT, got {spec!r}")
            return cls(kind="tcp", host=host.strip("[]") or "0.0.0.0", port=int(port_text))
        if spec.startswith("fd:") and spec[3:].isdigit() and int(spec[3:]) > 2:
            return cls(kind="fd", fd=int(spec[3:]))
        raise ConfigError(f"SANDBOXCP_LISTEN must start with unix:, tcp: or fd:N (N > 2), got {spec!r}")


class Config(Record):
    __slots__ = __match_args__ = (
        "session_id", "callback_url", "callback_token", "listen", "container_id", "workspace", "heartbeat_s",
        "retry_base_s", "node_bin", "bash_bin", "advertise_url", "pod_ip", "ecs_metadata_uri", "s3_via",
        "pool_id",
    )  # fmt: skip
    session_id: str  # "" for a warm-pool executor started unbound (see identity.py)
    callback_url: str
    callback_token: str
    listen: ListenSpec
    container_id: str | None
    workspace: str
    heartbeat_s: float
    retry_base_s: float
    node_bin: str
    bash_bin: str
    # Sources of the executor_url announced in container_ready (see advertise.py), in this order.
    advertise_url: str | None
    pod_ip: str | None  # Kubernetes downward API
    ecs_metadata_uri: str | None  # ECS task metadata endpoint v4
    # Presigned S3 requests go through this base (the control plane's socket, ``/_s3/...``) when
    # the sandbox has no network of its own; None: straight to the presigned URL.
    s3_via: str | None
    # A warm-pool executor: started without a session, bound later by POST /bind (identity.py).
    pool_id: str | None

    def __init__(
        self,
        session_id: str,
        callback_url: str,
        callback_token: str,
        listen: ListenSpec,
        container_id: str | None,
        workspace: str,
        heartbeat_s: float,
        retry_base_s: float,
        node_bin: str,
        bash_bin: str,
        advertise_url: str | None = None,
        pod_ip: str | None = None,
        ecs_metadata_uri: str | None = None,
        s3_via: str | None = None,
        pool_id: str | None = None,
    ) -> None:
        self._init(
            session_id=session_id,
            callback_url=callback_url,
            callback_token=callback_token,
            listen=listen,
            container_id=container_id,
            workspace=workspace,
            heartbeat_s=heartbeat_s,
            retry_base_s=retry_base_s,
            node_bin=node_bin,
            bash_bin=bash_bin,
            advertise_url=advertise_url,
            pod_ip=pod_ip,
            ecs_metadata_uri=ecs_metadata_uri,
            s3_via=s3_via,
            pool_id=pool_id,
        )


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {raw!r}")
    return value


def load_config(env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    session_id = env.get("SANDBOXCP_SESSION_ID", "").strip()
    callback_url = env.get("SANDBOXCP_CALLBACK_URL", "").strip()
    pool_id = env.get("SANDBOXCP_POOL_ID", "").strip() or None
    if pool_id is not None and not POOL_ID_RE.fullmatch(pool_id):
        raise ConfigError(f"SANDBOXCP_POOL_ID must look like pool_ followed by 16 [a-z0-9], got {pool_id!r}")
    if not session_id and pool_id is None:
        raise ConfigError("SANDBOXCP_SESSION_ID is required")
    if not callback_url:
        raise ConfigError("SANDBOXCP_CALLBACK_URL is required")
    s3_via = env.get("SANDBOXCP_S3_VIA", "").strip() or None
    if s3_via is not None:
        try:
            Endpoint.parse(s3_via)
        except ValueError:
            raise ConfigError(
                f"SANDBOXCP_S3_VIA must look like unix:///path.sock or http(s)://host[:port], got {s3_via!r}"
            ) from None
    return Config(
        session_id=session_id,
        callback_url=callback_url,
        callback_token=env.get("SANDBOXCP_CALLBACK_TOKEN", ""),
        listen=ListenSpec.parse(env.get("SANDBOXCP_LISTEN", "").strip() or DEFAULT_LISTEN),
        container_id=env.get("SANDBOXCP_CONTAINER_ID") or None,
        workspace=env.get("SANDBOXCP_WORKSPACE", "").strip() or DEFAULT_WORKSPACE,
        heartbeat_s=_positive_float(env, "SANDBOXCP_HEARTBEAT_S", 5.0),
        retry_base_s=_positive_float(env, "SANDBOXCP_RETRY_BASE_S", 1.0),
        node_bin=env.get("SANDBOXCP_NODE", "").strip() or "node",
        bash_bin=env.get("SANDBOXCP_BASH", "").strip() or "bash",
        advertise_url=env.get("SANDBOXCP_ADVERTISE_URL", "").strip() or None,
        pod_ip=env.get("POD_IP", "").strip() or None,
        ecs_metadata_uri=env.get("ECS_CONTAINER_METADATA_URI_V4", "").strip() or None,
        s3_via=s3_via,
        pool_id=pool_id,
    )
