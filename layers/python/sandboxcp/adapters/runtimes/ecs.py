"""The `ecs` runtime: one Fargate task per session, started with RunTask.

Task definitions. A default template's image (`sandboxcp/<name>:<tag>`, no registry: an image the
deployment builds as a CDK asset) runs under the deployment's task definition `<prefix><name>`. Any other
image (a template created or updated through the API) runs under a task definition this adapter registers
on first use, one per image reference: family `<prefix><name>-<sha256(image)[:12]>`, hardened like the
deployment's (uid 1000, read-only root, every capability dropped, no init, no task role, /tmp and
/workspace on task volumes, awslogs), with ECS_EXECUTION_ROLE_ARN as its execution role. A PUT that
changes a template's image therefore changes its task definition. Before the first launch with a task
definition the adapter reads it once (per process) and refuses one that would hand the sandbox AWS
credentials or weaker isolation (`task_definition_problems`).

No secret in RunTask. RunTask's overrides are recorded by CloudTrail and returned by DescribeTasks, so they
carry only the control plane's own `SANDBOXCP_*` variables (session or pool id, listen address, callback
URL): the executor starts unbound, listening on TCP 8080 in the task's awsvpc ENI; `start` waits until ECS
reports the task RUNNING, and returns the executor's address from DescribeTasks (the ENI's private IPv4,
never what the task says); the launch (or a warm-pool claim) then binds it with `POST /bind` carrying the
callback token and the session's environment variables. Overrides stay far below RunTask's 8 KiB limit
(checked: `MAX_OVERRIDES_CHARS`); the session's variables are capped by the API (contract.MAX_ENV_*) and
by the executor's bind (identity.MAX_BIND_ENV_*), see docs/runtimes-cloud.md.

Per-session parts are overrides: task-level cpu/memory rounded up to a valid Fargate size, a
container-level hard memory limit of exactly what the session asked for, and ephemeral storage when the
disk is larger than Fargate's default 20 GiB. Network: ECS_SECURITY_GROUPS (egress to the internal API and
S3 only) unless the template allows network, then ECS_OPEN_SECURITY_GROUPS. Logs go to CloudWatch Logs
through the awslogs driver with stream prefix `sandbox`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.ports import ManagedSandbox, SandboxHandle, SandboxSpec, SandboxState

if TYPE_CHECKING:
    from sandboxcp.settings import Settings

CONTAINER_NAME = "executor"
LOG_STREAM_PREFIX = "sandbox"
EXECUTOR_PORT = 8080
SANDBOX_UID = 1000
FARGATE_DEFAULT_EPHEMERAL_GIB = 20
# AWS limits RunTask's overrides to 8,192 characters (JSON); ours hold a handful of SANDBOXCP_* variables.
MAX_OVERRIDES_CHARS = 8192
# A Fargate task reaches RUNNING after its ENI is attached and its image pulled: usually 10-60 s. The
# launch step's function has 120 s; the bind that follows waits up to 30 s for the executor to listen.
START_WAIT_S = 80.0
DEPLOYMENT_IMAGE_PREFIX = "sandboxcp/"  # default templates' images, built by the deployment
TASK_VOLUMES = {"tmp": "/tmp", "workspace": "/workspace"}
FARGATE_MAX_EPHEMERAL_GIB = 200

# Valid Fargate task sizes: cpu units -> the memory sizes (MiB) allowed with it, ascending.
FARGATE_SIZES: tuple[tuple[int, tuple[int, ...]], ...] = (
    (256, (512, 1024, 2048)),
    (512, tuple(range(1024, 4096 + 1, 1024))),
    (1024, tuple(range(2048, 8192 + 1, 1024))),
    (2048, tuple(range(4096, 16384 + 1, 1024))),
    (4096, tuple(range(8192, 30720 + 1, 1024))),
    (8192, tuple(range(16384, 61440 + 1, 4096))),
    (16384, tuple(range(32768, 122880 + 1, 8192))),
)

DESCRIBE_BATCH = 100  # tasks per DescribeTasks, ECS's most
_STATES: dict[str, SandboxState] = {
    "PROVISIONING": "creating",
    "PENDING": "creating",
    "ACTIVATING": "creating",
    "RUNNING": "running",
    "DEACTIVATING": "exited",
    "STOPPING": "exited",
    "DEPROVISIONING": "exited",
    "STOPPED": "exited",
    "DELETED": "exited",
}

_FAMILY_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def fargate_size(cpu_cores: float, memory_mb: int) -> tuple[int, int]:
    """The smallest valid Fargate (cpu units, memory MiB) pair with at least the requested cpu and memory."""
    cpu_units = math.ceil(cpu_cores * 1024)
    for cpu, memories in FARGATE_SIZES:
        if cpu < cpu_units:
            continue
        for memory in memories:
            if memory >= memory_mb:
                return cpu, memory
    raise SandboxUnavailable(f"no Fargate task size fits cpu={cpu_cores} memory={memory_mb}Mi")


def template_id_from_image(image: str) -> str:
    """`registry:5000/sandboxcp/python-basic:latest` (or `...@sha256:...`) -> `python-basic`."""
    name = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    if not _FAMILY_RE.match(name):
        raise SandboxUnavailable(f"cannot derive an ECS task definition from image '{image}'")
    return name


def is_deployment_image(image: str) -> bool:
    """`sandboxcp/<name>[:tag]` without a registry: an image the deployment builds and registers itself."""
    first = image.split("/", 1)[0]
    return image.startswith(DEPLOYMENT_IMAGE_PREFIX) and not ("." in first or ":" in first)


def task_definition_family(prefix: str, image: str) -> str:
    """The task definition an image runs under: the deployment's `<prefix><name>` for its own images, else
    `<prefix><name>-<12 hex of sha256(image)>` (one per image reference: a changed image, a new family)."""
    name = template_id_from_image(image)
    if is_deployment_image(image):
        return prefix + name
    digest = hashlib.sha256(image.encode()).hexdigest()[:12]
    return f"{prefix}{name[: 255 - len(prefix) - 13]}-{digest}"


def task_definition_problems(task_definition: dict[str, Any]) -> list[str]:
    """Why a task definition must not run sandboxes (empty when it may)."""
    problems: list[str] = []
    if task_definition.get("taskRoleArn"):
        problems.append("it has a task role (sandboxes must hold no cloud credentials)")
    containers = {c.get("name"): c for c in task_definition.get("containerDefinitions", [])}
    container = containers.get(CONTAINER_NAME)
    if container is None:
        return [*problems, f"it has no container named '{CONTAINER_NAME}'"]
    if len(containers) != 1:
        problems.append("it has containers besides the executor")
    user = str(container.get("user") or "")
    if user.split(":", 1)[0] != str(SANDBOX_UID):
        problems.append(f"the executor does not run as uid {SANDBOX_UID} (user '{user}')")
    if not container.get("readonlyRootFilesystem"):
        problems.append("the executor's root filesystem is writable")
    if container.get("privileged"):
        problems.append("the executor is privileged")
    drops = container.get("linuxParameters", {}).get("capabilities", {}).get("drop", [])
    if "ALL" not in drops:
        problems.append("the executor does not drop ALL capabilities")
    return problems


class EcsRuntime:
    name = "ecs"

    def __init__(
        self,
        *,
        cluster: str,
        subnets: list[str],
        security_groups: list[str],
        task_definition_prefix: str = "sandboxcp-",
        log_group: str = "",
        callback_base_url: str = "",
        region: str = "us-east-1",
        open_security_groups: list[str] | None = None,
        execution_role_arn: str = "",
        start_wait_s: float = START_WAIT_S,
        ecs_client: Any = None,
        logs_client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cluster = cluster
        self.subnets = subnets
        self.security_groups = security_groups
        self.open_security_groups = open_security_groups or []
        self.execution_role_arn = execution_role_arn
        self.start_wait_s = start_wait_s
        self._sleep = sleep
        self.task_definition_prefix = task_definition_prefix
        self.log_group = log_group
        self.callback_base_url = callback_base_url
        self.region = region
        self._ecs = ecs_client
        self._logs = logs_client
        self._lock = threading.Lock()
        self._checked: set[str] = set()  # task definitions already found fit for sandboxes

    @classmethod
    def from_settings(cls, settings: Settings) -> EcsRuntime:
        return cls(
            cluster=settings.ecs_cluster,
            subnets=_csv(settings.ecs_subnets),
            security_groups=_csv(settings.ecs_security_groups),
            task_definition_prefix=settings.ecs_task_definition_prefix,
            log_group=settings.ecs_log_group,
            callback_base_url=settings.callback_base_url,
            region=settings.aws_region,
            open_security_groups=_csv(settings.ecs_open_security_groups),
            execution_role_arn=settings.ecs_execution_role_arn,
        )

    # -- clients (created on first use) -----------------------------------------------------------
    @property
    def ecs(self) -> Any:
        if self._ecs is None:
            with self._lock:
                if self._ecs is None:
                    import boto3

                    self._ecs = boto3.client("ecs", region_name=self.region, config=_client_config())
        return self._ecs

    @property
    def logs_client(self) -> Any:
        if self._logs is None:
            with self._lock:
                if self._logs is None:
                    import boto3

                    self._logs = boto3.client("logs", region_name=self.region, config=_client_config())
        return self._logs

    # -- Runtime interface ------------------------------------------------------------------------
    addresses_at_start = True  # start returns the ENI's address once the task runs

    @property
    def default_node(self) -> str:
        return f"ecs:{self.cluster}"

    def start(self, spec: SandboxSpec) -> SandboxHandle:
        from botocore.exceptions import BotoCoreError, ClientError

        if not (self.cluster and self.subnets and self.security_groups):
            raise SandboxUnavailable("the ecs runtime needs ECS_CLUSTER, ECS_SUBNETS and ECS_SECURITY_GROUPS")
        try:
            task_definition = self.task_definition_for(spec.image)
            response = self.ecs.run_task(**self.run_task_request(spec, task_definition))
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise SandboxUnavailable(
                f"ECS RunTask failed: {err.get('Code', 'Error')}: {err.get('Message', exc)}"
            ) from exc
        except BotoCoreError as exc:
            raise SandboxUnavailable(f"ECS RunTask failed: {exc}") from exc
        failures = response.get("failures") or []
        tasks = response.get("tasks") or []
        if failures or not tasks:
            reasons = "; ".join(
                f"{f.get('reason', 'unknown')}" + (f" ({f['detail']})" if f.get("detail") else "")
                for f in failures
            )
            raise SandboxUnavailable(f"ECS could not start the sandbox: {reasons or 'no task started'}")
        # The task id, not the ARN: ECS takes either (with the cluster), and the id is a plain path segment
        # in the API's /containers/{id} and in awslogs stream names.
        task_id = task_id_of(str(tasks[0]["taskArn"]))
        try:
            executor_url = self._wait_until_running(task_id, first=tasks[0])
        except Exception:
            self._stop(task_id, "sandbox did not start")  # a task we gave up on must not run on
            raise
        return SandboxHandle(container_id=task_id, node=self.default_node, executor_url=executor_url)

    def _wait_until_running(self, task_arn: str, first: dict[str, Any] | None = None) -> str:
        """The executor's address once ECS reports the task RUNNING (its container started): polled with
        DescribeTasks, 50 ms doubling to 2 s, within `start_wait_s`. `first`: the task as RunTask
        answered, read before the first DescribeTasks (ECS answers PROVISIONING; a task already running
        there, as on an EC2 host with the image cached, needs no DescribeTasks)."""
        deadline = time.monotonic() + self.start_wait_s
        delay = 0.05
        while True:
            task, first = first or self._describe_task(task_arn), None
            status = str(task.get("lastStatus") or "") if task else ""
            if status == "RUNNING" and task is not None and (ip := _eni_ipv4(task)):
                return _executor_url(ip)
            if task is not None and (status in ("STOPPED", "DELETED") or _STATES.get(status) == "exited"):
                reasons = [str(task.get("stoppedReason") or status)] + [
                    str(c["reason"]) for c in task.get("containers") or [] if c.get("reason")
                ]
                raise SandboxUnavailable(f"the sandbox task stopped while starting: {'; '.join(reasons)}")
            if time.monotonic() >= deadline:
                raise SandboxUnavailable(
                    f"the sandbox task was not running after {self.start_wait_s:.0f} s (last status"
                    f" {status or 'unknown'})"
                )
            self._sleep(delay)
            delay = min(delay * 2, 2.0)

    def destroy(self, container_id: str) -> None:
        if self._describe(container_id) in (None, "STOPPED", "DELETED"):
            return
        self._stop(container_id, "sandbox terminated")

    def _stop(self, container_id: str, reason: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.ecs.stop_task(cluster=self.cluster, task=container_id, reason=reason)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            # "The referenced task was not found." - it went away between describe and stop
            if "not found" not in str(err.get("Message", "")).lower():
                raise

    def state(self, container_id: str) -> SandboxState:
        status = self._describe(container_id)
        if status is None:
            return "missing"
        return _STATES.get(status, "creating")

    def states(self, container_ids: Sequence[str]) -> dict[str, SandboxState]:
        """One DescribeTasks per 100 tasks (its most)."""
        from botocore.exceptions import BotoCoreError, ClientError

        wanted = list(dict.fromkeys(container_ids))
        found: dict[str, SandboxState] = {}
        for start in range(0, len(wanted), DESCRIBE_BATCH):
            batch = wanted[start : start + DESCRIBE_BATCH]
            try:
                tasks = self.ecs.describe_tasks(cluster=self.cluster, tasks=batch).get("tasks") or []
            except (BotoCoreError, ClientError) as exc:
                raise SandboxUnavailable(f"ECS DescribeTasks failed: {type(exc).__name__}") from exc
            by_id = {task_id_of(str(t.get("taskArn", ""))): t for t in tasks}
            for container_id in batch:
                task = by_id.get(task_id_of(container_id))
                status = None if task is None else str(task.get("lastStatus") or "PROVISIONING")
                found[container_id] = "missing" if status is None else _STATES.get(status, "creating")
        return found

    def logs(self, container_id: str, tail: int = 100, since: datetime | None = None) -> list[str]:
        """The executor's last `tail` log lines (optionally only those at or after `since`)."""
        from botocore.exceptions import ClientError

        if tail <= 0 or not self.log_group:
            return []
        request: dict[str, Any] = {
            "logGroupName": self.log_group,
            "logStreamName": self.log_stream(container_id),
            "limit": min(tail, 10000),
            "startFromHead": False,
        }
        if since is not None:
            since = since if since.tzinfo else since.replace(tzinfo=UTC)  # naive means UTC
            request["startTime"] = int(since.timestamp() * 1000)
        try:
            events = self.logs_client.get_log_events(**request).get("events", [])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []
            raise
        return [str(e.get("message", "")).rstrip("\n") for e in events][-tail:]

    def list_managed(self) -> list[ManagedSandbox]:
        """Every sandbox task of the cluster not yet told to stop (tagged `sandboxcp:managed`)."""
        arns: list[str] = []
        for page in self.ecs.get_paginator("list_tasks").paginate(
            cluster=self.cluster, desiredStatus="RUNNING"
        ):
            arns.extend(page.get("taskArns", []))
        found: list[ManagedSandbox] = []
        for i in range(0, len(arns), 100):  # DescribeTasks takes at most 100
            response = self.ecs.describe_tasks(
                cluster=self.cluster, tasks=arns[i : i + 100], include=["TAGS"]
            )
            for task in response.get("tasks") or []:
                tags = {t.get("key"): t.get("value") for t in task.get("tags") or []}
                if tags.get("sandboxcp:managed") != "true":
                    continue
                found.append(
                    ManagedSandbox(
                        container_id=task_id_of(task["taskArn"]),
                        session_id=tags.get("sandboxcp:session") or None,
                        state=_STATES.get(str(task.get("lastStatus") or ""), "creating"),
                    )
                )
        return found

    def ping(self) -> bool:
        """DescribeClusters answers and the sandbox cluster is ACTIVE (the health check)."""
        clusters = self.ecs.describe_clusters(clusters=[self.cluster]).get("clusters") or []
        return any(c.get("status") == "ACTIVE" for c in clusters)

    # -- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def log_stream(container_id: str) -> str:
        """awslogs names streams `<stream prefix>/<container name>/<task id>`."""
        return f"{LOG_STREAM_PREFIX}/{CONTAINER_NAME}/{container_id.rsplit('/', 1)[-1]}"

    def run_task_request(self, spec: SandboxSpec, task_definition: str) -> dict[str, Any]:
        cpu_units = math.ceil(spec.resources.cpu_cores * 1024)
        task_cpu, task_memory = fargate_size(spec.resources.cpu_cores, spec.resources.memory_mb)
        # Only the control plane's own variables (session or pool id, S3 route): RunTask's overrides are
        # recorded by CloudTrail and DescribeTasks. The callback token and the session's variables reach
        # the executor in the bind body (ports.SandboxSpec); reserved names keep user variables out of here.
        environment = {
            **{k: v for k, v in spec.env.items() if k.startswith("SANDBOXCP_")},
            "SANDBOXCP_LISTEN": f"tcp:0.0.0.0:{EXECUTOR_PORT}",
            "SANDBOXCP_CALLBACK_URL": self.callback_base_url,
            "SANDBOXCP_WORKSPACE": "/workspace",
            "HOME": "/workspace",
        }
        if spec.network_enabled and not self.open_security_groups:
            raise SandboxUnavailable(
                "the template allows network but this deployment has no open security group",
                solution="Set ECS_OPEN_SECURITY_GROUPS, or turn the template's network off",
            )
        security_groups = self.open_security_groups if spec.network_enabled else self.security_groups
        overrides: dict[str, Any] = {
            "cpu": str(task_cpu),
            "memory": str(task_memory),
            "containerOverrides": [
                {
                    "name": CONTAINER_NAME,
                    "environment": [{"name": k, "value": v} for k, v in environment.items()],
                    "cpu": cpu_units,
                    "memory": spec.resources.memory_mb,  # hard limit: exactly what the session asked for
                }
            ],
        }
        if len(json.dumps(overrides)) > MAX_OVERRIDES_CHARS:
            raise SandboxUnavailable(f"RunTask overrides would exceed {MAX_OVERRIDES_CHARS} characters")
        disk_gib = math.ceil(spec.resources.disk_mb / 1024)
        if disk_gib > FARGATE_DEFAULT_EPHEMERAL_GIB:
            overrides["ephemeralStorage"] = {"sizeInGiB": min(disk_gib, FARGATE_MAX_EPHEMERAL_GIB)}
        return {
            "cluster": self.cluster,
            "taskDefinition": task_definition,
            "launchType": "FARGATE",
            "count": 1,
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": self.subnets,
                    "securityGroups": security_groups,
                    "assignPublicIp": "DISABLED",
                }
            },
            "overrides": overrides,
            "startedBy": spec.session_id[:128],
            "enableExecuteCommand": False,
            # Tags are readable by anyone who may list tasks: the session id only, never the token.
            "tags": [
                {"key": "sandboxcp:session", "value": spec.session_id},
                {"key": "sandboxcp:managed", "value": "true"},
                {"key": "sandboxcp:network", "value": "enabled" if spec.network_enabled else "disabled"},
            ],
        }

    def task_definition_for(self, image: str) -> str:
        """The family `image` runs under (see the module docstring), registered first when it is a
        template's own image without one yet, and checked fit for sandboxes once per process."""
        family = task_definition_family(self.task_definition_prefix, image)
        if family in self._checked:
            return family
        from botocore.exceptions import ClientError

        try:
            described = self.ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        except ClientError:
            if is_deployment_image(image):
                raise  # the deployment registers these; a missing one is a deployment error
            described = self.ecs.register_task_definition(**self.task_definition_request(family, image))[
                "taskDefinition"
            ]
        problems = task_definition_problems(described)
        images = {c.get("image") for c in described.get("containerDefinitions", [])}
        if not is_deployment_image(image) and images != {image}:
            problems.append(f"it runs {sorted(map(str, images))}, not {image}")
        if problems:
            raise SandboxUnavailable(
                f"task definition '{family}' is not fit for sandboxes: {'; '.join(problems)}"
            )
        self._checked.add(family)
        return family

    def task_definition_request(self, family: str, image: str) -> dict[str, Any]:
        """A hardened task definition for a template's image: what infra/sandboxcp_infra/ecs_runtime.py
        registers for the default templates. RunTask overrides set each session's size."""
        if not self.execution_role_arn:
            raise SandboxUnavailable(
                f"no task definition for image '{image}' and none can be registered",
                solution="Set ECS_EXECUTION_ROLE_ARN (the sandbox tasks' execution role)",
            )
        container: dict[str, Any] = {
            "name": CONTAINER_NAME,
            "image": image,
            "essential": True,
            "memory": 512,
            "user": f"{SANDBOX_UID}:{SANDBOX_UID}",
            "readonlyRootFilesystem": True,
            "privileged": False,
            # No init: the executor's non-dumpable supervisor is PID 1 and reaps orphans itself.
            "linuxParameters": {"capabilities": {"drop": ["ALL"]}, "initProcessEnabled": False},
            "portMappings": [{"containerPort": EXECUTOR_PORT, "protocol": "tcp"}],
            "mountPoints": [
                {"sourceVolume": name, "containerPath": path, "readOnly": False}
                for name, path in TASK_VOLUMES.items()
            ],
        }
        if self.log_group:
            container["logConfiguration"] = {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": self.log_group,
                    "awslogs-region": self.region,
                    "awslogs-stream-prefix": LOG_STREAM_PREFIX,
                },
            }
        return {
            "family": family,
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
            "executionRoleArn": self.execution_role_arn,
            "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
            "volumes": [{"name": name} for name in TASK_VOLUMES],
            "containerDefinitions": [container],
        }

    def executor_url(self, container_id: str) -> str | None:
        """The executor's address from ECS itself (the task ENI's private IPv4), never from the task."""
        task = self._describe_task(container_id)
        ip = _eni_ipv4(task) if task else None
        return _executor_url(ip) if ip else None

    def _describe_task(self, container_id: str) -> dict[str, Any] | None:
        response = self.ecs.describe_tasks(cluster=self.cluster, tasks=[container_id])
        for task in response.get("tasks") or []:
            if task.get("taskArn") == container_id or task.get("taskArn", "").endswith(
                "/" + container_id.rsplit("/", 1)[-1]
            ):
                return dict(task)
        return None

    def _describe(self, container_id: str) -> str | None:
        """The task's lastStatus, or None when ECS does not know it (never existed, or stopped long ago)."""
        task = self._describe_task(container_id)
        return None if task is None else str(task.get("lastStatus") or "PROVISIONING")


def task_id_of(task_arn: str) -> str:
    """`arn:aws:ecs:<region>:<account>:task/<cluster>/<id>` -> `<id>` (what sessions record)."""
    return task_arn.rsplit("/", 1)[-1]


def _eni_ipv4(task: dict[str, Any]) -> str | None:
    for attachment in task.get("attachments") or []:
        details = {d.get("name"): d.get("value") for d in attachment.get("details") or []}
        if details.get("privateIPv4Address"):
            return str(details["privateIPv4Address"])
    return None


def _executor_url(ip: str) -> str:
    return f"http://[{ip}]:{EXECUTOR_PORT}" if ":" in ip else f"http://{ip}:{EXECUTOR_PORT}"


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _client_config() -> Any:
    from botocore.config import Config

    return Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"})
