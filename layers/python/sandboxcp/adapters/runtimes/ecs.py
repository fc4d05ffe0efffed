"""The `ecs` runtime: one Fargate task per session, started with RunTask.

Each template has a task definition registered by the deployment, named
`<ECS_TASK_DEFINITION_PREFIX><template id>`; the template id is the last path segment of the template's image
without tag or digest (`sandboxcp/python-basic:latest` -> `python-basic`). The task definition pins the
image and the hardening (uid 1000, read-only root, capabilities dropped, no task role); RunTask adds the
per-session parts as overrides: the executor's environment (with the session's callback token), task-level
cpu/memory rounded up to a valid Fargate size, a container-level hard memory limit of exactly what the
session asked for, and ephemeral storage when the disk is larger than Fargate's default 20 GiB.

Before the first launch with a task definition the adapter reads it once (per process) and refuses to run
a sandbox under one that would hand the sandbox AWS credentials or weaker isolation (see
`task_definition_problems`). The executor listens on TCP 8080 inside the task's awsvpc ENI and reports its
own address in `container_ready` (from the ECS task metadata endpoint), so `start` returns no executor URL.
Logs go to CloudWatch Logs through the awslogs driver with stream prefix `sandbox`.
"""

from __future__ import annotations

import math
import re
import threading
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
        ecs_client: Any = None,
        logs_client: Any = None,
    ) -> None:
        self.cluster = cluster
        self.subnets = subnets
        self.security_groups = security_groups
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
    def start(self, spec: SandboxSpec) -> SandboxHandle:
        from botocore.exceptions import BotoCoreError, ClientError

        if not (self.cluster and self.subnets and self.security_groups):
            raise SandboxUnavailable("the ecs runtime needs ECS_CLUSTER, ECS_SUBNETS and ECS_SECURITY_GROUPS")
        task_definition = self.task_definition_prefix + template_id_from_image(spec.image)
        try:
            self._check_task_definition(task_definition)
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
        return SandboxHandle(container_id=tasks[0]["taskArn"], node=f"ecs:{self.cluster}", executor_url=None)

    def destroy(self, container_id: str) -> None:
        from botocore.exceptions import ClientError

        if self._describe(container_id) in (None, "STOPPED", "DELETED"):
            return
        try:
            self.ecs.stop_task(cluster=self.cluster, task=container_id, reason="sandbox terminated")
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
                        container_id=task["taskArn"],
                        session_id=tags.get("sandboxcp:session") or None,
                        state=_STATES.get(str(task.get("lastStatus") or ""), "creating"),
                    )
                )
        return found

    # -- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def log_stream(container_id: str) -> str:
        """awslogs names streams `<stream prefix>/<container name>/<task id>`."""
        return f"{LOG_STREAM_PREFIX}/{CONTAINER_NAME}/{container_id.rsplit('/', 1)[-1]}"

    def run_task_request(self, spec: SandboxSpec, task_definition: str) -> dict[str, Any]:
        cpu_units = math.ceil(spec.resources.cpu_cores * 1024)
        task_cpu, task_memory = fargate_size(spec.resources.cpu_cores, spec.resources.memory_mb)
        environment = {
            **spec.env,
            # Not bound after start yet on ECS (the address is known only once the task runs): the
            # token travels in the environment; the executor's supervisor moves it out of reach of user
            # code (docs/security.md says what that does and does not cover).
            **({"SANDBOXCP_CALLBACK_TOKEN": spec.callback_token} if spec.callback_token else {}),
            "SANDBOXCP_LISTEN": f"tcp:0.0.0.0:{EXECUTOR_PORT}",
            "SANDBOXCP_CALLBACK_URL": self.callback_base_url,
            "SANDBOXCP_WORKSPACE": "/workspace",
            "HOME": "/workspace",
        }
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
                    "securityGroups": self.security_groups,
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

    def _check_task_definition(self, task_definition: str) -> None:
        if task_definition in self._checked:
            return
        described = self.ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
        problems = task_definition_problems(described)
        if problems:
            raise SandboxUnavailable(
                f"task definition '{task_definition}' is not fit for sandboxes: {'; '.join(problems)}"
            )
        self._checked.add(task_definition)

    def executor_url(self, container_id: str) -> str | None:
        """The executor's address from ECS itself (the task ENI's private IPv4), never from the task."""
        response = self.ecs.describe_tasks(cluster=self.cluster, tasks=[container_id])
        for task in response.get("tasks") or []:
            for attachment in task.get("attachments") or []:
                details = {d.get("name"): d.get("value") for d in attachment.get("details") or []}
                if details.get("privateIPv4Address"):
                    return f"http://{details['privateIPv4Address']}:{EXECUTOR_PORT}"
        return None

    def _describe(self, container_id: str) -> str | None:
        """The task's lastStatus, or None when ECS does not know it (never existed, or stopped long ago)."""
        response = self.ecs.describe_tasks(cluster=self.cluster, tasks=[container_id])
        for task in response.get("tasks") or []:
            if task.get("taskArn") == container_id or task.get("taskArn", "").endswith(
                "/" + container_id.rsplit("/", 1)[-1]
            ):
                return str(task.get("lastStatus") or "PROVISIONING")
        return None


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _client_config() -> Any:
    from botocore.config import Config

    return Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"})
