"""A Kubernetes API stand-in whose Pods are real containers on the local Docker engine.

For the `eks` runtime's tests and for anyone who wants to try the EKS path on one machine: the official
`kubernetes` client talks to it exactly as it talks to EKS (HTTPS with a cluster CA, `Bearer k8s-aws-v1.`
IAM tokens), and what it creates runs.

What it serves (JSON only): `GET /version`, `/healthz`; namespaces (get, list, create); pods (create, get,
list with label selectors and paging, delete with a grace period, `log` with `container`, `tailLines`,
`sinceSeconds`); networking.k8s.io/v1 NetworkPolicies (create, get, list, delete).

How a Pod becomes a container (one container per Pod; `docker create` + `start` through the Engine API):
- the Pod gets its own address on a bridge network the stand-in owns (a /24 of 10.244.0.0/16 unless
  given); the address is chosen when the Pod is accepted, so its NetworkPolicy fence is in place before
  the container starts. The host is the network's gateway (first address): a control plane or S3
  endpoint on the host is reached there. `status.podIP` / `hostIP` report it;
- image (never pulled: it must be on the engine), command/args, workingDir, env (`value`, and `fieldRef`
  to metadata.name/namespace/uid, status.podIP/hostIP, spec.nodeName);
- securityContext (container over pod): runAsUser/runAsGroup -> User, runAsNonRoot checked against the
  effective uid as the kubelet does, readOnlyRootFilesystem, capabilities drop/add, allowPrivilegeEscalation
  false -> no-new-privileges, seccomp RuntimeDefault (Docker's default profile) or Unconfined, fsGroup ->
  supplementary group and group owner of emptyDirs;
- resources.limits: memory -> memory limit without swap, cpu -> CPU quota; the kubelet's `podPidsLimit`
  is a stand-in setting; ephemeral-storage is not enforced;
- emptyDir volumes: a host directory per Pod (0777, setgid group fsGroup: what the kubelet makes), or a
  tmpfs of `sizeLimit` for `medium: Memory`; `readOnly` mounts;
- labels are copied onto the container (plus the stand-in's own, by which it finds what it owns);
- phase: Pending until the container runs, Running, then Succeeded / Failed from its exit code;
  containerStatuses with waiting reasons (ErrImageNeverPull, CreateContainerConfigError) the way a kubelet
  reports them; delete sets deletionTimestamp, stops the container with the grace period, removes it.

Refused (403), because a local tool must never hand a container the host: privileged, hostNetwork, hostPID,
hostIPC, hostPath volumes; also refused (422): more than one container, init containers, other volume kinds.

NetworkPolicies are enforced with iptables, with Kubernetes semantics: a Pod selected by a policy of a type
is isolated in that direction, and only the union of the selecting policies' rules is let through (ipBlock
with `except`, podSelector / namespaceSelector over the stand-in's Pods, ports with protocol and endPort).
Each isolated Pod gets its own chain; the stand-in's dispatch chains hang off DOCKER-USER (traffic between
Pods and to other networks), INPUT (Pod to host: the control plane, S3) and OUTPUT (host to Pod). Allowed
traffic is accepted past Docker's network isolation (a pod network is flat and routed; the policies are its
only filter). Everything is removed when the Pod, the policy or the stand-in goes.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sandboxcp.adapters.runtimes.docker import DockerApiError, DockerNode, EngineClient, demux_logs
from sandboxcp.local.host import pid_alive as _alive

log = logging.getLogger(__name__)

STANDIN_LABEL = "sandboxcp.kube-standin"  # the stand-in instance that owns a container or network
POD_LABEL = "sandboxcp.kube-standin.pod"  # <namespace>/<name> of the Pod a container plays
PID_LABEL = "sandboxcp.kube-standin.pid"  # the process that owns it: stale leftovers are swept at start
NODE_NAME = "kube-standin"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public")
DEFAULT_POD_PIDS_LIMIT = 1024
POD_NETWORK_RANGE = ipaddress.ip_network("10.244.0.0/16")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_EKS_TOKEN = re.compile(r"^Bearer k8s-aws-v1\.([A-Za-z0-9_-]+)$")
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIXES = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
# Waiting reasons after which a kubelet would not get the container running without a change.
IMAGE_MISSING = "ErrImageNeverPull"
CONFIG_ERROR = "CreateContainerConfigError"


class KubeError(Exception):
    """An API error answered as a Kubernetes `Status`."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class ContainerConfigError(Exception):
    """The Pod was accepted but its container cannot be made (what the kubelet reports as waiting)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def parse_quantity(text: str | int | float) -> float:
    """A Kubernetes resource quantity (`500m`, `0.5`, `768Mi`, `2G`, `1e3`) as a number."""
    if isinstance(text, int | float):
        return float(text)
    match = _QUANTITY.match(str(text).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {text!r}")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """A Kubernetes `Status` object, as the API server answers errors (the test fake answers the same)."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 300 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


# -- selectors --------------------------------------------------------------------------------------
def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (`matchLabels` and `matchExpressions`); empty or missing selects everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def label_query_matches(query: str, labels: Mapping[str, str]) -> bool:
    """A `labelSelector` query string: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`."""
    for term in re.split(r",(?![^()]*\))", query):
        term = term.strip()
        if not term:
            continue
        if m := re.fullmatch(r"([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if (op == "in") != (labels.get(key) in values and key in labels):
                return False
        elif "!=" in term:
            key, value = (part.strip() for part in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (part.strip() for part in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


# -- NetworkPolicy enforcement ----------------------------------------------------------------------
@dataclass(frozen=True)
class PodEndpoint:
    """What a policy needs to know of a Pod: where it is, what it is called and which ports it names."""

    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str]
    named_ports: Mapping[str, tuple[int, str]] = field(default_factory=dict)  # name -> (port, protocol)


@dataclass(frozen=True)
class PodFence:
    """The iptables match fragments a Pod lets through, per direction; None: not isolated that way."""

    egress: tuple[str, ...] | None
    ingress: tuple[str, ...] | None


def _ipv4_without(cidr: str, excepts: Iterable[str]) -> list[str]:
    """`cidr` minus every `except` range, as CIDRs (what ipBlock.except means, in iptables' terms)."""
    net = ipaddress.ip_network(cidr, strict=False)
    if net.version != 4:
        return []  # the stand-in's pod network is IPv4 only
    parts: list[ipaddress.IPv4Network] = [net]
    for raw in excepts:
        hole = ipaddress.ip_network(raw, strict=False)
        if hole.version != 4:
            continue
        kept: list[ipaddress.IPv4Network] = []
        for part in parts:
            if hole.subnet_of(part):
                kept.extend(part.address_exclude(hole))
            elif not part.subnet_of(hole):
                kept.append(part)
        parts = kept
    return [str(n) for n in ipaddress.collapse_addresses(parts)]


def _policy_types(spec: Mapping[str, Any]) -> list[str]:
    # The API server's defaulting: Ingress always, Egress when the policy has egress rules.
    return list(spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else [])))


def compile_fences(
    pods: Sequence[PodEndpoint],
    policies: Sequence[Mapping[str, Any]],
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> dict[str, PodFence]:
    """Pod IP -> what its policies let through, with NetworkPolicy semantics (a union of allows)."""
    fences: dict[str, PodFence] = {}
    for pod in pods:
        egress: list[str] | None = None
        ingress: list[str] | None = None
        for policy in policies:
            if policy["metadata"].get("namespace") != pod.namespace:
                continue
            spec = policy.get("spec") or {}
            if not selector_matches(spec.get("podSelector"), pod.labels):
                continue
            types = _policy_types(spec)
            if "Egress" in types:
                egress = egress or []
                for rule in spec.get("egress") or []:
                    egress += _rule_fragments(rule, "to", "-d", pod, policy, pods, namespace_labels)
            if "Ingress" in types:
                ingress = ingress or []
                for rule in spec.get("ingress") or []:
                    ingress += _rule_fragments(rule, "from", "-s", pod, policy, pods, namespace_labels)
        fences[pod.ip] = PodFence(
            egress=tuple(dict.fromkeys(egress)) if egress is not None else None,
            ingress=tuple(dict.fromkeys(ingress)) if ingress is not None else None,
        )
    return fences


def _rule_fragments(
    rule: Mapping[str, Any],
    peers_key: str,
    address_flag: str,
    pod: PodEndpoint,
    policy: Mapping[str, Any],
    pods: Sequence[PodEndpoint],
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> list[str]:
    peers = rule.get(peers_key)
    addresses: list[str | None]
    peer_pods: list[PodEndpoint] = []
    if not peers:
        addresses = [None]  # no peers listed: any address
    else:
        addresses = []
        for peer in peers:
            if block := peer.get("ipBlock"):
                addresses += _ipv4_without(block["cidr"], block.get("except") or [])
                continue
            ns_selector = peer.get("namespaceSelector")
            for other in pods:
                in_scope = (
                    selector_matches(ns_selector, namespace_labels.get(other.namespace, {}))
                    if ns_selector is not None
                    else other.namespace == policy["metadata"].get("namespace")
                )
                if in_scope and selector_matches(peer.get("podSelector"), other.labels):
                    addresses.append(f"{other.ip}/32")
                    peer_pods.append(other)
        if not addresses:
            return []  # peers that select nothing allow nothing
    ports: list[str | None] = []
    for port in rule.get("ports") or [None]:
        if port is None:
            ports.append(None)
            continue
        protocol = str(port.get("protocol") or "TCP").lower()
        number = port.get("port")
        if number is None:
            ports.append(f"-p {protocol}")
            continue
        if isinstance(number, str) and not number.isdigit():
            # A named port: the selected pod's (ingress) or the peer pods' (egress) container port.
            owners = [pod] if address_flag == "-s" else peer_pods
            for owner in owners:
                if number in owner.named_ports:
                    resolved, proto = owner.named_ports[number]
                    ports.append(f"-p {proto.lower()} --dport {resolved}")
            continue
        end = port.get("endPort")
        span = f"{int(number)}:{int(end)}" if end else str(int(number))
        ports.append(f"-p {protocol} --dport {span}")
    if not ports:
        return []
    fragments = []
    for address in addresses:
        for port_match in ports:
            parts = [f"{address_flag} {address}" if address else "", port_match or ""]
            fragments.append(" ".join(p for p in parts if p))
    return fragments


class PolicyFirewall:
    """The iptables side of NetworkPolicy: dispatch chains hooked once, then per-Pod chains rewritten in
    one atomic `iptables-restore --noflush` whenever a Pod or a policy changes."""

    def __init__(self, prefix: str, bridge: str, run: Callable[..., Any] = subprocess.run) -> None:
        self.prefix = prefix  # at most 9 characters: chain names must stay under 29
        self.bridge = bridge
        self._run = run
        self._lock = threading.Lock()
        self._chains: set[str] = set()
        self._installed = False

    @property
    def egress_chain(self) -> str:
        return f"{self.prefix}-EGR"

    @property
    def ingress_chain(self) -> str:
        return f"{self.prefix}-ING"

    def _hooks(self) -> list[tuple[str, str]]:
        """(chain, rule) pairs, in order: policy first, then the flat pod network's accept."""
        return [
            ("DOCKER-USER", f"-i {self.bridge} -j {self.egress_chain}"),
            ("DOCKER-USER", f"-o {self.bridge} -j {self.ingress_chain}"),
            ("DOCKER-USER", f"-i {self.bridge} -j ACCEPT"),
            ("DOCKER-USER", f"-o {self.bridge} -j ACCEPT"),
            ("INPUT", f"-i {self.bridge} -j {self.egress_chain}"),
            ("OUTPUT", f"-o {self.bridge} -j {self.ingress_chain}"),
        ]

    def install(self) -> None:
        if shutil.which("iptables-restore") is None:
            raise RuntimeError("iptables-restore is not installed: NetworkPolicies cannot be enforced")
        lines = [f":{self.egress_chain} - [0:0]", f":{self.ingress_chain} - [0:0]"]
        position: dict[str, int] = {}
        for chain, rule in self._hooks():
            position[chain] = position.get(chain, 0) + 1
            lines.append(f"-I {chain} {position[chain]} {rule}")
        self._restore(lines)
        self._installed = True

    def apply(self, fences: Mapping[str, PodFence]) -> None:
        """Make the rules say `fences` (pod IP -> fence): one transaction, so no packet sees half."""
        with self._lock:
            lines = [f":{self.egress_chain} - [0:0]", f":{self.ingress_chain} - [0:0]"]
            chains: set[str] = set()
            for ip, fence in sorted(fences.items()):
                tag = ipaddress.ip_address(ip).packed.hex()
                for direction, fragments, dispatch, match in (
                    ("E", fence.egress, self.egress_chain, "-s"),
                    ("I", fence.ingress, self.ingress_chain, "-d"),
                ):
                    if fragments is None:
                        continue
                    chain = f"{self.prefix}-{direction}{tag}"
                    chains.add(chain)
                    lines.append(f":{chain} - [0:0]")
                    lines.append(f"-A {dispatch} {match} {ip}/32 -j {chain}")
                    # Replies to connections either side was allowed to open.
                    lines.append(f"-A {chain} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN")
                    lines += [f"-A {chain} {fragment} -j RETURN".replace("  ", " ") for fragment in fragments]
                    lines.append(f"-A {chain} -j DROP")
            for stale in sorted(self._chains - chains):
                lines += [f":{stale} - [0:0]", f"-X {stale}"]
            self._restore(lines)
            self._chains = chains

    def uninstall(self) -> None:
        with self._lock:
            if self._installed:
                for chain, rule in self._hooks():
                    self._run(
                        ["iptables", "-w", "-D", chain, *rule.split()], capture_output=True, check=False
                    )
            self._installed = False
            listed = self._run(["iptables", "-w", "-S"], capture_output=True, text=True, check=False)
            mine = [
                line.split()[1]
                for line in (listed.stdout or "").splitlines()
                if line.startswith(f"-N {self.prefix}-")
            ]
            if mine:
                self._restore([f":{c} - [0:0]" for c in mine] + [f"-X {c}" for c in mine])
            self._chains = set()

    def _restore(self, lines: list[str]) -> None:
        script = "*filter\n" + "\n".join(lines) + "\nCOMMIT\n"
        done = self._run(
            ["iptables-restore", "-w", "--noflush"], input=script, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"iptables-restore failed: {(done.stderr or '').strip()[:500]}")


# -- Pods as containers -----------------------------------------------------------------------------
@dataclass
class PodRecord:
    obj: dict[str, Any]  # the Pod as the API shows it
    ip: str
    container_id: str | None = None
    volume_dir: Path | None = None
    deleting: bool = False
    settled: threading.Event = field(default_factory=threading.Event)  # the create attempt is over
    waiting: tuple[str, str] | None = None  # (reason, message) when the container cannot be made


def _merged_security(pod_spec: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, Any]:
    """The container's effective securityContext: its own fields over the pod's."""
    merged = {
        k: v
        for k, v in (pod_spec.get("securityContext") or {}).items()
        if k in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")
    }
    merged.update(container.get("securityContext") or {})
    return merged


def _refuse_host_access(spec: Mapping[str, Any]) -> None:
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            raise KubeError(403, "Forbidden", f"the stand-in never grants {flag}")
    for volume in spec.get("volumes") or []:
        if "emptyDir" not in volume:
            kind = next((k for k in volume if k != "name"), "unknown")
            code = 403 if kind == "hostPath" else 422
            raise KubeError(
                code, "Forbidden" if code == 403 else "Invalid", f"volume kind {kind} unsupported"
            )
    containers = spec.get("containers") or []
    if len(containers) != 1 or spec.get("initContainers"):
        raise KubeError(422, "Invalid", "the stand-in runs exactly one container per pod, no init containers")
    security = containers[0].get("securityContext") or {}
    if security.get("privileged") or "ALL" in ((security.get("capabilities") or {}).get("add") or []):
        raise KubeError(403, "Forbidden", "the stand-in never runs privileged containers")


class PodRunner:
    """Turns a Pod spec into a Docker container on the stand-in's network (Engine API)."""

    def __init__(
        self,
        engine: EngineClient,
        *,
        network: str,
        instance: str,
        host_ip: str,
        volume_root: Path,
        pids_limit: int,
    ) -> None:
        self.engine = engine
        self.network = network
        self.instance = instance
        self.host_ip = host_ip
        self.volume_root = volume_root
        self.pids_limit = pids_limit

    def container_config(self, record: PodRecord) -> dict[str, Any]:
        pod = record.obj
        meta, spec = pod["metadata"], pod["spec"]
        container = spec["containers"][0]
        security = _merged_security(spec, container)
        image_user = self._image_user(container["image"])
        uid = security.get("runAsUser")
        if security.get("runAsNonRoot"):
            # The kubelet's check: a numeric uid other than 0, from the spec or else from the image.
            effective = uid if uid is not None else image_user.split(":", 1)[0] or "0"
            if not str(effective).isdigit():
                raise ContainerConfigError(
                    CONFIG_ERROR, "container has runAsNonRoot and image has non-numeric user, cannot verify"
                )
            if int(effective) == 0:
                raise ContainerConfigError(
                    CONFIG_ERROR, "container has runAsNonRoot and image will run as root"
                )
        user = ""
        if uid is not None:
            user = str(uid) + (f":{security['runAsGroup']}" if security.get("runAsGroup") is not None else "")
        fs_group = (spec.get("securityContext") or {}).get("fsGroup")
        host: dict[str, Any] = {
            "NetworkMode": self.network,
            "IpcMode": "private",
            "RestartPolicy": {"Name": "no"},
            "ReadonlyRootfs": bool(security.get("readOnlyRootFilesystem")),
            "CapDrop": list((security.get("capabilities") or {}).get("drop") or []),
            "CapAdd": list((security.get("capabilities") or {}).get("add") or []),
            "SecurityOpt": [],
            "PidsLimit": self.pids_limit,
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "1"}},
            "Binds": [],
            "Tmpfs": {},
        }
        if security.get("allowPrivilegeEscalation") is False:
            host["SecurityOpt"].append("no-new-privileges")
        seccomp = (security.get("seccompProfile") or {}).get("type", "RuntimeDefault")
        if seccomp == "Unconfined":
            host["SecurityOpt"].append("seccomp=unconfined")
        elif seccomp != "RuntimeDefault":
            raise ContainerConfigError(CONFIG_ERROR, f"seccomp profile {seccomp} is not supported")
        if fs_group is not None:
            host["GroupAdd"] = [str(fs_group)]
        limits = (container.get("resources") or {}).get("limits") or {}
        try:
            if "memory" in limits:
                host["Memory"] = host["MemorySwap"] = int(parse_quantity(limits["memory"]))
            if "cpu" in limits:
                host["NanoCpus"] = int(parse_quantity(limits["cpu"]) * 1e9)
        except ValueError as exc:
            raise ContainerConfigError(CONFIG_ERROR, str(exc)) from None
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount.get("name", ""))
            if volume is None or mount.get("subPath"):
                raise ContainerConfigError(CONFIG_ERROR, f"volume mount {mount.get('name')!r} cannot be made")
            empty_dir = volume["emptyDir"] or {}
            mode = "ro" if mount.get("readOnly") else "rw"
            if empty_dir.get("medium") == "Memory":
                options = [mode, "nosuid", "nodev", "mode=1777"]
                if empty_dir.get("sizeLimit"):
                    options.append(f"size={int(parse_quantity(empty_dir['sizeLimit']))}")
                host["Tmpfs"][mount["mountPath"]] = ",".join(options)
            else:
                host["Binds"].append(
                    f"{self._empty_dir(record, volume['name'], fs_group)}:{mount['mountPath']}:{mode}"
                )
        grace = spec.get("terminationGracePeriodSeconds")
        config: dict[str, Any] = {
            "Image": container["image"],
            "Hostname": meta["name"][:63],
            "Env": [f"{k}={v}" for k, v in self._env(record, container).items()],
            "Labels": {
                **(meta.get("labels") or {}),
                STANDIN_LABEL: self.instance,
                POD_LABEL: f"{meta['namespace']}/{meta['name']}",
                PID_LABEL: str(os.getpid()),
            },
            "HostConfig": host,
            "NetworkingConfig": {
                "EndpointsConfig": {self.network: {"IPAMConfig": {"IPv4Address": record.ip}}}
            },
        }
        if user:
            config["User"] = user
        if grace is not None:
            config["StopTimeout"] = int(grace)
        if container.get("command"):
            config["Entrypoint"] = list(container["command"])
        if container.get("args"):
            config["Cmd"] = list(container["args"])
        if container.get("workingDir"):
            config["WorkingDir"] = container["workingDir"]
        return config

    def _image_user(self, image: str) -> str:
        try:
            info = self.engine.call("GET", f"/images/{image}/json").json()
        except DockerApiError as exc:
            if exc.status == 404:
                raise ContainerConfigError(
                    IMAGE_MISSING, f'Container image "{image}" is not present with pull policy of Never'
                ) from None
            raise
        return str((info.get("Config") or {}).get("User") or "")

    def _env(self, record: PodRecord, container: Mapping[str, Any]) -> dict[str, str]:
        meta = record.obj["metadata"]
        fields = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "status.podIP": record.ip,
            "status.hostIP": self.host_ip,
            "spec.nodeName": NODE_NAME,
        }
        env: dict[str, str] = {}
        for item in container.get("env") or []:
            if "value" in item or "valueFrom" not in item:
                env[item["name"]] = str(item.get("value", ""))
                continue
            path = ((item["valueFrom"] or {}).get("fieldRef") or {}).get("fieldPath", "")
            if label := re.fullmatch(r"metadata\.labels\['([^']+)'\]", path):
                env[item["name"]] = (meta.get("labels") or {}).get(label.group(1), "")
            elif path in fields:
                env[item["name"]] = fields[path]
            else:
                raise ContainerConfigError(CONFIG_ERROR, f"env {item['name']}: valueFrom not supported here")
        return env

    def _empty_dir(self, record: PodRecord, name: str, fs_group: Any) -> Path:
        """What the kubelet makes for an emptyDir on disk: a fresh 0777 directory on the node (group
        owner fsGroup, setgid, when the pod sets one)."""
        assert record.volume_dir is not None
        path = record.volume_dir / name
        path.mkdir(parents=True, exist_ok=True)
        if fs_group is not None:
            os.chown(path, -1, int(fs_group))
            os.chmod(path, 0o2777)
        else:
            os.chmod(path, 0o777)
        return path

    def create_and_start(self, record: PodRecord) -> str:
        meta = record.obj["metadata"]
        name = f"k8s_{meta['name']}_{meta['namespace']}_{meta['uid'][:8]}"
        config = self.container_config(record)
        try:
            created = self.engine.call(
                "POST", "/containers/create", params={"name": name}, body=config, ok=(201,)
            )
        except DockerApiError as exc:
            raise ContainerConfigError(CONFIG_ERROR, exc.message) from None
        container_id = str(created.json()["Id"])
        record.container_id = container_id
        self.engine.call("POST", f"/containers/{container_id}/start", ok=(204, 304))
        return container_id

    def inspect(self, container_id: str) -> dict[str, Any] | None:
        try:
            return dict(self.engine.call("GET", f"/containers/{container_id}/json").json())
        except DockerApiError as exc:
            if exc.status == 404:
                return None
            raise

    def stop_and_remove(self, container_id: str, grace_s: int) -> None:
        with contextlib.suppress(DockerApiError):
            self.engine.call(
                "POST",
                f"/containers/{container_id}/stop",
                params={"t": str(grace_s)},
                ok=(204, 304, 404),
                timeout=grace_s + 30,
            )
        self.engine.call(
            "DELETE", f"/containers/{container_id}", params={"force": "true", "v": "true"}, ok=(204, 404)
        )

    def logs(self, container_id: str, tail: int | None, since_s: int | None) -> bytes:
        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "tail": "all" if tail is None else str(tail)}
        if since_s is not None:
            params["since"] = str(int(time.time()) - since_s)
        resp = self.engine.call("GET", f"/containers/{container_id}/logs", params=params)
        return demux_logs(resp.content)


def _pod_status(record: PodRecord, info: dict[str, Any] | None, waiting: tuple[str, str] | None) -> None:
    """Fill `status` the way a kubelet reports it, from the container's state."""
    pod = record.obj
    status = pod.setdefault("status", {})
    container = pod["spec"]["containers"][0]
    entry: dict[str, Any] = {
        "name": container["name"],
        "image": container["image"],
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
    }
    phase = "Pending"
    if waiting is not None:
        entry["state"] = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    elif info is None:
        entry["state"] = {"waiting": {"reason": "ContainerCreating"}}
    else:
        state = info.get("State") or {}
        entry["containerID"] = f"docker://{info['Id']}"
        entry["imageID"] = str(info.get("Image", ""))
        if state.get("Status") in ("running", "paused", "restarting"):
            phase = "Running"
            entry.update(ready=True, started=True, state={"running": {"startedAt": state.get("StartedAt")}})
        elif state.get("Status") in ("exited", "dead"):
            code = int(state.get("ExitCode") or 0)
            phase = "Succeeded" if code == 0 else "Failed"
            reason = "OOMKilled" if state.get("OOMKilled") else ("Completed" if code == 0 else "Error")
            entry["state"] = {
                "terminated": {
                    "exitCode": code,
                    "reason": reason,
                    "startedAt": state.get("StartedAt"),
                    "finishedAt": state.get("FinishedAt"),
                }
            }
        else:
            entry["state"] = {"waiting": {"reason": "ContainerCreating"}}
    ready = "True" if phase == "Running" else "False"
    status.update(
        phase=phase,
        hostIP=status.get("hostIP"),
        containerStatuses=[entry],
        conditions=[
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": ready},
            {"type": "Ready", "status": ready},
        ],
    )
    if info is not None or waiting is not None:
        # The sandbox (network namespace) exists: the pod has its address, as on a real node.
        status.update(podIP=record.ip, podIPs=[{"ip": record.ip}])


# -- the API server ---------------------------------------------------------------------------------
_NAMESPACED = re.compile(
    r"^/(?:api/v1|apis/networking\.k8s\.io/v1)/namespaces/([^/]+)/(pods|networkpolicies)(?:/([^/]+))?(?:/(log|status))?$"
)
_NAMESPACE = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?$")


def self_signed_certificate(directory: Path, common_name: str = "kube-standin") -> tuple[Path, Path]:
    """A one-day EC certificate for 127.0.0.1 and localhost (made with `openssl`)."""
    cert, key = directory / f"{common_name}.crt", directory / f"{common_name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={common_name}",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def is_eks_token(authorization: str) -> bool:
    """`Bearer k8s-aws-v1.<base64url of a presigned STS GetCallerIdentity URL>` (what EKS accepts; the
    stand-in cannot ask STS who signed it, so the shape is all it checks)."""
    match = _EKS_TOKEN.match(authorization)
    if not match:
        return False
    body = match.group(1)
    try:
        url = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return False
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return (
        parts.scheme == "https"
        and (parts.hostname or "").startswith("sts.")
        and query.get("Action") == ["GetCallerIdentity"]
        and "x-k8s-aws-id" in (query.get("X-Amz-SignedHeaders") or [""])[0].split(";")
    )


class KubeStandin:
    """`with KubeStandin() as kube:` -> an API server at `kube.url` (CA in `kube.ca_data`) whose Pods run.

    Needs root (iptables, emptyDir ownership) and a Docker engine with the Pods' images. Several stand-ins
    can share an engine: each owns its network, its containers and its chains (by a random instance id).
    """

    def __init__(
        self,
        *,
        engine: EngineClient | None = None,
        docker_host: str = "unix:///var/run/docker.sock",
        namespaces: Iterable[str] = ("sandboxes",),
        tls: bool = True,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        subnet: str | None = None,
        pod_pids_limit: int = DEFAULT_POD_PIDS_LIMIT,
        enforce_network_policies: bool = True,
        firewall: PolicyFirewall | None = None,
        state_dir: str | None = None,
    ) -> None:
        self.instance = secrets.token_hex(3)
        self.engine = engine or EngineClient(DockerNode("kube-standin", docker_host))
        self.tls = tls
        self.listen = (listen_host, listen_port)
        self.requested_subnet = subnet
        self.pod_pids_limit = pod_pids_limit
        self.enforce = enforce_network_policies
        self.network_name = f"kube-standin-{self.instance}"
        self.bridge = f"ksb{self.instance}"
        self.firewall = firewall or PolicyFirewall(f"KSB{self.instance}", self.bridge)
        self._state_dir_arg = state_dir
        self.url = ""
        self.ca_pem = b""
        self.subnet: ipaddress.IPv4Network | None = None
        self.gateway_ip = ""
        self._lock = threading.RLock()
        self._namespaces: dict[str, dict[str, Any]] = {}
        for ns in (*DEFAULT_NAMESPACES, *namespaces):
            self._namespaces[ns] = self._namespace_object(ns)
        self._pods: dict[tuple[str, str], PodRecord] = {}
        self._policies: dict[tuple[str, str], dict[str, Any]] = {}
        self._free_ips: list[str] = []
        self._workers: list[threading.Thread] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runner: PodRunner | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def ca_data(self) -> str:
        """The CA as EKS_CA_DATA carries it (base64 of the PEM); "" without TLS."""
        return base64.b64encode(self.ca_pem).decode() if self.ca_pem else ""

    def __enter__(self) -> KubeStandin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(
            prefix=f"kube-standin-{self.instance}-", dir=self._state_dir_arg
        )
        try:
            sweep_stale(self.engine, self.firewall._run)
            self._create_network()
            assert self.subnet is not None
            self._free_ips = [str(ip) for ip in list(self.subnet.hosts())[1:]]
            self._runner = PodRunner(
                self.engine,
                network=self.network_name,
                instance=self.instance,
                host_ip=self.gateway_ip,
                volume_root=Path(self._tmp.name) / "pods",
                pids_limit=self.pod_pids_limit,
            )
            if self.enforce:
                self.firewall.install()
            self._serve()
        except BaseException:
            self.stop()
            raise

    def _create_network(self) -> None:
        candidates = (
            [ipaddress.ip_network(self.requested_subnet)]
            if self.requested_subnet
            else list(POD_NETWORK_RANGE.subnets(new_prefix=24))
        )
        for subnet in candidates:
            assert isinstance(subnet, ipaddress.IPv4Network), "the pod network is IPv4"
            gateway = str(next(subnet.hosts()))
            body = {
                "Name": self.network_name,
                "Driver": "bridge",
                "CheckDuplicate": True,
                "IPAM": {"Config": [{"Subnet": str(subnet), "Gateway": gateway}]},
                "Options": {"com.docker.network.bridge.name": self.bridge},
                "Labels": {STANDIN_LABEL: self.instance, PID_LABEL: str(os.getpid())},
            }
            try:
                self.engine.call("POST", "/networks/create", body=body, ok=(201,))
            except DockerApiError as exc:
                if "overlap" in exc.message.lower() and not self.requested_subnet:
                    continue  # another network (another stand-in) has it: try the next /24
                raise
            self.subnet = subnet
            self.gateway_ip = gateway
            return
        raise RuntimeError(f"no free /24 in {POD_NETWORK_RANGE} for the pod network")

    def _serve(self) -> None:
        httpd = ThreadingHTTPServer(self.listen, _handler(self))
        httpd.daemon_threads = True
        scheme = "http"
        if self.tls:
            assert self._tmp is not None
            cert, key = self_signed_certificate(Path(self._tmp.name))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
            self.ca_pem = cert.read_bytes()
            scheme = "https"
        self._httpd = httpd
        self.url = f"{scheme}://{self.listen[0]}:{httpd.server_address[1]}"
        threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="kube-standin", daemon=True
        ).start()

    def stop(self) -> None:
        """Stop serving, remove every Pod's container, the chains and the network. Idempotent."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for worker in list(self._workers):
            worker.join(timeout=60)
        with self._lock:
            records = list(self._pods.values())
            self._pods.clear()
        for record in records:
            if record.container_id and self._runner is not None:
                with contextlib.suppress(Exception):
                    self._runner.stop_and_remove(record.container_id, 0)
        with contextlib.suppress(Exception):
            self.firewall.uninstall()
        with contextlib.suppress(DockerApiError, Exception):
            self.engine.call("DELETE", f"/networks/{self.network_name}", ok=(204, 404))
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- for tests and tools ----------------------------------------------------------------------
    def container_of(self, namespace: str, name: str) -> str | None:
        """The Docker container id playing a Pod (None before it is created or once it is gone)."""
        with self._lock:
            record = self._pods.get((namespace, name))
            return record.container_id if record else None

    def wait_gone(self, namespace: str, name: str, timeout: float = 30) -> bool:
        """True once a deleted Pod has left the API (its container removed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if (namespace, name) not in self._pods:
                    return True
            time.sleep(0.05)
        return False

    # -- namespaces -------------------------------------------------------------------------------
    @staticmethod
    def _namespace_object(name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        return {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
                "labels": {**(labels or {}), "kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    def read_namespace(self, name: str) -> dict[str, Any]:
        with self._lock:
            if name not in self._namespaces:
                raise KubeError(404, "NotFound", f'namespaces "{name}" not found')
            return self._namespaces[name]

    def create_namespace(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = str((body.get("metadata") or {}).get("name", ""))
        if not _DNS1123_LABEL.match(name):
            raise KubeError(422, "Invalid", f"namespace name {name!r} is invalid")
        with self._lock:
            if name in self._namespaces:
                raise KubeError(409, "AlreadyExists", f'namespaces "{name}" already exists')
            obj = self._namespace_object(name, (body.get("metadata") or {}).get("labels"))
            self._namespaces[name] = obj
            return obj

    def list_namespaces(self) -> dict[str, Any]:
        with self._lock:
            items = [self._namespaces[n] for n in sorted(self._namespaces)]
        return {"kind": "NamespaceList", "apiVersion": "v1", "metadata": {}, "items": items}

    # -- pods -------------------------------------------------------------------------------------
    def create_pod(self, namespace: str, body: Any) -> dict[str, Any]:
        self.read_namespace(namespace)
        if not isinstance(body, dict) or body.get("kind", "Pod") != "Pod":
            raise KubeError(400, "BadRequest", "the body must be a Pod")
        meta = body.get("metadata") or {}
        name = str(meta.get("name", ""))
        if not _DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
            raise KubeError(422, "Invalid", f'Pod "{name}" is invalid: metadata.name')
        spec = body.get("spec") or {}
        _refuse_host_access(spec)
        obj = json.loads(json.dumps(body))
        obj.update(kind="Pod", apiVersion="v1")
        obj["metadata"].update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            creationTimestamp=_now(),
            resourceVersion=str(time.monotonic_ns()),
        )
        obj["spec"]["nodeName"] = NODE_NAME
        with self._lock:
            if (namespace, name) in self._pods:
                raise KubeError(409, "AlreadyExists", f'pods "{name}" already exists')
            if not self._free_ips:
                raise KubeError(403, "Forbidden", "the stand-in's pod network is full")
            assert self._tmp is not None
            record = PodRecord(obj=obj, ip=self._free_ips.pop(0))
            record.volume_dir = Path(self._tmp.name) / "pods" / obj["metadata"]["uid"]
            obj["status"] = {"phase": "Pending", "hostIP": self.gateway_ip, "qosClass": _qos(spec)}
            self._pods[(namespace, name)] = record
            try:
                # The fence exists before the container: the pod never runs unfenced.
                self._apply_policies()
            except Exception:
                self._pods.pop((namespace, name), None)
                self._free_ips.append(record.ip)
                raise
            _pod_status(record, None, None)
            shown = json.loads(json.dumps(obj))
        self._spawn(self._run_pod, record)
        return shown

    def _spawn(self, target: Callable[[PodRecord], None], record: PodRecord) -> None:
        worker = threading.Thread(target=target, args=(record,), name="kube-standin-pod", daemon=True)
        self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()

    def _run_pod(self, record: PodRecord) -> None:
        assert self._runner is not None
        try:
            self._runner.create_and_start(record)
        except ContainerConfigError as exc:
            record.waiting = (exc.reason, exc.message)
        except Exception as exc:  # the engine failed: the pod stays Pending with the reason
            log.warning("kube-standin: pod %s not started: %s", record.obj["metadata"]["name"], exc)
            record.waiting = ("RunContainerError", str(exc)[:300])
        finally:
            record.settled.set()
        if record.waiting is not None:
            with self._lock:
                _pod_status(record, None, record.waiting)

    def _refreshed(self, record: PodRecord) -> dict[str, Any]:
        if record.container_id and self._runner is not None and not record.deleting:
            info = self._runner.inspect(record.container_id)
            with self._lock:
                if info is None:  # removed behind the stand-in's back: what a kubelet reports then
                    _pod_status(record, None, None)
                    record.obj["status"]["phase"] = "Failed"
                    record.obj["status"]["containerStatuses"][0]["state"] = {
                        "terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}
                    }
                else:
                    _pod_status(record, info, None)
        return json.loads(json.dumps(record.obj))

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        self.read_namespace(namespace)
        with self._lock:
            record = self._pods.get((namespace, name))
        if record is None:
            raise KubeError(404, "NotFound", f'pods "{name}" not found')
        return self._refreshed(record)

    def list_pods(self, namespace: str, query: Mapping[str, list[str]]) -> dict[str, Any]:
        self.read_namespace(namespace)
        selector = query.get("labelSelector", [""])[0]
        with self._lock:
            records = [
                r
                for (ns, _), r in sorted(self._pods.items())
                if ns == namespace and label_query_matches(selector, r.obj["metadata"].get("labels") or {})
            ]
        return self._page("PodList", [self._refreshed(r) for r in records], query)

    @staticmethod
    def _page(kind: str, items: list[dict[str, Any]], query: Mapping[str, list[str]]) -> dict[str, Any]:
        start = int(base64.urlsafe_b64decode(query["continue"][0]).decode()) if query.get("continue") else 0
        limit = int(query.get("limit", ["0"])[0] or 0)
        end = start + limit if limit > 0 else len(items)
        meta: dict[str, Any] = {"resourceVersion": str(time.monotonic_ns())}
        if end < len(items):
            meta["continue"] = base64.urlsafe_b64encode(str(end).encode()).decode()
        return {"kind": kind, "apiVersion": "v1", "metadata": meta, "items": items[start:end]}

    def delete_pod(self, namespace: str, name: str, grace_s: int | None) -> dict[str, Any]:
        self.read_namespace(namespace)
        with self._lock:
            record = self._pods.get((namespace, name))
            if record is None:
                raise KubeError(404, "NotFound", f'pods "{name}" not found')
            if grace_s is None:
                grace_s = int(record.obj["spec"].get("terminationGracePeriodSeconds", 30))
            if not record.deleting:
                record.deleting = True
                record.obj["metadata"]["deletionTimestamp"] = _now()
                record.obj["metadata"]["deletionGracePeriodSeconds"] = grace_s
                self._spawn(lambda r: self._finish_delete(r, int(grace_s or 0)), record)
            return json.loads(json.dumps(record.obj))

    def _finish_delete(self, record: PodRecord, grace_s: int) -> None:
        assert self._runner is not None
        # A create still in flight finishes first, so its container cannot appear after the removal.
        record.settled.wait(timeout=120)
        try:
            if record.container_id:
                self._runner.stop_and_remove(record.container_id, grace_s)
        except Exception as exc:
            log.warning("kube-standin: container of %s not removed: %s", record.obj["metadata"]["name"], exc)
            return  # the pod stays, marked deleting, as with a kubelet that cannot kill it
        meta = record.obj["metadata"]
        with self._lock:
            self._pods.pop((meta["namespace"], meta["name"]), None)
            self._free_ips.append(record.ip)
            # Only now the fence goes: the container is gone.
            with contextlib.suppress(Exception):
                self._apply_policies()
        if record.volume_dir is not None:
            shutil.rmtree(record.volume_dir, ignore_errors=True)

    def pod_log(self, namespace: str, name: str, query: Mapping[str, list[str]]) -> bytes:
        self.read_namespace(namespace)
        with self._lock:
            record = self._pods.get((namespace, name))
        if record is None:
            raise KubeError(404, "NotFound", f'pods "{name}" not found')
        wanted = query.get("container", [""])[0]
        own = record.obj["spec"]["containers"][0]["name"]
        if wanted and wanted != own:
            raise KubeError(400, "BadRequest", f"container {wanted} is not valid for pod {name}")
        if not record.container_id or self._runner is None:
            raise KubeError(400, "BadRequest", f'container "{own}" in pod "{name}" is waiting to start')
        tail = int(query["tailLines"][0]) if "tailLines" in query else None
        since = int(query["sinceSeconds"][0]) if "sinceSeconds" in query else None
        try:
            return self._runner.logs(record.container_id, tail, since)
        except DockerApiError as exc:
            raise KubeError(400, "BadRequest", exc.message) from None

    # -- network policies -------------------------------------------------------------------------
    def create_policy(self, namespace: str, body: Any) -> dict[str, Any]:
        self.read_namespace(namespace)
        name = str(((body or {}).get("metadata") or {}).get("name", ""))
        if not _DNS1123_SUBDOMAIN.match(name):
            raise KubeError(422, "Invalid", f'NetworkPolicy "{name}" is invalid: metadata.name')
        obj = json.loads(json.dumps(body))
        obj.update(kind="NetworkPolicy", apiVersion="networking.k8s.io/v1")
        obj["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=_now())
        try:
            spec = obj.get("spec") or {}
            for rule in [*(spec.get("egress") or []), *(spec.get("ingress") or [])]:
                for peer in [*(rule.get("to") or []), *(rule.get("from") or [])]:
                    if "ipBlock" in peer:  # malformed CIDRs are refused here, not at enforcement
                        _ipv4_without(peer["ipBlock"]["cidr"], peer["ipBlock"].get("except") or [])
        except (ValueError, KeyError, TypeError) as exc:
            raise KubeError(422, "Invalid", f"NetworkPolicy is invalid: {exc}") from None
        with self._lock:
            if (namespace, name) in self._policies:
                raise KubeError(
                    409, "AlreadyExists", f'networkpolicies.networking.k8s.io "{name}" already exists'
                )
            self._policies[(namespace, name)] = obj
            try:
                self._apply_policies()
            except Exception:
                self._policies.pop((namespace, name), None)
                raise
            return obj

    def get_policy(self, namespace: str, name: str) -> dict[str, Any]:
        self.read_namespace(namespace)
        with self._lock:
            if (namespace, name) not in self._policies:
                raise KubeError(404, "NotFound", f'networkpolicies.networking.k8s.io "{name}" not found')
            return self._policies[(namespace, name)]

    def list_policies(self, namespace: str, query: Mapping[str, list[str]]) -> dict[str, Any]:
        self.read_namespace(namespace)
        selector = query.get("labelSelector", [""])[0]
        with self._lock:
            items = [
                p
                for (ns, _), p in sorted(self._policies.items())
                if ns == namespace and label_query_matches(selector, p["metadata"].get("labels") or {})
            ]
        return self._page("NetworkPolicyList", items, query)

    def delete_policy(self, namespace: str, name: str) -> dict[str, Any]:
        self.read_namespace(namespace)
        with self._lock:
            if (namespace, name) not in self._policies:
                raise KubeError(404, "NotFound", f'networkpolicies.networking.k8s.io "{name}" not found')
            self._policies.pop((namespace, name))
            self._apply_policies()
        return status_body(200, "", "") | {"details": {"name": name, "kind": "networkpolicies"}}

    def _apply_policies(self) -> None:
        """Recompute every Pod's fence (called under the lock after any change)."""
        if not self.enforce:
            return
        pods = [
            PodEndpoint(
                namespace=r.obj["metadata"]["namespace"],
                name=r.obj["metadata"]["name"],
                ip=r.ip,
                labels=dict(r.obj["metadata"].get("labels") or {}),
                named_ports={
                    p["name"]: (int(p["containerPort"]), str(p.get("protocol") or "TCP"))
                    for p in r.obj["spec"]["containers"][0].get("ports") or []
                    if p.get("name")
                },
            )
            for r in self._pods.values()
        ]
        labels = {n: ns["metadata"]["labels"] for n, ns in self._namespaces.items()}
        self.firewall.apply(compile_fences(pods, list(self._policies.values()), labels))


def _qos(spec: Mapping[str, Any]) -> str:
    resources = (spec.get("containers") or [{}])[0].get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    if limits.get("cpu") and limits.get("memory") and requests in ({}, limits):
        return "Guaranteed"
    return "Burstable" if limits or requests else "BestEffort"


def sweep_stale(engine: EngineClient, run: Callable[..., Any] = subprocess.run) -> list[str]:
    """Remove what stand-ins whose process is gone left behind (a killed test run): their containers,
    chains and networks. Returns the instance ids swept."""
    networks = engine.call(
        "GET", "/networks", params={"filters": json.dumps({"label": [STANDIN_LABEL]})}
    ).json()
    swept = []
    for network in networks:
        labels = network.get("Labels") or {}
        pid = int(labels.get(PID_LABEL, "0") or 0)
        if pid and _alive(pid):
            continue
        instance = labels.get(STANDIN_LABEL, "")
        containers = engine.call(
            "GET",
            "/containers/json",
            params={"all": "1", "filters": json.dumps({"label": [f"{STANDIN_LABEL}={instance}"]})},
        ).json()
        for container in containers:
            engine.call("DELETE", f"/containers/{container['Id']}", params={"force": "true"}, ok=(204, 404))
        firewall = PolicyFirewall(f"KSB{instance}", f"ksb{instance}", run)
        firewall._installed = True
        with contextlib.suppress(Exception):
            firewall.uninstall()
        engine.call("DELETE", f"/networks/{network['Id']}", ok=(204, 404))
        swept.append(instance)
    return swept




def _handler(standin: KubeStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, payload: Any, content_type: str = "application/json") -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError:
                self._send(400, status_body(400, "BadRequest", "the body is not JSON"))
                return
            if parts.path in ("/healthz", "/readyz", "/livez"):
                self._send(200, b"ok", "text/plain")
                return
            if not is_eks_token(self.headers.get("Authorization", "")):
                self._send(401, status_body(401, "Unauthorized", "Unauthorized"))
                return
            try:
                code, payload, content_type = self._route(parts.path, parse_qs(parts.query), body)
            except KubeError as exc:
                code, payload, content_type = (
                    exc.code,
                    status_body(exc.code, exc.reason, exc.message),
                    "application/json",
                )
            except Exception as exc:  # never a hung client: the error goes back as a 500 Status
                log.exception("kube-standin: %s %s failed", self.command, parts.path)
                code, payload = 500, status_body(500, "InternalError", f"{type(exc).__name__}: {exc}")
                content_type = "application/json"
            self._send(code, payload, content_type)

        def _route(self, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any, str]:
            method = self.command
            json_type = "application/json"
            if path == "/version" and method == "GET":
                return (
                    200,
                    {"major": "1", "minor": "31", "gitVersion": "v1.31.0-sandboxcp-standin"},
                    json_type,
                )
            if m := _NAMESPACE.match(path):
                name = unquote(m.group(1) or "")
                if name and method == "GET":
                    return 200, standin.read_namespace(name), json_type
                if not name and method == "GET":
                    return 200, standin.list_namespaces(), json_type
                if not name and method == "POST":
                    return 201, standin.create_namespace(body or {}), json_type
                raise KubeError(405, "MethodNotAllowed", f"{method} {path}")
            m = _NAMESPACED.match(path)
            if not m:
                raise KubeError(404, "NotFound", f"the server could not find the requested resource ({path})")
            ns, kind, name, sub = (unquote(g) if g else g for g in m.groups())
            is_pods = kind == "pods"
            if is_pods != path.startswith("/api/v1/"):
                raise KubeError(404, "NotFound", f"the server could not find the requested resource ({path})")
            if sub == "log" and is_pods and name and method == "GET":
                return 200, standin.pod_log(ns, name, query), "text/plain"
            if sub:
                raise KubeError(405, "MethodNotAllowed", f"{method} {path}")
            if name is None and method == "POST":
                return (
                    201,
                    standin.create_pod(ns, body) if is_pods else standin.create_policy(ns, body),
                    json_type,
                )
            if name is None and method == "GET":
                return (
                    200,
                    standin.list_pods(ns, query) if is_pods else standin.list_policies(ns, query),
                    json_type,
                )
            if name and method == "GET":
                return 200, standin.get_pod(ns, name) if is_pods else standin.get_policy(ns, name), json_type
            if name and method == "DELETE":
                if not is_pods:
                    return 200, standin.delete_policy(ns, name), json_type
                grace = query.get("gracePeriodSeconds", [None])[0]
                if grace is None and isinstance(body, dict) and body.get("gracePeriodSeconds") is not None:
                    grace = str(body["gracePeriodSeconds"])
                return 200, standin.delete_pod(ns, name, int(grace) if grace is not None else None), json_type
            raise KubeError(405, "MethodNotAllowed", f"{method} {path}")

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    """`python3 -m sandboxcp.local.kube_standin [--namespace NS] [--port N] [--subnet CIDR]`: serve until
    interrupted, after printing the settings an `eks` control plane needs to use it."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python3 -m sandboxcp.local.kube_standin", description=main.__doc__)
    parser.add_argument("--namespace", default="sandboxes", help="the sandbox namespace (EKS_NAMESPACE)")
    parser.add_argument("--port", type=int, default=0, help="API server port on 127.0.0.1 (0: any free)")
    parser.add_argument("--subnet", default=None, help="pod network /24 (default: a free one of 10.244/16)")
    parser.add_argument("--no-tls", action="store_true", help="plain HTTP (the eks runtime expects TLS)")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with KubeStandin(
        namespaces=(args.namespace,), listen_port=args.port, subnet=args.subnet, tls=not args.no_tls
    ) as kube:
        print(f"EKS_ENDPOINT={kube.url}")
        print(f"EKS_CA_DATA={kube.ca_data}")
        print(f"EKS_NAMESPACE={args.namespace}")
        print("EKS_CLUSTER_NAME=kube-standin")
        print(
            f"# pod network {kube.subnet}; the host is {kube.gateway_ip} for the pods: serve the internal API"
        )
        print(
            f"# and S3 there (CALLBACK_BASE_URL=http://{kube.gateway_ip}:PORT, AWS_ENDPOINT_URL=http://{kube.gateway_ip}:PORT)"
        )
        sys.stdout.flush()
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
