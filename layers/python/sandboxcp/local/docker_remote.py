"""A remote Docker engine on one machine, for `sandboxcp local --runtime docker-remote`: the local dockerd
reached the way a deployment reaches its Docker hosts, over TCP with mutual TLS (`tcp://`, docker_tls.py),
with sandboxes on their own networks, reached over HTTP at the port the engine published.

- **The engine's TLS port** (`TlsEngineFront`): a TCP listener on 127.0.0.1 that speaks TLS with a server
  certificate signed by a CA made at start, requires a client certificate signed by the same CA (what
  `dockerd --tlsverify` does) and relays the verified connection byte for byte to the engine's unix socket.
  The CA, the client certificate and its key go to Secrets Manager (moto) as the deployment's
  `DOCKER_TLS_SECRET_ARN` secret; the control plane reads them from there (docker_tls.from_secret). The
  engine's own socket is never bound into a sandbox, and its TLS port listens on loopback only.
- **Networks**: `<name>-sandboxes` for templates without network: a bridge whose containers cannot reach
  each other (no inter-container traffic) and open no connection past the host (a DOCKER-USER rule drops
  what they start; not a Docker `internal` network, because Docker publishes no port there and the control
  plane reaches an executor at the port the engine published on 127.0.0.1); `<name>-open` for templates that
  allow network: the same without that rule (a route out through NAT). Of the host, containers on either
  reach only the ports `allow()`ed on `gateway` (the sandbox network's gateway address): the internal API
  with its S3 front. An iptables chain on INPUT enforces that (a deployment's host firewall / security
  group).

Everything it made (networks, the chain, the certificates, containers left on its networks) goes at
`stop()`; what a stand-in whose process died left behind is removed by the next one to start (label
`sandboxcp.docker-remote.pid`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import secrets
import select
import shutil
import socket
import socketserver
import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from sandboxcp.adapters.runtimes.docker import DockerApiError, DockerNode, EngineClient
from sandboxcp.local.host import create_isolated_bridge, network_gateway
from sandboxcp.local.host import iptables as _iptables
from sandboxcp.local.host import pid_alive as _alive

LABEL = "sandboxcp.docker-remote"  # value: the stand-in's name (networks)
PID_LABEL = "sandboxcp.docker-remote.pid"  # the process that made it
ENGINE_SOCKET = "/var/run/docker.sock"
_RELAY_CHUNK = 64 * 1024


@dataclass(frozen=True)
class TlsFiles:
    """PEMs of a throwaway CA, the engine's server certificate and the control plane's client one."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def make_certificates(hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsFiles:
    """A one-day EC CA, a server certificate for `hosts` and a client certificate, all signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def pem_key(k: ec.EllipticCurvePrivateKey) -> str:
        return k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    ca_key = key()
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("sandboxcp local docker CA"))
        .issuer_name(name("sandboxcp local docker CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]) -> tuple[str, str]:
        k = key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(ca.subject)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM).decode(), pem_key(k)

    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    server_cert, server_key = leaf("sandboxcp local docker engine", ExtendedKeyUsageOID.SERVER_AUTH, sans)
    client_cert, client_key = leaf("sandboxcp control plane", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    return TlsFiles(
        ca=ca.public_bytes(serialization.Encoding.PEM).decode(),
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
    )


class TlsEngineFront:
    """`dockerd --tlsverify -H tcp://127.0.0.1:PORT`, in front of the engine's unix socket: only a client
    presenting a certificate of our CA gets through; its bytes go to the socket unchanged (hijacked
    streams included)."""

    def __init__(self, files: TlsFiles, directory: Path, socket_path: str = ENGINE_SOCKET) -> None:
        self.socket_path = socket_path
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=files.ca)
        cert, key = directory / "server-cert.pem", directory / "server-key.pem"
        for path, text in ((cert, files.server_cert), (key, files.server_key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        context.load_cert_chain(str(cert), str(key))
        self._context = context
        front = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                front._relay(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="docker-tls-front",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _relay(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            tls = self._context.wrap_socket(raw, server_side=True)  # the handshake: a client cert or nothing
        except (ssl.SSLError, OSError):
            return
        tls.settimeout(None)
        engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            engine.connect(self.socket_path)
        except OSError:
            tls.close()
            engine.close()
            return
        try:
            _pump(tls, engine)
        finally:
            for s in (tls, engine):
                with contextlib.suppress(OSError):
                    s.close()


def _pump(tls: ssl.SSLSocket, engine: socket.socket) -> None:
    """Both directions until both are done; a side's EOF half-closes the other."""
    open_in = {tls: True, engine: True}
    while any(open_in.values()):
        readable = [s for s, alive in open_in.items() if alive]
        # Bytes already decrypted inside the TLS object are not visible to select: read them first.
        ready = [tls] if open_in[tls] and tls.pending() else select.select(readable, [], [], 60)[0]
        for source in ready:
            target = engine if source is tls else tls
            try:
                data = source.recv(_RELAY_CHUNK)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except OSError:
                data = b""
            if not data:
                open_in[source] = False
                with contextlib.suppress(OSError):
                    if target is engine:
                        engine.shutdown(socket.SHUT_WR)
                    else:
                        return  # the engine is done: TLS has no half-close worth waiting for
                continue
            try:
                target.sendall(data)
            except OSError:
                return


class DockerRemoteStandIn:
    """`start()`: the TLS engine port, the sandbox networks and their fence; `settings_env()` the
    control plane's settings for it; `stop()` removes all of it."""

    def __init__(self, *, socket_path: str = ENGINE_SOCKET, name: str | None = None) -> None:
        self.socket_path = socket_path
        self.name = name or f"sandboxcp-dr-{secrets.token_hex(4)}"
        self.engine = EngineClient(DockerNode("docker-remote-standin", f"unix://{socket_path}"))
        self.sandbox_network = f"{self.name}-sandboxes"
        self.open_network = f"{self.name}-open"
        suffix = self.name[-8:]
        self._bridges = {self.sandbox_network: f"sdr{suffix}s", self.open_network: f"sdr{suffix}o"}
        self._chain = f"SBX-DR-{suffix}"
        self.gateway = ""
        self.files: TlsFiles | None = None
        self._front: TlsEngineFront | None = None
        self._tmp: str | None = None

    @property
    def docker_host(self) -> str:
        assert self._front is not None
        return f"tcp://127.0.0.1:{self._front.port}"

    @property
    def port(self) -> int:
        assert self._front is not None
        return self._front.port

    def start(self) -> None:
        try:
            self.remove_leftovers(self.engine)
            self._tmp = tempfile.mkdtemp(prefix=f"{self.name}-tls-")
            os.chmod(self._tmp, 0o700)
            self.files = make_certificates()
            self._front = TlsEngineFront(self.files, Path(self._tmp), self.socket_path)
            self._front.start()
            labels = {LABEL: self.name, PID_LABEL: str(os.getpid())}
            # Not `Internal`: Docker publishes no port of a container on an internal network, and the
            # control plane reaches executors at their published port. The fence below cuts its way out.
            for network in (self.sandbox_network, self.open_network):
                create_isolated_bridge(
                    self.engine, network, self._bridges[network], internal=False, labels=labels
                )
            self.gateway = network_gateway(self.engine, self.sandbox_network)
            _iptables("-N", self._chain)
            _iptables(
                "-A", self._chain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"
            )
            _iptables("-A", self._chain, "-j", "DROP")
            for bridge in self._bridges.values():
                _iptables("-I", "INPUT", "-i", bridge, "-j", self._chain)
            _iptables("-I", "DOCKER-USER", "1", *_no_way_out(self._bridges[self.sandbox_network]))
        except BaseException:
            self.stop()
            raise

    def allow(self, port: int) -> None:
        """Let sandboxes reach the host's `gateway:port` (the internal API and S3 front listen there)."""
        _iptables(
            "-I", self._chain, "2", "-d", self.gateway, "-p", "tcp", "--dport", str(port), "-j", "ACCEPT"
        )

    def secret_string(self) -> str:
        """The `DOCKER_TLS_SECRET_ARN` secret's value: the CA and the control plane's client pair."""
        assert self.files is not None
        return json.dumps({"ca": self.files.ca, "cert": self.files.client_cert, "key": self.files.client_key})

    def settings_env(self, secret_arn: str, sandbox_api_url: str) -> dict[str, str]:
        """The docker runtime's settings for this engine, as a deployment with one remote host has them."""
        return {
            "SANDBOX_RUNTIME": "docker",
            "DOCKER_HOST": self.docker_host,
            "DOCKER_TLS_SECRET_ARN": secret_arn,
            "DOCKER_SANDBOX_NETWORK": self.sandbox_network,
            "DOCKER_OPEN_NETWORK": self.open_network,
            "DOCKER_PUBLISH_HOST": "127.0.0.1",
            "CALLBACK_BASE_URL": sandbox_api_url,
            "SANDBOX_S3_VIA": sandbox_api_url,
        }

    def stop(self) -> None:
        """Idempotent: containers still on the networks, the networks, the chain, the TLS port, the files."""
        for network in (self.sandbox_network, self.open_network):
            _remove_network(self.engine, network)
        _unfence(self._chain, list(self._bridges.values()))
        if self._front is not None:
            self._front.stop()
            self._front = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    @staticmethod
    def remove_leftovers(engine: EngineClient) -> None:
        """Networks (and the containers on them, and the chain) of stand-ins whose process is gone."""
        filters = json.dumps({"label": [PID_LABEL]})
        for network in engine.call("GET", "/networks", params={"filters": filters}).json():
            labels = network.get("Labels") or {}
            pid = str(labels.get(PID_LABEL, ""))
            if not pid.isdigit() or _alive(int(pid)):
                continue
            _remove_network(engine, str(network["Name"]))
            name = str(labels.get(LABEL, ""))
            if name:
                suffix = name[-8:]
                _unfence(f"SBX-DR-{suffix}", [f"sdr{suffix}s", f"sdr{suffix}o"])


def _remove_network(engine: EngineClient, network: str) -> None:
    with contextlib.suppress(DockerApiError):
        info = engine.call("GET", f"/networks/{network}").json()
        for container_id in info.get("Containers") or {}:
            with contextlib.suppress(DockerApiError):
                engine.call(
                    "DELETE",
                    f"/containers/{container_id}",
                    params={"force": "true", "v": "true"},
                    ok=(204, 404),
                )
        engine.call("DELETE", f"/networks/{network}", ok=(204, 404))


def _no_way_out(bridge: str) -> tuple[str, ...]:
    """The DOCKER-USER rule that keeps the sandbox network internal: nothing its containers open is
    forwarded anywhere (replies to the connections made to their published ports still are)."""
    return ("-i", bridge, "-m", "conntrack", "!", "--ctstate", "ESTABLISHED,RELATED", "-j", "DROP")


def _unfence(chain: str, bridges: list[str]) -> None:
    _iptables("-D", "DOCKER-USER", *_no_way_out(bridges[0]), check=False)
    for bridge in bridges:
        _iptables("-D", "INPUT", "-i", bridge, "-j", chain, check=False)
    _iptables("-F", chain, check=False)
    _iptables("-X", chain, check=False)
