"""The eks runtime against a fake Kubernetes API server (tests/integration/fake_kube.py) over HTTPS with the
cluster CA from EKS_CA_DATA, authenticated with IAM bearer tokens signed from fake AWS credentials."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from sandboxcp.adapters.runtimes.eks import (
    DEFAULT_DENY_POLICY,
    EksRuntime,
    network_policy_manifest,
    pod_manifest,
    pod_name,
)
from sandboxcp.adapters.runtimes.eks_auth import EksTokenSource, url_from_token
from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.ports import SandboxSpec
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.local.kube_standin import self_signed_certificate
from tests.integration.fake_kube import FakeKube, FakeKubeServer

CLUSTER = "sandbox-cluster"
REGION = "eu-west-1"
NS = "sandboxes"
SESSION = "sess_abcdefghijklmnop"
POD = "sandbox-sess-abcdefghijklmnop"
TOKEN = "cb_sess_abcdefghijklmnop.secret-token-value"
USER_SECRET = "sk-user-secret-value"  # a session env var: bound over HTTP, never in the Pod spec
CALLBACK = "https://internal.example.test/prod"
ACCESS_KEY = "AKIDFAKEEXAMPLE"
SECRET_KEY = "fake-secret-key"
METADATA_IP = ipaddress.ip_address("169.254.169.254")


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


@pytest.fixture(scope="module")
def kube() -> Iterator[FakeKube]:
    with FakeKubeServer(tls=True) as state:
        yield state


@pytest.fixture
def runtime(kube: FakeKube) -> Iterator[EksRuntime]:
    with kube.lock:
        kube.requests.clear()
        kube.pods.clear()
        kube.policies.clear()
        kube.logs.clear()
        kube.run_pods = True
    yield EksRuntime(
        cluster_name=CLUSTER,
        endpoint=kube.url,
        ca_data=kube.ca_data,
        namespace=NS,
        region=REGION,
        callback_base_url=CALLBACK,
    )


def _spec(**overrides: Any) -> SandboxSpec:
    base: dict[str, Any] = {
        "session_id": SESSION,
        "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sandboxcp/python-basic:latest",
        "resources": ResourceLimit(cpu="0.5", memory="768Mi", disk="2Gi"),
        "network_enabled": False,
        "env": {"SANDBOXCP_SESSION_ID": SESSION, "POD_IP": "spoofed", "OPENAI_API_KEY": USER_SECRET},
        "callback_token": TOKEN,
    }
    base.update(overrides)
    return SandboxSpec(**base)


# -- start ---------------------------------------------------------------------------------------
def test_start_creates_a_hardened_pod(runtime: EksRuntime, kube: FakeKube) -> None:
    handle = runtime.start(_spec())
    assert handle.container_id == POD
    assert handle.node == f"eks:{CLUSTER}"
    # The address is the Pod's, as the API reports it once the Pod runs.
    assert handle.executor_url == f"http://{kube.pods[(NS, POD)]['status']['podIP']}:8080"

    (create,) = kube.made("POST", "pods")
    assert create.path == f"/api/v1/namespaces/{NS}/pods"
    pod = create.body
    assert pod["metadata"]["name"] == POD
    assert pod["metadata"]["labels"]["sandboxcp.io/session"] == SESSION
    assert pod["metadata"]["labels"]["sandboxcp.io/managed"] == "true"
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["restartPolicy"] == "Never"
    assert "serviceAccountName" not in spec
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))

    (container,) = spec["containers"]
    assert container["name"] == "executor"
    assert container["image"] == _spec().image
    sc = container["securityContext"]
    assert sc["runAsUser"] == 1000
    assert sc["runAsGroup"] == 1000
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc.get("privileged") is False

    resources = container["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["limits"] == {"cpu": "0.5", "memory": "768Mi", "ephemeral-storage": "2Gi"}

    env = {e["name"]: e for e in container["env"]}
    assert "SANDBOXCP_CALLBACK_TOKEN" not in env
    assert "OPENAI_API_KEY" not in env  # the session's env vars go in the bind body
    assert env["SANDBOXCP_SESSION_ID"]["value"] == SESSION
    assert env["SANDBOXCP_CALLBACK_URL"]["value"] == CALLBACK
    assert env["SANDBOXCP_LISTEN"]["value"] == "tcp:0.0.0.0:8080"
    assert env["SANDBOXCP_WORKSPACE"]["value"] == "/workspace"
    assert env["SANDBOXCP_CONTAINER_ID"]["value"] == POD
    assert env["POD_IP"] == {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    assert [e["name"] for e in container["env"]].count("POD_IP") == 1

    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts["/workspace"]]["emptyDir"] == {"sizeLimit": "2Gi"}
    assert volumes[mounts["/tmp"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    # No secret anywhere in what the API stores (readable by anyone allowed to get pods).
    assert TOKEN not in json.dumps(pod) and USER_SECRET not in json.dumps(pod)
    assert pod["metadata"]["labels"]["sandboxcp.io/network"] == "none"


def test_every_request_carries_an_iam_bearer_token(runtime: EksRuntime, kube: FakeKube) -> None:
    runtime.start(_spec())
    assert kube.requests
    for request in kube.requests:
        assert request.headers["authorization"].startswith("Bearer k8s-aws-v1.")


def test_the_fence_is_created_before_the_pod(runtime: EksRuntime, kube: FakeKube) -> None:
    runtime.start(_spec())
    kinds = [(r.method, r.body["metadata"]["name"]) for r in kube.requests if r.method == "POST"]
    assert kinds == [("POST", DEFAULT_DENY_POLICY), ("POST", POD), ("POST", POD)]
    assert "/networkpolicies" in kube.requests[0].path and "/networkpolicies" in kube.requests[1].path
    assert kube.requests[2].path.endswith("/pods")
    deny = kube.policies[(NS, DEFAULT_DENY_POLICY)]["spec"]
    assert deny["podSelector"] == {"matchLabels": {"sandboxcp.io/managed": "true"}}
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny


# -- network policy ------------------------------------------------------------------------------
def _egress_allows(policy: dict[str, Any], ip: str, port: int, protocol: str = "TCP") -> bool:
    """Whether any egress rule's ipBlock lets `ip:port` out (selector peers are in-cluster, not checked)."""
    address = ipaddress.ip_address(ip)
    for rule in policy["spec"].get("egress", []):
        ports = rule.get("ports")
        if ports and not any(p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports):
            continue
        for peer in rule.get("to", [{"ipBlock": {"cidr": "0.0.0.0/0"}}]):
            block = peer.get("ipBlock")
            if block is None:
                continue
            inside = address in ipaddress.ip_network(block["cidr"])
            excepted = any(address in ipaddress.ip_network(c) for c in block.get("except", []))
            if inside and not excepted:
                return True
    return False


def test_network_policy_without_network(runtime: EksRuntime, kube: FakeKube) -> None:
    runtime.start(_spec(network_enabled=False))
    (create,) = [r for r in kube.made("POST", "networkpolicies") if r.body["metadata"]["name"] == POD]
    policy = create.body
    assert create.path == f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies"
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"]["sandboxcp.io/session"] == SESSION
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # Ingress: the executor port only.
    assert [rule["ports"] for rule in spec["ingress"]] == [[{"protocol": "TCP", "port": 8080}]]
    # Egress: deny by default; no internet, no metadata; DNS to kube-system and the callback port privately.
    for rule in spec["egress"]:
        assert rule.get("to"), "an egress rule without peers would allow every destination"
    assert not _egress_allows(policy, "1.1.1.1", 443)
    assert not _egress_allows(policy, "8.8.8.8", 53, "UDP")
    assert not _egress_allows(policy, str(METADATA_IP), 80)
    assert _egress_allows(policy, "10.1.2.3", 443)  # the internal API's private endpoint
    assert not _egress_allows(policy, "10.1.2.3", 8080)  # no other sandbox's executor
    dns = spec["egress"][0]
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}


def test_network_policy_with_network_excepts_metadata_and_private_ranges() -> None:
    policy = network_policy_manifest(_spec(network_enabled=True), namespace=NS, callback_base_url=CALLBACK)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert _egress_allows(policy, "1.1.1.1", 443)
    assert _egress_allows(policy, "93.184.216.34", 80)
    for ip in ("169.254.169.254", "169.254.170.23", "10.0.0.1", "172.16.5.5", "192.168.1.1"):
        assert not _egress_allows(policy, ip, 80), ip
    # Every ipBlock that spans the metadata address excepts it.
    for rule in policy["spec"]["egress"]:
        for peer in rule["to"]:
            block = peer.get("ipBlock")
            if block and METADATA_IP in ipaddress.ip_network(block["cidr"]):
                assert any(METADATA_IP in ipaddress.ip_network(c) for c in block["except"])


def test_callback_host_given_as_an_ip_is_the_only_callback_destination() -> None:
    policy = network_policy_manifest(_spec(), namespace=NS, callback_base_url="http://10.9.8.7:8000")
    assert _egress_allows(policy, "10.9.8.7", 8000)
    assert not _egress_allows(policy, "10.9.8.6", 8000)
    assert not _egress_allows(policy, "10.9.8.7", 443)


# -- state, logs, destroy ------------------------------------------------------------------------
def test_state_follows_the_pod_phase(runtime: EksRuntime, kube: FakeKube) -> None:
    runtime.start(_spec())
    assert runtime.state(POD) == "running"
    for phase, expected in [
        ("Pending", "creating"),
        ("Running", "running"),
        ("Succeeded", "exited"),
        ("Failed", "exited"),
    ]:
        kube.set_phase(NS, POD, phase)
        assert runtime.state(POD) == expected
    assert runtime.state("sandbox-sess-nosuchsession000") == "missing"


def test_logs_tail_and_since(runtime: EksRuntime, kube: FakeKube) -> None:
    runtime.start(_spec())
    kube.logs[(NS, POD)] = [f"line {i}" for i in range(10)] + ['{"event": "ready", "port": 8080}']
    assert runtime.logs(POD, tail=3) == ["line 8", "line 9", '{"event": "ready", "port": 8080}']
    (log_request,) = kube.made("GET", "log")
    assert log_request.path == f"/api/v1/namespaces/{NS}/pods/{POD}/log"
    assert log_request.query["tailLines"] == ["3"]
    assert log_request.query["container"] == ["executor"]
    assert "sinceSeconds" not in log_request.query

    assert len(runtime.logs(POD, since=datetime.now(UTC) - timedelta(seconds=90))) == 11
    since = int(kube.made("GET", "log")[-1].query["sinceSeconds"][0])
    assert 90 <= since <= 100
    assert runtime.logs("sandbox-sess-nosuchsession000") == []


def test_destroy_deletes_pod_and_policy(runtime: EksRuntime, kube: FakeKube) -> None:
    runtime.start(_spec())
    runtime.destroy(POD)
    (delete_pod,) = kube.made("DELETE", "pods")
    assert delete_pod.path == f"/api/v1/namespaces/{NS}/pods/{POD}"
    assert delete_pod.query["gracePeriodSeconds"] == ["5"]
    (delete_policy,) = kube.made("DELETE", "networkpolicies")
    assert delete_policy.path == f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/{POD}"
    assert (NS, POD) not in kube.pods and (NS, POD) not in kube.policies
    assert (NS, DEFAULT_DENY_POLICY) in kube.policies  # the namespace's fence stays
    assert runtime.state(POD) == "missing"
    runtime.destroy(POD)  # 404s are success


def test_an_existing_pod_is_sandbox_unavailable(runtime: EksRuntime, kube: FakeKube) -> None:
    runtime.start(_spec())
    with pytest.raises(SandboxUnavailable, match="already exists"):
        runtime.start(_spec())
    assert (NS, POD) in kube.policies  # the running sandbox keeps its fence


def test_unreachable_api_is_sandbox_unavailable(kube: FakeKube) -> None:
    runtime = EksRuntime(
        cluster_name=CLUSTER,
        endpoint="https://127.0.0.1:1",
        ca_data=kube.ca_data,
        namespace=NS,
        region=REGION,
    )
    with pytest.raises(SandboxUnavailable, match="unreachable"):
        runtime.start(_spec())


def test_the_server_rejects_requests_without_a_bearer_token(kube: FakeKube) -> None:
    import ssl

    context = ssl.create_default_context(cadata=kube.ca_pem.decode())
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{kube.url}/api/v1/namespaces/{NS}/pods/x", context=context, timeout=5)
    assert err.value.code == 401


def test_a_wrong_ca_is_refused(kube: FakeKube, tmp_path: Path) -> None:
    other_cert, _ = self_signed_certificate(tmp_path, "other")
    other = other_cert.read_bytes()
    import base64

    runtime = EksRuntime(
        cluster_name=CLUSTER,
        endpoint=kube.url,
        ca_data=base64.b64encode(other).decode(),
        namespace=NS,
        region=REGION,
    )
    before = len(kube.requests)
    with pytest.raises(SandboxUnavailable, match="unreachable"):
        runtime.start(_spec())
    assert len(kube.requests) == before  # no TLS session, so no request ever reached the server


# -- the IAM token -------------------------------------------------------------------------------
def _sigv4_signature(url: str, cluster_name: str) -> str:
    """Recompute the presigned URL's SigV4 signature, with `x-k8s-aws-id: cluster_name` as signed header."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.pop("X-Amz-Signature")
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    signed_headers = query["X-Amz-SignedHeaders"]
    headers = {"host": parts.netloc, "x-k8s-aws-id": cluster_name}
    canonical_headers = "".join(f"{h}:{headers[h]}\n" for h in signed_headers.split(";"))
    canonical_request = "\n".join(
        [
            "GET",
            parts.path or "/",
            canonical_query,
            canonical_headers,
            signed_headers,
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    _, date, region, service, _ = query["X-Amz-Credential"].split("/")
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            query["X-Amz-Date"],
            f"{date}/{region}/{service}/aws4_request",
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = ("AWS4" + SECRET_KEY).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def test_bearer_token_is_a_presigned_get_caller_identity_url(runtime: EksRuntime, kube: FakeKube) -> None:
    runtime.start(_spec())
    bearer = kube.requests[0].headers["authorization"].removeprefix("Bearer ")
    assert bearer.startswith("k8s-aws-v1.")
    assert "=" not in bearer  # base64url without padding
    url = url_from_token(bearer)
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.netloc == f"sts.{REGION}.amazonaws.com"
    query = dict(parse_qsl(parts.query))
    assert query["Action"] == "GetCallerIdentity"
    assert query["Version"] == "2011-06-15"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "60"
    assert query["X-Amz-Credential"].startswith(f"{ACCESS_KEY}/")
    assert query["X-Amz-Credential"].endswith(f"/{REGION}/sts/aws4_request")
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"].split(";")
    assert SECRET_KEY not in url
    # The signature covers the cluster name: it verifies with ours and not with another's.
    assert query["X-Amz-Signature"] == _sigv4_signature(url, CLUSTER)
    assert query["X-Amz-Signature"] != _sigv4_signature(url, "another-cluster")


def test_token_is_cached_and_re_signed_after_ten_minutes(kube: FakeKube) -> None:
    now = [1000.0]
    signed: list[int] = []

    def credentials() -> Any:
        import botocore.credentials

        signed.append(1)
        return botocore.credentials.Credentials(f"AKIDROTATED{len(signed)}", SECRET_KEY)

    tokens = EksTokenSource(CLUSTER, REGION, credentials=credentials, clock=lambda: now[0])
    first = tokens.token()
    now[0] += 599
    assert tokens.token() == first
    now[0] += 2
    second = tokens.token()
    assert second != first and len(signed) == 2

    # The runtime asks its token source before each request.
    runtime = EksRuntime(
        cluster_name=CLUSTER,
        endpoint=kube.url,
        ca_data=kube.ca_data,
        namespace=NS,
        region=REGION,
        token_source=tokens,
    )
    assert runtime.state("sandbox-sess-nosuchsession000") == "missing"
    now[0] += 601
    assert runtime.state("sandbox-sess-nosuchsession000") == "missing"
    used = [r.headers["authorization"] for r in kube.requests[-2:]]
    assert used[0] != used[1]
    assert "AKIDROTATED2" in url_from_token(used[0].removeprefix("Bearer "))
    assert "AKIDROTATED3" in url_from_token(used[1].removeprefix("Bearer "))


# -- construction --------------------------------------------------------------------------------
def test_pod_names_and_pure_manifests() -> None:
    assert pod_name("sess_abc123") == "sandbox-sess-abc123"
    with pytest.raises(SandboxUnavailable):
        pod_name("sess_" + "x" * 80)
    manifest = pod_manifest(_spec(), namespace=NS, callback_base_url=CALLBACK)
    assert manifest["metadata"]["namespace"] == NS


def test_from_settings_signs_nothing_and_imports_no_kubernetes() -> None:
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys\n"
        "from sandboxcp.settings import Settings\n"
        "from sandboxcp.adapters.runtimes import build_runtime\n"
        "s = Settings.model_validate({'SESSIONS_TABLE': 's', 'EXECUTIONS_TABLE': 'e', 'TEMPLATES_TABLE': 't',"
        " 'API_KEYS_TABLE': 'k', 'IDEMPOTENCY_TABLE': 'i', 'WORKSPACE_BUCKET': 'b', 'SANDBOX_RUNTIME': 'eks',"
        " 'EKS_CLUSTER_NAME': 'c', 'EKS_ENDPOINT': 'https://example.invalid', 'EKS_NAMESPACE': 'ns'})\n"
        "r = build_runtime(s)\n"
        "assert r.name == 'eks' and r.namespace == 'ns' and r.tokens._token is None\n"
        "heavy = [m for m in ('kubernetes', 'boto3') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import sandboxcp.adapters.runtimes.ecs\n"
        "assert 'kubernetes' not in sys.modules\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root / "layers" / "python"), env.get("PYTHONPATH", "")])
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_list_managed_finds_the_sandbox_pods(runtime: EksRuntime, kube: FakeKube) -> None:
    runtime.start(_spec())
    runtime.start(_spec(session_id="sess_qrstuvwxyz012345"))
    kube.set_phase(NS, "sandbox-sess-qrstuvwxyz012345", "Pending")
    kube.pods[(NS, "unrelated")] = {
        "metadata": {"name": "unrelated", "labels": {}},
        "status": {"phase": "Running"},
    }
    found = sorted(runtime.list_managed())
    assert [(s.container_id, s.session_id, s.state) for s in found] == [
        (POD, SESSION, "running"),
        ("sandbox-sess-qrstuvwxyz012345", "sess_qrstuvwxyz012345", "creating"),
    ]
    (listing,) = kube.made("GET", "pods")[-1:]
    assert listing.query["labelSelector"] == ["sandboxcp.io/managed=true"]


def test_no_aws_credentials_is_sandbox_unavailable(kube: FakeKube, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    runtime = EksRuntime(
        cluster_name=CLUSTER, endpoint=kube.url, ca_data=kube.ca_data, namespace=NS, region=REGION
    )
    with pytest.raises(SandboxUnavailable, match="no AWS credentials"):
        runtime.start(_spec())


def test_the_executor_address_comes_from_the_pod_status(runtime: EksRuntime, kube: FakeKube) -> None:
    """Trust boundary (4): the Kubernetes API says where the executor is (status.podIP)."""
    assert runtime.addresses_at_start
    handle = runtime.start(_spec())
    assert handle.executor_url == runtime.executor_url(POD)
    with kube.lock:
        kube.pods[(NS, POD)]["status"]["podIP"] = "10.1.2.3"
    assert runtime.executor_url(POD) == "http://10.1.2.3:8080"
    with kube.lock:
        del kube.pods[(NS, POD)]["status"]["podIP"]
    assert runtime.executor_url(POD) is None  # not scheduled (or no longer)


def _stuck_pod_runtime(kube: FakeKube, timeout_s: float) -> EksRuntime:
    kube.run_pods = False
    return EksRuntime(
        cluster_name=CLUSTER,
        endpoint=kube.url,
        ca_data=kube.ca_data,
        namespace=NS,
        region=REGION,
        callback_base_url=CALLBACK,
        start_timeout_s=timeout_s,
    )


def test_a_pod_that_never_runs_is_sandbox_unavailable_and_removed(
    kube: FakeKube, runtime: EksRuntime
) -> None:
    stuck = _stuck_pod_runtime(kube, 0.5)
    with pytest.raises(SandboxUnavailable, match="not running after"):
        stuck.start(_spec())
    assert (NS, POD) not in kube.pods and (NS, POD) not in kube.policies


@pytest.mark.parametrize(
    "status",
    [
        {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ErrImageNeverPull"}}}]},
        {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]},
        {"phase": "Failed", "podIP": "10.1.9.9"},
    ],
)
def test_a_pod_that_cannot_run_fails_fast(
    kube: FakeKube, runtime: EksRuntime, status: dict[str, Any]
) -> None:
    import threading
    import time

    stuck = _stuck_pod_runtime(kube, 30)

    def kubelet_reports() -> None:
        while (NS, POD) not in kube.pods:
            time.sleep(0.01)
        with kube.lock:
            kube.pods[(NS, POD)]["status"] = dict(status)

    threading.Thread(target=kubelet_reports, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(SandboxUnavailable, match=r"cannot start|ended before"):
        stuck.start(_spec())
    assert time.monotonic() - started < 5
    assert (NS, POD) not in kube.pods and (NS, POD) not in kube.policies


def test_storage_egress_lets_a_sandbox_without_network_reach_s3_only() -> None:
    s3_ranges = ["52.216.0.0/15", "3.5.0.0/19"]
    policy = network_policy_manifest(
        _spec(network_enabled=False), namespace=NS, callback_base_url=CALLBACK, storage_cidrs=s3_ranges
    )
    assert _egress_allows(policy, "52.217.1.2", 443)
    assert _egress_allows(policy, "3.5.10.20", 443)
    assert not _egress_allows(policy, "52.217.1.2", 80)
    assert not _egress_allows(policy, "1.1.1.1", 443)
    assert not _egress_allows(policy, str(METADATA_IP), 443)
    # Without storage ranges there is no such rule (a deployment that moves files another way).
    bare = network_policy_manifest(_spec(network_enabled=False), namespace=NS, callback_base_url=CALLBACK)
    assert not _egress_allows(bare, "52.217.1.2", 443)


def test_storage_egress_follows_the_s3_endpoint() -> None:
    from sandboxcp.adapters.runtimes.eks import storage_egress_from_env

    assert storage_egress_from_env({}) == {"storage_cidrs": [], "storage_port": 443}
    aws = {"EKS_S3_CIDRS": "52.216.0.0/15, 3.5.0.0/19"}
    assert storage_egress_from_env(aws) == {
        "storage_cidrs": ["52.216.0.0/15", "3.5.0.0/19"],
        "storage_port": 443,
    }
    local = {"AWS_ENDPOINT_URL": "http://10.244.0.1:5000"}
    assert storage_egress_from_env(local) == {"storage_cidrs": ["10.244.0.1/32"], "storage_port": 5000}
    named = {"AWS_ENDPOINT_URL_S3": "https://s3.internal.example", "AWS_ENDPOINT_URL": "http://10.0.0.1:1"}
    assert storage_egress_from_env(named) == {"storage_cidrs": [], "storage_port": 443}


def test_ping_reads_the_namespace(runtime: EksRuntime, kube: FakeKube) -> None:
    assert runtime.ping() is True
    (read,) = [r for r in kube.requests if r.path == f"/api/v1/namespaces/{NS}"]
    assert read.method == "GET"
    missing = EksRuntime(
        cluster_name=CLUSTER, endpoint=kube.url, ca_data=kube.ca_data, namespace="nowhere", region=REGION
    )
    with pytest.raises(SandboxUnavailable, match="404"):
        missing.ping()
    unreachable = EksRuntime(
        cluster_name=CLUSTER,
        endpoint="https://127.0.0.1:1",
        ca_data=kube.ca_data,
        namespace=NS,
        region=REGION,
    )
    with pytest.raises(SandboxUnavailable, match="unreachable"):
        unreachable.ping()


def test_destroy_all_deletes_what_this_runtime_started(runtime: EksRuntime, kube: FakeKube) -> None:
    runtime.start(_spec())
    runtime.start(_spec(session_id="sess_qrstuvwxyz012345"))
    kube.pods[(NS, "someone-else")] = {"metadata": {"name": "someone-else"}, "status": {"phase": "Running"}}
    runtime.destroy_all()
    assert set(kube.pods) == {(NS, "someone-else")}
