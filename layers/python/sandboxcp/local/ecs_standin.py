"""An ECS (Fargate) stand-in that runs real containers: moto plays the ECS and CloudWatch Logs APIs, and
this proxy in front of it starts, stops and describes real containers on the local Docker engine.

The control plane points its ECS and Logs clients at `EcsStandIn.endpoint` (`AWS_ENDPOINT_URL_ECS`,
`AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`, see `client_env`) and runs unchanged: every request goes to moto as
sent, and on the way back

- **RunTask** starts one container per task from the task definition and the overrides: image, command
  and entry point, environment (overrides win by name), user, read-only root, capabilities dropped or
  added, init, container memory (hard, no swap) or the task's, task cpu as a CPU quota, container cpu as
  shares, stop timeout. Fargate's volume semantics: a task volume is a fresh volume per task; its mount
  point is owned by root (0755) unless the image declares the path as `VOLUME`, in which case it starts as
  a copy of the image's directory (owner and mode included). The task gets its own address on a bridge
  network (its "ENI"), and the task metadata endpoint v4 in `ECS_CONTAINER_METADATA_URI_V4`;
- **DescribeTasks / RunTask / StopTask** answers carry the container's real address (attachment details,
  network interfaces) and its real state: PENDING until it runs, RUNNING, DEACTIVATING while it stops,
  STOPPED with exit code and reason once it is gone. A task whose container exits by itself is stopped in
  moto too ("Essential container in task exited"), so ListTasks stops listing it, as in ECS;
- **StopTask** stops the container (SIGTERM, then SIGKILL after the stop timeout) in the background and
  removes it and its volumes, after shipping its output to CloudWatch Logs;
- **GetLogEvents** first ships what the task's container wrote (awslogs driver: `<prefix>/<container>/<task
  id>` in the task definition's group) to moto's CloudWatch Logs, so reads see the container's output.

Networks, as a security group would allow them: every task is on an *internal* bridge network (no route
out, containers cannot reach each other). Of the host, tasks reach only the ports `allow()`ed on its
address on that network (`gateway`): the metadata endpoint and what the local stack serves sandboxes (its
internal API and S3 front), i.e. what sandboxes with network `none` reach through VPC endpoints in AWS.
An iptables chain enforces that (the host's other addresses and ports would otherwise answer them). A task
whose security groups allow egress to 0.0.0.0/0 (moto EC2) is also connected to an ordinary bridge
network with a default route out (NAT in AWS); the host stays fenced off on that one too.

What it does not emulate (docs/runtimes-cloud.md): one container per task only, no ephemeral storage size
limit, no image pull (images must be on the local engine), port-level security group rules, IAM, Fargate
platform versions, capacity and placement failures, the awslogs driver's streaming (logs are shipped on
read and at stop), host ports bound on all addresses are reachable from tasks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from sandboxcp.adapters.runtimes.docker import DockerApiError, DockerNode, EngineClient, demux_logs
from sandboxcp.local.host import create_isolated_bridge, network_gateway
from sandboxcp.local.host import iptables as _iptables

log = logging.getLogger(__name__)

REGION, ACCOUNT = "us-east-1", "123456789012"
LABEL = "sandboxcp.ecs-standin"  # value: the stand-in's name; on containers, volumes and networks
PID_LABEL = "sandboxcp.ecs-standin.pid"  # the process that made it (leftovers of a dead one are removed)
TASK_LABEL = "sandboxcp.ecs-standin.task"
ECS_TARGET = "AmazonEC2ContainerServiceV20141113."
LOGS_TARGET = "Logs_20140328."
DEFAULT_STOP_TIMEOUT_S = 30  # ECS's default stopTimeout
_MIB = 1024 * 1024
_TIMEOUT = httpx.Timeout(60.0, connect=5.0)


@dataclass
class StandInTask:
    """One task's container and what DescribeTasks reports about it."""

    arn: str
    task_id: str
    cluster_arn: str
    family: str
    revision: int
    container_name: str
    image: str
    cpu_units: int
    memory_mib: int
    log_options: dict[str, str] | None
    volumes: list[str] = field(default_factory=list)
    container_id: str = ""
    ips: list[str] = field(default_factory=list)  # [task network address, egress address?]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    stopping: bool = False
    stopped: bool = False  # container gone (removed after its exit or a StopTask)
    stop_code: str = ""
    stop_reason: str = ""
    exit_code: int | None = None
    logs_shipped_ns: int = 0  # the last log line's timestamp already in CloudWatch Logs
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ip(self) -> str:
        return self.ips[0] if self.ips else ""

    @property
    def log_stream(self) -> str:
        prefix = (self.log_options or {}).get("awslogs-stream-prefix", "")
        return f"{prefix}/{self.container_name}/{self.task_id}" if prefix else self.task_id


class EcsStandIn:
    """The stand-in: `start()` it, point ECS and Logs clients at `endpoint`, `stop()` it (every task's
    container, volume and the networks go with it)."""

    def __init__(
        self,
        moto_endpoint: str,
        *,
        engine: EngineClient | None = None,
        name: str | None = None,
        region: str = REGION,
    ) -> None:
        self.moto_endpoint = moto_endpoint.rstrip("/")
        self.engine = engine or EngineClient(DockerNode("local-docker", "unix:///var/run/docker.sock"))
        self.name = name or f"sandboxcp-ecs-{secrets.token_hex(4)}"
        self.region = region
        self.task_network = f"{self.name}-tasks"
        self.egress_network = f"{self.name}-egress"
        suffix = self.name[-8:]
        self._bridges = {self.task_network: f"sbx{suffix}t", self.egress_network: f"sbx{suffix}e"}
        self._chain = f"SBX-ECS-{suffix}"
        self.gateway = ""  # the host's address on the task network, known once started
        self._tasks: dict[str, StandInTask] = {}
        self._lock = threading.Lock()
        self._stoppers: list[threading.Thread] = []
        self._servers: list[BaseWSGIServer] = []
        self._http = httpx.Client(timeout=_TIMEOUT)
        self._image_volumes: dict[str, set[str]] = {}
        self._definitions: dict[str, dict[str, Any]] = {}
        aws: dict[str, Any] = {
            "endpoint_url": self.moto_endpoint,
            "region_name": region,
            "aws_access_key_id": "standin",
            "aws_secret_access_key": "standin",
        }
        self._moto_ecs: Any = boto3.client("ecs", **aws)
        self._moto_logs: Any = boto3.client("logs", **aws)
        self._moto_ec2: Any = boto3.client("ec2", **aws)
        self._proxy_port = 0
        self._metadata_port = 0

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The ECS and CloudWatch Logs API the control plane uses (loopback)."""
        return f"http://127.0.0.1:{self._proxy_port}"

    def client_env(self) -> dict[str, str]:
        """Environment that points boto3's ECS and Logs clients at the stand-in (other services: moto)."""
        return {"AWS_ENDPOINT_URL_ECS": self.endpoint, "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": self.endpoint}

    def start(self) -> None:
        self.remove_leftovers(self.engine)
        # moto advances a task one lifecycle step per DescribeTasks by default; the containers decide here.
        self._http.post(
            f"{self.moto_endpoint}/moto-api/state-manager/set-transition",
            json={"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**9}},
        ).raise_for_status()
        labels = {LABEL: self.name, PID_LABEL: str(os.getpid())}
        for network, internal in ((self.task_network, True), (self.egress_network, False)):
            bridge = self._bridges[network]
            create_isolated_bridge(self.engine, network, bridge, internal=internal, labels=labels)
        self.gateway = network_gateway(self.engine, self.task_network)
        self._fence()
        self._proxy_port = self._serve("127.0.0.1", self._proxy)
        self._metadata_port = self._serve(self.gateway, self._metadata)
        self.allow(self._metadata_port)

    def allow(self, port: int) -> None:
        """Let tasks reach the host's `gateway:port` (a service for sandboxes, listening there)."""
        _iptables(
            "-I", self._chain, "2", "-d", self.gateway, "-p", "tcp", "--dport", str(port), "-j", "ACCEPT"
        )

    def _fence(self) -> None:
        """Tasks reach the host only where allowed: an INPUT chain for both bridges, dropping the rest."""
        _iptables("-N", self._chain)
        _iptables("-A", self._chain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
        _iptables("-A", self._chain, "-j", "DROP")
        for bridge in self._bridges.values():
            _iptables("-I", "INPUT", "-i", bridge, "-j", self._chain)

    def _unfence(self) -> None:
        _unfence(self._chain, list(self._bridges.values()))

    def stop(self) -> None:
        with self._lock:
            tasks = list(self._tasks.values())
        for task in tasks:
            self._remove(task, ship_logs=False)
        for thread in list(self._stoppers):
            thread.join(timeout=60)
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._unfence()
        for network in (self.task_network, self.egress_network):
            with contextlib.suppress(DockerApiError):
                self.engine.call("DELETE", f"/networks/{network}", ok=(204, 404))
        self._http.close()

    @staticmethod
    def remove_leftovers(engine: EngineClient) -> None:
        """Containers, volumes and networks of stand-ins whose process is gone (a killed stack)."""
        filters = json.dumps({"label": [PID_LABEL]})
        dead = _dead_pids_filter
        for c in engine.call("GET", "/containers/json", params={"all": "1", "filters": filters}).json():
            if dead(c.get("Labels")):
                with contextlib.suppress(DockerApiError):
                    engine.call("DELETE", f"/containers/{c['Id']}", params={"force": "true"}, ok=(204, 404))
        volumes = engine.call("GET", "/volumes", params={"filters": filters}).json().get("Volumes") or []
        for v in volumes:
            if dead(v.get("Labels")):
                with contextlib.suppress(DockerApiError):
                    engine.call("DELETE", f"/volumes/{v['Name']}", ok=(204, 404))
        for n in engine.call("GET", "/networks", params={"filters": filters}).json():
            if dead(n.get("Labels")):
                with contextlib.suppress(DockerApiError):
                    engine.call("DELETE", f"/networks/{n['Id']}", ok=(204, 404))
                name = str(n.get("Labels", {}).get(LABEL, ""))
                if name:
                    _unfence(f"SBX-ECS-{name[-8:]}", [f"sbx{name[-8:]}t", f"sbx{name[-8:]}e"])

    def _serve(self, host: str, app: Any) -> int:
        server = make_server(host, 0, app, threaded=True, request_handler=_QuietHandler)
        self._servers.append(server)
        threading.Thread(target=server.serve_forever, name=f"ecs-standin-{host}", daemon=True).start()
        return int(server.server_port)

    def task(self, task: str) -> StandInTask | None:
        """A task by its ARN or its id."""
        with self._lock:
            return self._tasks.get(task) or next((t for t in self._tasks.values() if t.task_id == task), None)

    # -- the API proxy -----------------------------------------------------------------------------
    def _proxy(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data()
        target = request.headers.get("X-Amz-Target", "")
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "connection")
        }
        if target == LOGS_TARGET + "GetLogEvents":
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self._ship_logs_of_stream(json.loads(body)["logStreamName"])
        upstream = self._http.request(
            request.method, self.moto_endpoint + request.full_path.rstrip("?"), content=body, headers=headers
        )
        content = upstream.content
        action = target.removeprefix(ECS_TARGET) if target.startswith(ECS_TARGET) else ""
        if upstream.status_code == 200 and action in ("RunTask", "StartTask", "DescribeTasks", "StopTask"):
            answer = upstream.json()
            if action in ("RunTask", "StartTask"):
                for task in answer.get("tasks") or []:
                    self._launch(task, json.loads(body))
            elif action == "StopTask" and answer.get("task"):
                self._stop_later(answer["task"]["taskArn"], json.loads(body).get("reason") or "")
            for task in answer.get("tasks") or ([answer["task"]] if answer.get("task") else []):
                self._present(task)
            content = json.dumps(answer).encode()
        passed = {
            k: v for k, v in upstream.headers.items() if k.lower() in ("content-type", "x-amzn-requestid")
        }
        return Response(content, status=upstream.status_code, headers=passed)(environ, start_response)

    # -- RunTask: a container per task ---------------------------------------------------------------
    def _launch(self, task: dict[str, Any], request: dict[str, Any]) -> None:
        arn = str(task["taskArn"])
        definition = self._task_definition(str(task["taskDefinitionArn"]))
        containers = definition.get("containerDefinitions") or []
        container = containers[0] if containers else {}
        overrides = request.get("overrides") or {}
        override: dict[str, Any] = next(
            (o for o in overrides.get("containerOverrides") or [] if o.get("name") == container.get("name")),
            {},
        )
        log_config = container.get("logConfiguration") or {}
        record = StandInTask(
            arn=arn,
            task_id=arn.rsplit("/", 1)[-1],
            cluster_arn=str(task.get("clusterArn", "")),
            family=str(definition.get("family", "")),
            revision=int(definition.get("revision", 1)),
            container_name=str(container.get("name", "")),
            image=str(container.get("image", "")),
            cpu_units=int(overrides.get("cpu") or definition.get("cpu") or 256),
            memory_mib=int(overrides.get("memory") or definition.get("memory") or 512),
            log_options=dict(log_config.get("options") or {})
            if log_config.get("logDriver") == "awslogs"
            else None,
        )
        with self._lock:
            self._tasks[arn] = record
        try:
            if len(containers) != 1:
                raise _TaskFailed("StandInError", "the stand-in runs tasks of exactly one container")
            config = self._container_config(record, definition, container, override)
            open_egress = self._allows_egress(request)
            self._create_volumes(record, definition, container)
            created = self.engine.call(
                "POST", "/containers/create", params={"name": f"{self.name}-{record.task_id}"}, body=config
            )
            record.container_id = str(created.json()["Id"])
            if open_egress:
                self.engine.call(
                    "POST",
                    f"/networks/{self.egress_network}/connect",
                    body={"Container": record.container_id},
                )
            self.engine.call("POST", f"/containers/{record.container_id}/start", ok=(204, 304))
            info = self.engine.call("GET", f"/containers/{record.container_id}/json").json()
            networks = info["NetworkSettings"]["Networks"]
            record.ips = [networks[self.task_network]["IPAddress"]] + (
                [networks[self.egress_network]["IPAddress"]] if open_egress else []
            )
            record.started_at = datetime.now(UTC)
        except (DockerApiError, _TaskFailed) as exc:
            code, reason = (
                (exc.code, exc.reason)
                if isinstance(exc, _TaskFailed)
                else (
                    "CannotPullContainerError" if exc.status == 404 else "CannotStartContainerError",
                    exc.message,
                )
            )
            record.stop_code, record.stop_reason = "TaskFailedToStart", f"{code}: {reason}"[:255]
            self._remove(record, ship_logs=False)
            with contextlib.suppress(Exception):
                self._moto_ecs.stop_task(cluster=record.cluster_arn, task=arn, reason=record.stop_reason)

    def _task_definition(self, arn: str) -> dict[str, Any]:
        """A task definition revision (immutable, so read once)."""
        if arn not in self._definitions:
            described = self._moto_ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
            self._definitions[arn] = described
        return self._definitions[arn]

    def _container_config(
        self,
        record: StandInTask,
        definition: dict[str, Any],
        container: dict[str, Any],
        override: dict[str, Any],
    ) -> dict[str, Any]:
        env = {e["name"]: e["value"] for e in container.get("environment") or []}
        env.update({e["name"]: e["value"] for e in override.get("environment") or []})
        metadata = f"http://{self.gateway}:{self._metadata_port}/v4/{record.task_id}"
        env.update(
            {
                "ECS_CONTAINER_METADATA_URI_V4": metadata,
                "ECS_CONTAINER_METADATA_URI": metadata,
                "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE",
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
            }
        )
        linux = container.get("linuxParameters") or {}
        capabilities = linux.get("capabilities") or {}
        memory_mib = int(override.get("memory") or container.get("memory") or record.memory_mib)
        host: dict[str, Any] = {
            "ReadonlyRootfs": bool(container.get("readonlyRootFilesystem")),
            "CapDrop": list(capabilities.get("drop") or []),
            "CapAdd": list(capabilities.get("add") or []),
            "Init": bool(linux.get("initProcessEnabled")),
            "Memory": memory_mib * _MIB,
            "MemorySwap": memory_mib * _MIB,  # Fargate has no swap
            "NanoCpus": int(record.cpu_units / 1024 * 1e9),  # the task's vCPUs are a hard quota
            "NetworkMode": self.task_network,
            "Mounts": [],
            "RestartPolicy": {"Name": "no"},
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "1"}},
        }
        reservation = override.get("memoryReservation") or container.get("memoryReservation")
        if reservation:
            host["MemoryReservation"] = int(reservation) * _MIB
        cpu_shares = override.get("cpu") or container.get("cpu")
        if cpu_shares:
            host["CpuShares"] = max(2, int(cpu_shares))
        declared = self._declared_volumes(record.image)
        volumes = {v["name"] for v in definition.get("volumes") or []}
        for mount in container.get("mountPoints") or []:
            if mount.get("sourceVolume") not in volumes:
                raise _TaskFailed("ClientException", f"unknown volume {mount.get('sourceVolume')!r}")
            path = str(mount["containerPath"])
            host["Mounts"].append(
                {
                    "Type": "volume",
                    "Source": self._volume_name(record, str(mount["sourceVolume"])),
                    "Target": path,
                    "ReadOnly": bool(mount.get("readOnly")),
                    # Fargate: a root-owned mount point, unless the image declares the path a VOLUME.
                    "VolumeOptions": {"NoCopy": path.rstrip("/") not in declared},
                }
            )
        config: dict[str, Any] = {
            "Image": record.image,
            "Env": [f"{k}={v}" for k, v in env.items()],
            "Labels": {LABEL: self.name, PID_LABEL: str(os.getpid()), TASK_LABEL: record.arn},
            "StopTimeout": int(container.get("stopTimeout") or DEFAULT_STOP_TIMEOUT_S),
            "HostConfig": host,
            "NetworkingConfig": {"EndpointsConfig": {self.task_network: {}}},
        }
        if container.get("user"):
            config["User"] = str(container["user"])
        if container.get("workingDirectory"):
            config["WorkingDir"] = str(container["workingDirectory"])
        if override.get("command") or container.get("command"):
            config["Cmd"] = list(override.get("command") or container["command"])
        if container.get("entryPoint"):
            config["Entrypoint"] = list(container["entryPoint"])
        return config

    def _declared_volumes(self, image: str) -> set[str]:
        if image not in self._image_volumes:
            try:
                info = self.engine.call("GET", f"/images/{image}/json").json()
            except DockerApiError as exc:
                raise _TaskFailed("CannotPullContainerError", f"{image}: {exc.message}") from None
            declared = (info.get("Config") or {}).get("Volumes") or {}
            self._image_volumes[image] = {str(path).rstrip("/") for path in declared}
        return self._image_volumes[image]

    def _volume_name(self, record: StandInTask, volume: str) -> str:
        return f"{self.name}-{record.task_id}-{volume}"

    def _create_volumes(
        self, record: StandInTask, definition: dict[str, Any], container: dict[str, Any]
    ) -> None:
        used = {m.get("sourceVolume") for m in container.get("mountPoints") or []}
        for volume in definition.get("volumes") or []:
            if volume["name"] not in used:
                continue
            name = self._volume_name(record, volume["name"])
            self.engine.call(
                "POST",
                "/volumes/create",
                body={"Name": name, "Labels": {LABEL: self.name, PID_LABEL: str(os.getpid())}},
                ok=(201,),
            )
            record.volumes.append(name)

    def _allows_egress(self, request: dict[str, Any]) -> bool:
        """A security group with an egress rule to 0.0.0.0/0 (any port: ports are not emulated)."""
        groups = ((request.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}).get(
            "securityGroups"
        ) or []
        if not groups:
            return False
        described = self._moto_ec2.describe_security_groups(GroupIds=groups)["SecurityGroups"]
        return any(
            r.get("CidrIp") == "0.0.0.0/0"
            for group in described
            for rule in group.get("IpPermissionsEgress") or []
            for r in rule.get("IpRanges") or []
        )

    # -- StopTask, exits and removal -----------------------------------------------------------------
    def _stop_later(self, arn: str, reason: str) -> None:
        record = self.task(arn)
        if record is None or record.stopping or record.stopped:
            return
        record.stopping = True
        record.stop_code, record.stop_reason = "UserInitiated", reason or "Task stopped by user"

        def stop() -> None:
            with contextlib.suppress(DockerApiError):
                timeout = DEFAULT_STOP_TIMEOUT_S
                with contextlib.suppress(DockerApiError, KeyError):
                    info = self.engine.call("GET", f"/containers/{record.container_id}/json").json()
                    timeout = int(info["Config"].get("StopTimeout") or timeout)
                self.engine.call(
                    "POST",
                    f"/containers/{record.container_id}/stop",
                    params={"t": str(timeout)},
                    ok=(204, 304, 404),
                    timeout=timeout + 30,
                )
            self._remove(record, ship_logs=True)

        thread = threading.Thread(target=stop, name=f"ecs-standin-stop-{record.task_id}", daemon=True)
        self._stoppers.append(thread)
        thread.start()

    def _remove(self, record: StandInTask, *, ship_logs: bool) -> None:
        """Remove the container (its exit code kept) and its volumes; ship its output first."""
        with record.lock:
            if record.stopped:
                return
            if record.container_id:
                with contextlib.suppress(DockerApiError):
                    state = self.engine.call("GET", f"/containers/{record.container_id}/json").json()["State"]
                    if not state.get("Running"):
                        record.exit_code = int(state.get("ExitCode", 0))
                if ship_logs:
                    with contextlib.suppress(Exception):
                        self._ship_logs(record)
                with contextlib.suppress(DockerApiError):
                    self.engine.call(
                        "DELETE",
                        f"/containers/{record.container_id}",
                        params={"force": "true", "v": "true"},
                        ok=(204, 404),
                    )
            for volume in record.volumes:
                with contextlib.suppress(DockerApiError):
                    self.engine.call("DELETE", f"/volumes/{volume}", params={"force": "true"}, ok=(204, 404))
            record.stopped = True

    # -- what DescribeTasks says ---------------------------------------------------------------------
    def _present(self, task: dict[str, Any]) -> None:
        """Rewrite one task of an answer with its container's address and state."""
        record = self.task(str(task.get("taskArn", "")))
        if record is None:
            return
        state = self._container_state(record)
        if state == "exited" and not record.stopping:
            # The essential container exited by itself: ECS stops the task (ListTasks drops it).
            record.stopping = True
            record.stop_code, record.stop_reason = (
                "EssentialContainerExited",
                "Essential container in task exited",
            )
            self._remove(record, ship_logs=True)
            with contextlib.suppress(Exception):
                self._moto_ecs.stop_task(
                    cluster=record.cluster_arn, task=record.arn, reason=record.stop_reason
                )
            state = "gone"
        status = {
            "created": "PENDING",
            "running": "DEACTIVATING" if record.stopping else "RUNNING",
            "exited": "STOPPING",
            "gone": "STOPPED",
        }[state]
        task["lastStatus"] = status
        if status == "STOPPED":
            task["desiredStatus"] = "STOPPED"
            task["stopCode"] = record.stop_code or "TaskFailedToStart"
            task["stoppedReason"] = record.stop_reason
        elif record.stopping:
            task["desiredStatus"] = "STOPPED"
        if record.started_at:
            task["startedAt"] = record.started_at.timestamp()
        for attachment in task.get("attachments") or []:
            for detail in attachment.get("details") or []:
                if detail.get("name") == "privateIPv4Address":
                    detail["value"] = record.ip or None
            attachment["details"] = [d for d in attachment.get("details") or [] if d.get("value") is not None]
        for container in task.get("containers") or []:
            container["lastStatus"] = status if status != "DEACTIVATING" else "RUNNING"
            if record.container_id:
                container["runtimeId"] = record.container_id
            if status == "STOPPED":
                if record.exit_code is not None:
                    container["exitCode"] = record.exit_code
                if record.stop_code == "TaskFailedToStart":
                    container["reason"] = record.stop_reason
            for interface in container.get("networkInterfaces") or []:
                interface["privateIpv4Address"] = record.ip

    def _container_state(self, record: StandInTask) -> str:
        if record.stopped or not record.container_id:
            return "gone"
        try:
            status = self.engine.call("GET", f"/containers/{record.container_id}/json").json()["State"][
                "Status"
            ]
        except DockerApiError:
            return "gone"
        return {"created": "created", "running": "running", "restarting": "running"}.get(
            str(status), "exited"
        )

    # -- CloudWatch Logs (the awslogs driver) --------------------------------------------------------
    def _ship_logs_of_stream(self, stream: str) -> None:
        task_id = stream.rsplit("/", 1)[-1]
        with self._lock:
            record = next((t for t in self._tasks.values() if t.task_id == task_id), None)
        if record is not None and not record.stopped:
            with record.lock:
                self._ship_logs(record)

    def _ship_logs(self, record: StandInTask) -> None:
        """Put the container's lines not shipped yet into its awslogs stream (group made if missing)."""
        if record.log_options is None or not record.container_id:
            return
        params = {"stdout": "1", "stderr": "1", "timestamps": "1"}
        if record.logs_shipped_ns:
            params["since"] = str(record.logs_shipped_ns // 1_000_000_000)
        try:
            raw = self.engine.call("GET", f"/containers/{record.container_id}/logs", params=params).content
        except DockerApiError:
            return
        events: list[dict[str, Any]] = []
        last = record.logs_shipped_ns
        for line in demux_logs(raw).decode("utf-8", "replace").splitlines():
            stamp, _, message = line.partition(" ")
            ns = _rfc3339_ns(stamp)
            if ns is None or ns <= record.logs_shipped_ns:
                continue
            events.append({"timestamp": ns // 1_000_000, "message": message or " "})
            last = max(last, ns)
        if not events:
            return
        group, stream = record.log_options.get("awslogs-group", ""), record.log_stream
        for make, kwargs in (
            (self._moto_logs.create_log_group, {"logGroupName": group}),
            (self._moto_logs.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
        ):
            with contextlib.suppress(self._moto_logs.exceptions.ResourceAlreadyExistsException):
                make(**kwargs)
        for i in range(0, len(events), 10000):
            self._moto_logs.put_log_events(
                logGroupName=group, logStreamName=stream, logEvents=events[i : i + 10000]
            )
        record.logs_shipped_ns = last

    # -- the task metadata endpoint v4 ---------------------------------------------------------------
    def _metadata(self, environ: dict[str, Any], start_response: Any) -> Any:
        """`GET /v4/<task id>` (the container), `/task`, `/stats`, `/task/stats`: answered only to the
        task itself (its own address asks), as Fargate's per-task link-local endpoint is."""
        parts = environ.get("PATH_INFO", "").strip("/").split("/")
        record = None
        if len(parts) >= 2 and parts[0] == "v4":
            with self._lock:
                record = next((t for t in self._tasks.values() if t.task_id == parts[1]), None)
        if (
            record is None
            or environ.get("REMOTE_ADDR") not in record.ips
            or environ.get("REQUEST_METHOD") != "GET"
        ):
            return Response("not found", status=404)(environ, start_response)
        rest = "/".join(parts[2:])
        container = self._container_metadata(record)
        payload: Any
        if rest == "":
            payload = container
        elif rest == "task":
            payload = {
                "Cluster": record.cluster_arn,
                "TaskARN": record.arn,
                "Family": record.family,
                "Revision": str(record.revision),
                "DesiredStatus": "STOPPED" if record.stopping else "RUNNING",
                "KnownStatus": "RUNNING" if record.started_at and not record.stopping else "PENDING",
                "Limits": {"CPU": record.cpu_units / 1024, "Memory": record.memory_mib},
                "PullStartedAt": _iso(record.created_at),
                "PullStoppedAt": _iso(record.created_at),
                "AvailabilityZone": f"{self.region}a",
                "LaunchType": "FARGATE",
                "Containers": [container],
            }
        elif rest in ("stats", "task/stats"):
            payload = {}
        else:
            return Response("not found", status=404)(environ, start_response)
        return Response(json.dumps(payload), content_type="application/json")(environ, start_response)

    def _container_metadata(self, record: StandInTask) -> dict[str, Any]:
        return {
            "DockerId": record.container_id,
            "Name": record.container_name,
            "DockerName": f"{self.name}-{record.task_id}",
            "Image": record.image,
            "Labels": {
                "com.amazonaws.ecs.cluster": record.cluster_arn,
                "com.amazonaws.ecs.container-name": record.container_name,
                "com.amazonaws.ecs.task-arn": record.arn,
                "com.amazonaws.ecs.task-definition-family": record.family,
                "com.amazonaws.ecs.task-definition-version": str(record.revision),
            },
            "DesiredStatus": "STOPPED" if record.stopping else "RUNNING",
            "KnownStatus": "RUNNING" if record.started_at else "PENDING",
            "Limits": {"CPU": record.cpu_units, "Memory": record.memory_mib},
            "CreatedAt": _iso(record.created_at),
            "StartedAt": _iso(record.started_at) if record.started_at else None,
            "Type": "NORMAL",
            "LaunchType": "FARGATE",
            "ContainerARN": f"{record.arn.replace(':task/', ':container/')}/{record.container_name}",
            "LogDriver": "awslogs" if record.log_options else "json-file",
            "LogOptions": record.log_options or {},
            "Networks": [
                {
                    "NetworkMode": "awsvpc",
                    "IPv4Addresses": [record.ip] if record.ip else [],
                    "AttachmentIndex": 0,
                    "IPv4SubnetCIDRBlock": "",
                    "SubnetGatewayIpv4Address": f"{self.gateway}/16",
                }
            ],
        }


class _QuietHandler(WSGIRequestHandler):
    """No access log: the adapter polls DescribeTasks, a line per call would drown everything else."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _TaskFailed(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code, self.reason = code, reason


def _unfence(chain: str, bridges: list[str]) -> None:
    for bridge in bridges:
        _iptables("-D", "INPUT", "-i", bridge, "-j", chain, check=False)
    _iptables("-F", chain, check=False)
    _iptables("-X", chain, check=False)


def _dead_pids_filter(labels: dict[str, str] | None) -> bool:
    pid = (labels or {}).get(PID_LABEL, "")
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _rfc3339_ns(stamp: str) -> int | None:
    """`2026-11-30T08:32:55.308123456Z` (Docker's timestamps) -> nanoseconds since the epoch."""
    try:
        whole, _, fraction = stamp.rstrip("Z").partition(".")
        seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
        return int(seconds) * 1_000_000_000 + int((fraction or "0").ljust(9, "0")[:9])
    except ValueError:
        return None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
