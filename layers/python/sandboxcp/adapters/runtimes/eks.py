"""The `eks` runtime: one Pod per session in EKS_NAMESPACE, fenced by NetworkPolicies.

The official `kubernetes` client is imported only here, and only when the first API call is made (it costs
about a second of cold start); the manifests are plain dicts built without it. Authentication is an IAM
bearer token (see eks_auth), TLS is verified against the cluster CA from EKS_CA_DATA.

Per session:
- NetworkPolicy `sandbox-<id>`: ingress TCP 8080 (the executor) from private (VPC) addresses only; egress
  DNS to kube-system, TCP to the callback port on private addresses (or the callback host itself when it
  is an IP), TCP to the S3 endpoint's addresses (`storage_cidrs`: workspace sync by presigned URL works
  without network), and - only when the template allows network - everything else except private and
  link-local ranges (instance metadata 169.254.169.254, the EKS Pod Identity agent). Created before the
  Pod, so the Pod never runs unfenced.
- Pod `sandbox-<id>`: container `executor` as uid/gid 1000, non-root, read-only root, no privilege
  escalation, every capability dropped, RuntimeDefault seccomp; requests = limits; no service account
  token, no service links, restartPolicy Never; emptyDir /workspace (sized to the disk) and a memory-backed
  64Mi /tmp. The Pod spec holds no secret: neither the callback token nor the session's env vars, which
  anyone allowed to read Pods could see. Its environment has only the control plane's SANDBOXCP_* values.
- Namespace-wide, once per process: NetworkPolicy `sandbox-default-deny` selecting every managed sandbox
  with no rules, so a sandbox whose own policy is gone (destroy, or a failed start) can reach nothing.

The executor starts unbound and listens on 0.0.0.0:8080. `start` waits until the Pod runs and returns
`http://<status.podIP>:8080` - the address comes from the Kubernetes API, never from the sandbox - where the
control plane binds it with `POST /bind` (session, callback token, env vars), as on docker: a cold launch
right after start, a warm-pool claim later.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import os
import re
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sandboxcp.adapters.runtimes.eks_auth import EksAuthError, EksTokenSource
from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.ports import ManagedSandbox, SandboxHandle, SandboxSpec, SandboxState

if TYPE_CHECKING:
    from sandboxcp.settings import Settings

CONTAINER_NAME = "executor"
EXECUTOR_PORT = 8080
SANDBOX_UID = 1000
TMP_SIZE = "64Mi"
DELETE_GRACE_S = 5
DEFAULT_DENY_POLICY = "sandbox-default-deny"
SESSION_LABEL = "sandboxcp.io/session"
MANAGED_LABEL = "sandboxcp.io/managed"
NETWORK_LABEL = "sandboxcp.io/network"
CONTROL_PLANE_ENV_PREFIX = "SANDBOXCP_"
# Where the control plane and the cluster live: RFC 1918 plus the carrier-grade NAT range EKS custom
# networking often uses for pods.
PRIVATE_CIDRS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
# Link-local: instance metadata (169.254.169.254), the EKS Pod Identity agent (169.254.170.23), ECS endpoints.
LINK_LOCAL_CIDR = "169.254.0.0/16"
_TIMEOUT = (5, 20)  # connect, read seconds
# How long `start` waits for the Pod to run (scheduling and an image pull on a fresh node take a while).
START_TIMEOUT_S = 60.0
# Waiting reasons the kubelet does not get out of without a change to the Pod or the registry.
_STUCK_REASONS = frozenset(
    {
        "ErrImageNeverPull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
# The CIDRs presigned S3 URLs resolve to (comma-separated), e.g. the entries of the region's S3 prefix list
# for a gateway endpoint; read here until Settings carries it.
S3_CIDRS_ENV = "EKS_S3_CIDRS"
S3_PORT = 443
S3_ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")  # botocore's: where presigned URLs point
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

_PHASES: dict[str, SandboxState] = {
    "Pending": "creating",
    "Running": "running",
    "Succeeded": "exited",
    "Failed": "exited",
    "Unknown": "running",  # node out of contact: not proof the sandbox is gone
}


def pod_name(session_id: str) -> str:
    name = "sandbox-" + session_id.replace("_", "-").lower()
    if len(name) > 63 or not _DNS1123.match(name):
        raise SandboxUnavailable(f"session id '{session_id}' does not make a valid pod name")
    return name


def _restricted_security_context() -> dict[str, Any]:
    return {
        "runAsUser": SANDBOX_UID,
        "runAsGroup": SANDBOX_UID,
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_manifest(spec: SandboxSpec, *, namespace: str, callback_base_url: str) -> dict[str, Any]:
    name = pod_name(spec.session_id)
    env = {
        # Only the control plane's own values (session or pool id, S3 route): the session's env vars and
        # the callback token go to the executor at bind time, never into the Pod spec.
        **{k: v for k, v in spec.env.items() if k.startswith(CONTROL_PLANE_ENV_PREFIX)},
        "SANDBOXCP_LISTEN": f"tcp:0.0.0.0:{EXECUTOR_PORT}",
        "SANDBOXCP_CALLBACK_URL": callback_base_url,
        "SANDBOXCP_CONTAINER_ID": name,
        "SANDBOXCP_WORKSPACE": "/workspace",
        "HOME": "/workspace",
        "TMPDIR": "/tmp",
    }
    resources = {
        "cpu": spec.resources.cpu,
        "memory": spec.resources.memory,
        "ephemeral-storage": spec.resources.disk,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                SESSION_LABEL: spec.session_id,
                MANAGED_LABEL: "true",
                NETWORK_LABEL: "open" if spec.network_enabled else "none",
                "app.kubernetes.io/name": "sandbox",
                "app.kubernetes.io/managed-by": "sandboxcp",
            },
        },
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": DELETE_GRACE_S,
            "hostNetwork": False,
            "hostPID": False,
            "hostIPC": False,
            "shareProcessNamespace": False,
            "securityContext": {
                "runAsUser": SANDBOX_UID,
                "runAsGroup": SANDBOX_UID,
                "runAsNonRoot": True,
                "fsGroup": SANDBOX_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": CONTAINER_NAME,
                    "image": spec.image,
                    "imagePullPolicy": "IfNotPresent",
                    "workingDir": "/workspace",
                    "ports": [{"name": "executor", "containerPort": EXECUTOR_PORT, "protocol": "TCP"}],
                    "env": [
                        *({"name": k, "value": v} for k, v in env.items()),
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    ],
                    "resources": {"requests": dict(resources), "limits": dict(resources)},
                    "securityContext": _restricted_security_context(),
                    "volumeMounts": [
                        {"name": "workspace", "mountPath": "/workspace"},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
            "volumes": [
                {"name": "workspace", "emptyDir": {"sizeLimit": spec.resources.disk}},
                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": TMP_SIZE}},
            ],
        },
    }


def _callback_egress(callback_base_url: str) -> dict[str, Any]:
    """TCP to the callback port on private addresses (or on the callback host itself when it is an IP)."""
    parts = urlsplit(callback_base_url)
    port = parts.port or (80 if parts.scheme == "http" else 443)
    try:
        host_ip = ipaddress.ip_address(parts.hostname or "")
        cidrs: tuple[str, ...] = (f"{host_ip}/{host_ip.max_prefixlen}",)
    except ValueError:
        cidrs = PRIVATE_CIDRS
    return {
        "to": [{"ipBlock": {"cidr": cidr}} for cidr in cidrs],
        "ports": [{"protocol": "TCP", "port": port}],
    }


def storage_egress_from_env(environ: Mapping[str, str], via: str = "") -> dict[str, Any]:
    """`storage_cidrs` and `storage_port` for the S3 endpoint presigned URLs name: in AWS the regional
    endpoint on 443, whose addresses EKS_S3_CIDRS lists; with a custom endpoint (moto, a local stand-in) its
    port, and its address when it is an IP and EKS_S3_CIDRS is empty. With `via` (SANDBOX_S3_VIA: the
    sandboxes send their presigned requests to that front instead, as on the local stand-in) that front's
    address and port: the endpoint the control plane itself uses is then none of the sandbox's business."""
    cidrs = [c.strip() for c in environ.get(S3_CIDRS_ENV, "").split(",") if c.strip()]
    if via.startswith(("http://", "https://")):
        return storage_egress_from_env({S3_CIDRS_ENV: ",".join(cidrs), S3_ENDPOINT_ENVS[0]: via})
    endpoint = next((environ[name] for name in S3_ENDPOINT_ENVS if environ.get(name)), "")
    if not endpoint:
        return {"storage_cidrs": cidrs, "storage_port": S3_PORT}
    parts = urlsplit(endpoint)
    port = parts.port or (80 if parts.scheme == "http" else 443)
    if not cidrs:
        with contextlib.suppress(ValueError):
            cidrs = [str(ipaddress.ip_network(parts.hostname or ""))]
    return {"storage_cidrs": cidrs, "storage_port": port}


def _storage_egress(storage_cidrs: Sequence[str], port: int) -> dict[str, Any]:
    """TCP to the S3 endpoint's addresses: the executor syncs /workspace by presigned URL, network or not."""
    return {
        "to": [
            {"ipBlock": {"cidr": str(ipaddress.ip_network(cidr, strict=False))}} for cidr in storage_cidrs
        ],
        "ports": [{"protocol": "TCP", "port": port}],
    }


def network_policy_manifest(
    spec: SandboxSpec,
    *,
    namespace: str,
    callback_base_url: str,
    storage_cidrs: Sequence[str] = (),
    storage_port: int = S3_PORT,
) -> dict[str, Any]:
    egress: list[dict[str, Any]] = [
        {  # DNS, to the cluster's resolver only
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
        _callback_egress(callback_base_url),
    ]
    if storage_cidrs:
        egress.append(_storage_egress(storage_cidrs, storage_port))
    if spec.network_enabled:
        egress.append(
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [*PRIVATE_CIDRS, LINK_LOCAL_CIDR]}}]}
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": pod_name(spec.session_id),
            "namespace": namespace,
            "labels": {SESSION_LABEL: spec.session_id, MANAGED_LABEL: "true"},
        },
        "spec": {
            "podSelector": {"matchLabels": {SESSION_LABEL: spec.session_id, MANAGED_LABEL: "true"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [{"ipBlock": {"cidr": cidr}} for cidr in PRIVATE_CIDRS],
                    "ports": [{"protocol": "TCP", "port": EXECUTOR_PORT}],
                }
            ],
            "egress": egress,
        },
    }


def default_deny_manifest(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": DEFAULT_DENY_POLICY, "namespace": namespace, "labels": {MANAGED_LABEL: "true"}},
        "spec": {
            "podSelector": {"matchLabels": {MANAGED_LABEL: "true"}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


class EksRuntime:
    name = "eks"
    # `start` waits for the Pod to run and returns its IP; the launch binds the executor there at once.
    addresses_at_start = True

    def __init__(
        self,
        *,
        cluster_name: str,
        endpoint: str,
        ca_data: str = "",
        namespace: str = "sandboxes",
        region: str = "us-east-1",
        callback_base_url: str = "",
        token_source: EksTokenSource | None = None,
        storage_cidrs: Sequence[str] = (),
        storage_port: int = S3_PORT,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.cluster_name = cluster_name
        self.endpoint = endpoint
        self.ca_data = ca_data
        self.namespace = namespace
        self.callback_base_url = callback_base_url
        self.tokens = token_source or EksTokenSource(cluster_name, region)
        self.storage_cidrs = tuple(storage_cidrs)
        self.storage_port = storage_port
        self.start_timeout_s = start_timeout_s
        self._started: set[str] = set()  # pods this instance created (destroy_all)
        self._lock = threading.Lock()
        self._core: Any = None
        self._networking: Any = None
        self._ca_file: str | None = None
        self._default_deny_ready = False

    @classmethod
    def from_settings(cls, settings: Settings) -> EksRuntime:
        return cls(
            cluster_name=settings.eks_cluster_name,
            endpoint=settings.eks_endpoint,
            ca_data=settings.eks_ca_data,
            namespace=settings.eks_namespace,
            region=settings.aws_region,
            callback_base_url=settings.callback_base_url,
            **storage_egress_from_env(os.environ, via=settings.sandbox_s3_via),
        )

    # -- Runtime interface ------------------------------------------------------------------------
    def start(self, spec: SandboxSpec) -> SandboxHandle:
        """Create the sandbox's fence and Pod, wait until it runs, and return the executor's address."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        pod = pod_manifest(spec, namespace=self.namespace, callback_base_url=self.callback_base_url)
        policy = network_policy_manifest(
            spec,
            namespace=self.namespace,
            callback_base_url=self.callback_base_url,
            storage_cidrs=self.storage_cidrs,
            storage_port=self.storage_port,
        )
        name = pod["metadata"]["name"]
        try:
            self._ensure_default_deny()
            # The fence first: a Pod must never run before the policy that confines it exists.
            self._create(self._api()[1].create_namespaced_network_policy, policy)
            try:
                self._call(self._api()[0].create_namespaced_pod, self.namespace, pod)
            except ApiException as exc:
                if exc.status == 409:
                    raise SandboxUnavailable(f"a sandbox pod '{name}' already exists") from exc
                self._delete(self._api()[1].delete_namespaced_network_policy, name)
                raise
            self._started.add(name)
            try:
                ip = self._wait_until_running(name)
            except BaseException:
                self.destroy(name)
                raise
        except ApiException as exc:
            raise SandboxUnavailable(f"Kubernetes refused the sandbox: {exc.status} {_reason(exc)}") from exc
        except (HTTPError, OSError) as exc:
            raise SandboxUnavailable(f"Kubernetes API unreachable: {exc}") from exc
        except EksAuthError as exc:
            raise SandboxUnavailable(str(exc)) from exc
        return SandboxHandle(
            container_id=name, node=f"eks:{self.cluster_name}", executor_url=_executor_url(ip)
        )

    def _wait_until_running(self, name: str) -> str:
        """The Pod's IP once it runs. Fails fast when the kubelet reports it stuck (image missing, bad
        config) or it ended; after `start_timeout_s` otherwise."""
        deadline = time.monotonic() + self.start_timeout_s
        pause = 0.05
        while True:
            response = self._call(self._api()[0].read_namespaced_pod, name, self.namespace)
            pod = json.loads(response.data or b"{}")
            status = pod.get("status") or {}
            phase = status.get("phase", "Pending")
            if phase == "Running" and status.get("podIP"):
                return str(status["podIP"])
            if phase in ("Succeeded", "Failed") or (pod.get("metadata") or {}).get("deletionTimestamp"):
                raise SandboxUnavailable(f"the sandbox pod '{name}' ended before it ran ({phase})")
            for container in status.get("containerStatuses") or []:
                waiting = (container.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in _STUCK_REASONS:
                    raise SandboxUnavailable(
                        f"the sandbox pod '{name}' cannot start: {waiting['reason']}"
                        f" {waiting.get('message', '')}".rstrip()
                    )
            if time.monotonic() + pause > deadline:
                raise SandboxUnavailable(
                    f"the sandbox pod '{name}' was not running after {self.start_timeout_s:.0f} s ({phase})"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def destroy(self, container_id: str) -> None:
        core, networking = self._api()
        # The pod goes first; once its own policy is deleted the namespace's default deny still fences it
        # for the rest of its grace period.
        self._delete(core.delete_namespaced_pod, container_id, grace_period_seconds=DELETE_GRACE_S)
        self._delete(networking.delete_namespaced_network_policy, container_id)
        self._started.discard(container_id)

    def destroy_all(self) -> None:
        """Delete every Pod this instance started (the local stack calls this when it stops)."""
        for name in list(self._started):
            with contextlib.suppress(Exception):  # one that cannot be deleted must not keep the others
                self.destroy(name)

    def ping(self) -> bool:
        """The health check: the sandbox namespace can be read (API reachable, token accepted, the
        namespace there). Raises SandboxUnavailable with the reason otherwise."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            self._call(self._api()[0].read_namespace, self.namespace)
        except ApiException as exc:
            raise SandboxUnavailable(
                f"namespace '{self.namespace}' not readable: {exc.status} {_reason(exc)}"
            ) from exc
        except (HTTPError, OSError) as exc:
            raise SandboxUnavailable(f"Kubernetes API unreachable: {exc}") from exc
        except EksAuthError as exc:
            raise SandboxUnavailable(str(exc)) from exc
        return True

    def state(self, container_id: str) -> SandboxState:
        from kubernetes.client.exceptions import ApiException

        try:
            response = self._call(self._api()[0].read_namespaced_pod, container_id, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return "missing"
            raise
        return _pod_state(json.loads(response.data or b"{}"))

    @property
    def default_node(self) -> str:
        return f"eks:{self.cluster_name}"

    def executor_url(self, container_id: str) -> str | None:
        """The executor's address from the Kubernetes API (status.podIP), never from the Pod itself."""
        response = self._call(self._api()[0].read_namespaced_pod, container_id, self.namespace)
        ip = (json.loads(response.data or b"{}").get("status") or {}).get("podIP")
        return _executor_url(str(ip)) if ip else None

    def logs(self, container_id: str, tail: int = 100, since: datetime | None = None) -> list[str]:
        """The executor's last `tail` log lines (optionally only those written since `since`)."""
        from kubernetes.client.exceptions import ApiException

        if tail <= 0:
            return []
        kwargs: dict[str, Any] = {"container": CONTAINER_NAME, "tail_lines": tail}
        if since is not None:
            since = since if since.tzinfo else since.replace(tzinfo=UTC)  # naive means UTC
            ago = (datetime.now(UTC) - since).total_seconds()
            if ago < 0:
                return []  # nothing is written in the future (and sinceSeconds must be positive)
            kwargs["since_seconds"] = max(1, math.ceil(ago))
        try:
            response = self._call(
                self._api()[0].read_namespaced_pod_log, container_id, self.namespace, **kwargs
            )
        except ApiException as exc:
            if exc.status in (400, 404):  # gone, or its container has not started yet
                return []
            raise
        # Raw text: the client's own deserialisation would mangle JSON-looking log lines.
        return (response.data or b"").decode("utf-8", "replace").splitlines()[-tail:]

    def states(self, container_ids: Sequence[str]) -> dict[str, SandboxState]:
        """One listing of the namespace's sandbox pods (500 a page) rather than a read per pod."""
        if not container_ids:
            return {}
        listed = {m.container_id: m.state for m in self.list_managed()}
        return {container_id: listed.get(container_id, "missing") for container_id in container_ids}

    def list_managed(self) -> list[ManagedSandbox]:
        """Every sandbox pod in the namespace (labelled `sandboxcp.io/managed=true`)."""
        found: list[ManagedSandbox] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"label_selector": f"{MANAGED_LABEL}=true", "limit": 500}
            if token:
                kwargs["_continue"] = token
            response = self._call(self._api()[0].list_namespaced_pod, self.namespace, **kwargs)
            page = json.loads(response.data or b"{}")
            for pod in page.get("items") or []:
                metadata = pod.get("metadata", {})
                found.append(
                    ManagedSandbox(
                        container_id=metadata.get("name", ""),
                        session_id=(metadata.get("labels") or {}).get(SESSION_LABEL) or None,
                        state=_pod_state(pod),
                    )
                )
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return found

    # -- client -----------------------------------------------------------------------------------
    def _api(self) -> tuple[Any, Any]:
        if self._core is None:
            with self._lock:
                if self._core is None:
                    self._core, self._networking = self._build_clients()
        return self._core, self._networking

    def _build_clients(self) -> tuple[Any, Any]:
        if not self.endpoint:
            raise SandboxUnavailable("the eks runtime needs EKS_ENDPOINT")
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.endpoint.rstrip("/")
        configuration.verify_ssl = True
        if self.ca_data:
            configuration.ssl_ca_cert = self._write_ca()
        configuration.api_key = {"authorization": "Bearer " + self.tokens.token()}
        # Called before every request: hands out the cached token, or a fresh one once it is 10 minutes old.
        configuration.refresh_api_key_hook = lambda cfg: cfg.api_key.update(
            authorization="Bearer " + self.tokens.token()
        )
        api_client = client.ApiClient(configuration)
        return client.CoreV1Api(api_client), client.NetworkingV1Api(api_client)

    def _write_ca(self) -> str:
        import base64

        try:
            pem = base64.b64decode(self.ca_data, validate=True)
        except ValueError as exc:
            raise SandboxUnavailable("EKS_CA_DATA is not base64") from exc
        fd, path = tempfile.mkstemp(prefix="eks-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        self._ca_file = path
        weakref.finalize(self, _unlink, path)
        return path

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Raw call (no model deserialisation) with timeouts; a 401 re-signs the token and retries once."""
        from kubernetes.client.exceptions import ApiException

        kwargs.setdefault("_request_timeout", _TIMEOUT)
        kwargs["_preload_content"] = False
        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            if exc.status != 401:
                raise
            self.tokens.invalidate()
            return method(*args, **kwargs)

    def _create(self, method: Any, body: dict[str, Any]) -> None:
        """Create, where an object of that name already existing is fine (same session, same fence)."""
        from kubernetes.client.exceptions import ApiException

        try:
            self._call(method, self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise

    def _delete(self, method: Any, name: str, **kwargs: Any) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._call(method, name, self.namespace, **kwargs)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _ensure_default_deny(self) -> None:
        if not self._default_deny_ready:
            self._create(
                self._api()[1].create_namespaced_network_policy, default_deny_manifest(self.namespace)
            )
            self._default_deny_ready = True


def _executor_url(ip: str) -> str:
    return f"http://[{ip}]:{EXECUTOR_PORT}" if ":" in ip else f"http://{ip}:{EXECUTOR_PORT}"


def _pod_state(pod: dict[str, Any]) -> SandboxState:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "exited"  # being deleted: its processes have been told to stop
    return _PHASES.get((pod.get("status") or {}).get("phase", "Pending"), "creating")


def _reason(exc: Any) -> str:
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
