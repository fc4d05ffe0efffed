"""`sandboxcp local`: the whole control plane on one machine.

moto plays AWS (DynamoDB, S3, Step Functions); the launch ASL runs on moto's interpreter, whose Lambda
invokes reach the in-process handlers through a Lambda endpoint (moto calls localhost:$MOTO_PORT);
the API Gateway emulator serves the public and internal APIs on TCP, and the internal API alone on a
unix socket that each sandbox sees as its only way out.

With `runtime="ecs"` the deployed topology instead: the ECS stand-in (ecs_standin.py) runs each task as
a real container on its own address; the sandboxes' way out is the internal API (and the S3 front, `/_s3/`)
over HTTP on the host's address on the task network, the only host port they may reach besides the task
metadata endpoint; the control plane binds and calls executors at the address DescribeTasks reports.

`runtime="eks"` is the same topology on the Kubernetes API stand-in (kube_standin.py): the real eks adapter
creates Pods (real containers) fenced by NetworkPolicies (iptables) that let a sandbox reach only the
internal API and S3 front on the pod network's gateway; executors are bound and called at the Pod IP.

`runtime="docker-remote"` is the docker runtime as deployed with a remote engine (docker_remote.py): the
local engine reached over TCP with mutual TLS (client certificate from a Secrets Manager secret in moto),
sandboxes on their own fenced networks calling the internal API and S3 front over HTTP on the sandbox
network's gateway, executors reached at the port the engine published. No unix socket goes into a
sandbox in any of the three."""

from __future__ import annotations

import errno
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer

from sandboxcp.local import access_guard, inprocess_aws
from sandboxcp.local.aws import (
    EKS_NAMESPACE,
    MotoAws,
    aws_environment,
    eks_settings_env,
    listening_socket,
    local_settings_env,
    provision,
    provision_docker_tls_secret,
    provision_ecs,
)
from sandboxcp.local.docs_ui import DocsUi
from sandboxcp.local.functions import LocalFunctions
from sandboxcp.local.gateway import ApiGatewayEmulator, LambdaInvokeEndpoint
from sandboxcp.local.handler import GatewayRequestHandler
from sandboxcp.local.s3_forwarder import S3Forwarder
from sandboxcp.local.serving import PooledWSGIServer
from sandboxcp.routes import JOBS, ROUTES


class LocalTicker:
    """Fires the periodic jobs of the route table (EventBridge and the sweeper state machine in AWS)."""

    def __init__(self, functions: LocalFunctions) -> None:
        self.functions = functions
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._loop, args=(job.module, job.every_s), name=f"tick-{job.module}", daemon=True
            )
            for job in JOBS
            if job.every_s
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def _loop(self, module: str, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                self.functions.invoke(module, {"source": "sandboxcp.local-ticker"})
            except Exception:  # a failed tick is logged by the function; the next one tries again
                logging.getLogger(__name__).exception("scheduled job %s failed", module)


class LocalStack:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        runtime: str = "process",
        state_dir: str | None = None,
        api_key: str | None = None,
    ) -> None:
        self.host, self.port, self.runtime = host, port, runtime
        self.state_dir = Path(state_dir or f"/tmp/sandboxcp-{port or os.getpid()}")
        self.api_key = api_key or os.environ.get("SANDBOXCP_API_KEY") or f"sk_{secrets.token_urlsafe(32)}"
        self._servers: list[BaseWSGIServer] = []
        self._api_listener: socket.socket | None = None
        self._aws: MotoAws | None = None
        self._ecs: Any = None  # the ECS stand-in (runtime ecs)
        self._kube: Any = None  # the Kubernetes API stand-in (runtime eks)
        self._remote: Any = None  # the remote Docker engine stand-in (runtime docker-remote)
        self._ticker: LocalTicker | None = None

    @property
    def settings_runtime(self) -> str:
        """SANDBOX_RUNTIME: docker-remote is the docker runtime with a remote (TCP + TLS) engine."""
        return "docker" if self.runtime == "docker-remote" else self.runtime

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        from sandboxcp.adapters.runtimes import disk, spare_disks

        # The API's port first: taken now, so a port in use fails before anything starts, and port 0 (the
        # kernel's pick, what tests use) is known for the URL printed.
        self._api_listener = listening_socket(self.host, self.port)
        self.port = int(self._api_listener.getsockname()[1])

        disk.remove_all_under(self.state_dir)  # workspaces a killed stack left mounted
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state_dir.mkdir(parents=True, mode=0o755)
        if disk.available():
            spare_disks.keep_for(self.state_dir)  # cold launches take a workspace disk made ahead
        self._aws = MotoAws()
        self._aws.start()
        # This process's DynamoDB calls skip the loopback HTTP hop to the moto server (inprocess_aws.py).
        inprocess_aws.install(self._aws.endpoint)
        access_guard.install()  # each function gets only what its role would (access_guard.py)
        lambda_listener = listening_socket("127.0.0.1")
        lambda_port = int(lambda_listener.getsockname()[1])
        os.environ.update(aws_environment(self._aws.endpoint))
        os.environ.update(local_settings_env(str(self.state_dir), self.settings_runtime))
        os.environ["MOTO_PORT"] = str(lambda_port)  # where moto's Step Functions sends Lambda invokes
        # ecs, eks, docker-remote: the sandboxes reach the control plane over HTTP at the sandbox network's
        # gateway, on a port held from here on.
        sandbox_listener: socket.socket | None = None
        if self.runtime == "ecs":
            from sandboxcp.local.ecs_standin import EcsStandIn

            self._ecs = EcsStandIn(self._aws.endpoint)
            self._ecs.start()
            sandbox_listener = listening_socket(self._ecs.gateway)
            self._ecs.allow(sandbox_listener.getsockname()[1])
            os.environ.update(self._ecs.client_env())
            os.environ.update(provision_ecs(self._aws.endpoint, _http_url(sandbox_listener)))
        elif self.runtime == "eks":
            from sandboxcp.local.kube_standin import KubeStandin

            self._kube = KubeStandin(namespaces=(EKS_NAMESPACE,))
            self._kube.start()
            sandbox_listener = listening_socket(self._kube.gateway_ip)
            os.environ.update(
                eks_settings_env(self._kube.url, self._kube.ca_data, _http_url(sandbox_listener))
            )
        elif self.runtime == "docker-remote":
            from sandboxcp.local.docker_remote import DockerRemoteStandIn

            self._remote = DockerRemoteStandIn()
            self._remote.start()
            sandbox_listener = listening_socket(self._remote.gateway)
            self._remote.allow(sandbox_listener.getsockname()[1])
            secret = provision_docker_tls_secret(self._aws.endpoint, self._remote.secret_string())
            os.environ.update(self._remote.settings_env(secret, _http_url(sandbox_listener)))
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

        from sandboxcp.services import auth, nodes, templates
        from sandboxcp.services.deps import Dependencies, set_deps
        from sandboxcp.settings import get_settings

        get_settings.cache_clear()
        os.environ["LAUNCH_STATE_MACHINE_ARN"] = provision(get_settings())
        get_settings.cache_clear()
        deps = Dependencies(get_settings())
        set_deps(deps)
        templates.seed_default_templates(deps)
        nodes.register_local_node(deps)
        auth.ensure_api_key(deps, self.api_key, "admin", admin=True)

        functions = LocalFunctions()
        internal = ApiGatewayEmulator(functions, [r for r in ROUTES if r.api == "internal"])
        self._serve("127.0.0.1", LambdaInvokeEndpoint(functions), lambda_listener)
        sandbox_api = S3Forwarder(self._aws.endpoint, internal, bucket=deps.settings.workspace_bucket)
        if sandbox_listener is not None:  # ecs, eks, docker-remote: over HTTP on the sandbox network
            self._serve(sandbox_listener.getsockname()[0], sandbox_api, sandbox_listener)
        else:
            self._serve(f"unix://{self.state_dir / 'internal.sock'}", sandbox_api)
            os.chmod(self.state_dir / "internal.sock", 0o666)
        # + OpenAPI docs, Swagger UI
        self._serve(self.host, DocsUi(ApiGatewayEmulator(functions)), self._api_listener)
        self._api_listener = None
        self._ticker = LocalTicker(functions)
        self._ticker.start()

    def standin_lines(self) -> list[str]:
        """Where the stand-in's own API is (for tools and tests; no key material)."""
        if self._kube is not None:
            return [f"EKS_ENDPOINT={self._kube.url}", f"# pod network {self._kube.subnet}"]
        if self._remote is not None:
            return [
                f"DOCKER_HOST={self._remote.docker_host}",
                f"# sandbox network {self._remote.sandbox_network}",
            ]
        if self._ecs is not None:
            return [f"AWS_ENDPOINT_URL_ECS={self._ecs.endpoint}"]
        return []

    def _serve(self, host: str, app: Any, listener: socket.socket | None = None) -> None:
        """Serve `app` on `listener` (TCP, already listening), or on the unix socket `host` names."""
        # Every server closes a connection after its answer rather than reading on (see body.py).
        if listener is None:
            server = PooledWSGIServer(host, 0, app, GatewayRequestHandler)
        else:
            port = int(listener.getsockname()[1])
            with listener:  # the server holds its own duplicate of the descriptor
                server = PooledWSGIServer(host, port, app, GatewayRequestHandler, fd=listener.fileno())
        self._servers.append(server)
        threading.Thread(target=server.serve_forever, name=f"serve-{server.port}", daemon=True).start()

    def stop(self) -> None:
        """Stop every sandbox first (no executor outlives the stack), then the servers."""
        from sandboxcp.services.deps import get_deps

        if self._ticker is not None:
            self._ticker.stop()
        if self._aws is not None and get_deps().settings.runtime == self.settings_runtime:
            from sandboxcp.adapters.runtimes.docker import DockerRuntime
            from sandboxcp.adapters.runtimes.process import ProcessRuntime

            runtime = get_deps().runtime
            # Sandboxes this stack started; ecs tasks and eks Pods are their stand-in's, which removes them
            # all below.
            if isinstance(runtime, ProcessRuntime | DockerRuntime):
                runtime.destroy_all()
        # The servers go before the stand-ins: a sandbox the stand-in stops then reports its exit to no one
        # (rather than to a control plane whose runtime API is already gone).
        for server in self._servers:
            server.shutdown()
            server.server_close()
        if self._api_listener is not None:  # start() stopped before the API served
            self._api_listener.close()
        if self._ecs is not None:
            self._ecs.stop()
        if self._kube is not None:
            self._kube.stop()
        if self._remote is not None:
            self._remote.stop()
        if self._aws is not None:
            inprocess_aws.uninstall()
            self._aws.stop()
        from sandboxcp.adapters.runtimes import disk, spare_disks

        spare_disks.forget_under(self.state_dir)  # the workspace disks made ahead of launches
        disk.remove_all_under(self.state_dir)  # workspaces of sandboxes that were still starting


def _http_url(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"http://{host}:{port}"


def run(host: str, port: int, runtime: str, state_dir: str | None) -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's and the emulator's access logs
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    stack = LocalStack(host=host, port=port, runtime=runtime, state_dir=state_dir)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stack.start()
        print(f"Sandbox Control Plane (local, runtime={runtime})", flush=True)
        print(f"SANDBOXCP_URL={stack.base_url}", flush=True)
        print(f"SANDBOXCP_API_KEY={stack.api_key}", flush=True)
        for line in stack.standin_lines():
            print(line, flush=True)
        stop.wait()
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise
        print(err.strerror, file=sys.stderr, flush=True)  # no traceback for a port in use
        return 1
    finally:
        stack.stop()
        print("stopped: every sandbox is gone", file=sys.stderr, flush=True)
    return 0
