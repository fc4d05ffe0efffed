"""The route table: the single source for the CDK API, the per-endpoint Lambda functions and the local
API Gateway emulator. Adding an endpoint is one entry here plus one module under functions/.

Paths are API Gateway resource paths. Path variables share one name per position
({session_id}, {execution_id}, {template_id}) because API Gateway forbids siblings with different names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Api = Literal["public", "internal"]
# api_key: any tenant key; admin: a key with the admin flag; callback: a session's callback token; none: open.
Auth = Literal["api_key", "admin", "callback", "none"]

# What a function may touch; infra turns each into the narrowest IAM grant.
#   <table>:r / <table>:rw  for sessions, executions, templates, api_keys, idempotency
#   workspace:r / workspace:rw  the S3 workspace bucket
#   launch:start  start the launch state machine;  launch:callback  SendTaskSuccess/Failure
#   runtime  drive the deployment's sandbox runtime (ECS/EKS/Docker hosts)
Access = tuple[str, ...]
# Sessions and executions take and give back their tenant's quota share in the same transaction as their
# own writes (sandboxcp.adapters.dynamo.tenants): writing either table implies writing the tenants table.
QUOTA_ACCESS = "tenants:rw"


def _with_quota_access(access: Access) -> Access:
    if ("sessions:rw" in access or "executions:rw" in access) and QUOTA_ACCESS not in access:
        return (*access, QUOTA_ACCESS)
    return access


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    module: str  # functions/<module>.py, exporting `handler`
    api: Api = "public"
    auth: Auth = "api_key"
    access: Access = ()
    timeout_s: int = 29  # API Gateway integrations end at 29 s
    # GET with `?stream=sse` answers text/event-stream; the local gateway holds it open (docs/streaming.md).
    sse: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "access", _with_quota_access(self.access))


@dataclass(frozen=True)
class Job:
    """A function that no HTTP route reaches directly: authorizers, workflow steps, schedules."""

    module: str
    access: Access = ()
    timeout_s: int = 30
    every_s: int | None = None  # periodic jobs only

    def __post_init__(self) -> None:
        object.__setattr__(self, "access", _with_quota_access(self.access))


SR, SRW = "sessions:r", "sessions:rw"
ER, ERW = "executions:r", "executions:rw"
TR, TRW = "templates:r", "templates:rw"
WR, WRW = "workspace:r", "workspace:rw"
CR, CRW = "contexts:r", "contexts:rw"  # code contexts (issue #12)
PRW = "processes:rw"  # background processes (issue #12); every process read may record an exit it learns

ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/v1/health", "health", auth="none", access=(TR, WR, "runtime")),
    Route(
        "POST",
        "/api/v1/sessions",
        "sessions_create",
        # warm_pool, runtime_nodes: the inline claim of a warm sandbox (services/warm_pool.claim_inline),
        # which also binds its executor (network.EXECUTOR_CLIENTS puts the function in the VPC).
        access=(SRW, TR, "launch:start", "idempotency:rw", "warm_pool:rw", "runtime_nodes:rw"),
    ),
    Route("GET", "/api/v1/sessions", "sessions_list", access=(SR,)),
    Route("GET", "/api/v1/sessions/{session_id}", "sessions_get", access=(SR,), timeout_s=29),  # `wait`: 20 s
    # CRW, PRW: a session's contexts and processes end with it (services/sessions.destroy_sandbox).
    # WRW: the sandbox's last log lines are kept in the bucket (services/containers.keep_logs).
    Route(
        "DELETE",
        "/api/v1/sessions/{session_id}",
        "sessions_terminate",
        access=(SRW, "runtime", CRW, PRW, WRW),
    ),
    Route("POST", "/api/v1/sessions/{session_id}/execute", "executions_submit", access=(SRW, ERW, WRW, CR)),
    Route(
        "POST",
        "/api/v1/sessions/{session_id}/execute-sync",
        "executions_submit_sync",
        access=(SRW, ERW, WRW, CR),
    ),
    Route("GET", "/api/v1/sessions/{session_id}/executions", "executions_list", access=(SR, ER)),
    Route("GET", "/api/v1/executions/{execution_id}", "executions_get", access=(ER, WR)),
    Route("GET", "/api/v1/executions/{execution_id}/status", "executions_status", access=(ER,)),
    Route("GET", "/api/v1/executions/{execution_id}/result", "executions_result", access=(ER, WR)),
    # Live output: a long poll of up to 20 s (`wait`), within the 29 s timeout.
    Route(
        "GET",
        "/api/v1/executions/{execution_id}/output",
        "executions_output",
        access=(ER, "output_chunks:r"),
        timeout_s=29,
        sse=True,
    ),
    # Code contexts and background processes (issue #12). Reads write too: they record what the executor
    # reports (status, exit) and settle records of ended sessions.
    Route("POST", "/api/v1/sessions/{session_id}/contexts", "contexts_create", access=(SRW, CRW)),
    Route("GET", "/api/v1/sessions/{session_id}/contexts", "contexts_list", access=(SR, CRW)),
    Route("GET", "/api/v1/sessions/{session_id}/contexts/{context_id}", "contexts_get", access=(SR, CRW)),
    Route(
        "DELETE", "/api/v1/sessions/{session_id}/contexts/{context_id}", "contexts_delete", access=(SR, CRW)
    ),
    Route(
        "POST",
        "/api/v1/sessions/{session_id}/contexts/{context_id}/restart",
        "contexts_restart",
        access=(SRW, CRW),
    ),
    Route("POST", "/api/v1/sessions/{session_id}/processes", "processes_create", access=(SRW, PRW)),
    Route("GET", "/api/v1/sessions/{session_id}/processes", "processes_list", access=(SR, PRW)),
    Route("GET", "/api/v1/sessions/{session_id}/processes/{process_id}", "processes_get", access=(SR, PRW)),
    Route(
        "POST",
        "/api/v1/sessions/{session_id}/processes/{process_id}/stdin",
        "processes_stdin",
        access=(SRW, PRW),
    ),
    Route(
        "POST",
        "/api/v1/sessions/{session_id}/processes/{process_id}/signal",
        "processes_signal",
        access=(SR, PRW),
    ),
    Route(
        "GET",
        "/api/v1/sessions/{session_id}/processes/{process_id}/output",
        "processes_output",
        access=(SR, PRW, "output_chunks:r"),
    ),
    # SRW: an upload moves the workspace's revision on, a presigned one opens its window (docs/workspace.md).
    Route("POST", "/api/v1/sessions/{session_id}/files/upload", "files_upload", access=(SRW, WRW)),
    Route(
        "POST", "/api/v1/sessions/{session_id}/files/upload-url", "files_presign_upload", access=(SRW, WRW)
    ),
    Route("GET", "/api/v1/sessions/{session_id}/files", "files_list", access=(SR, WR)),
    Route("GET", "/api/v1/sessions/{session_id}/files/{path+}", "files_download", access=(SR, WR)),
    Route("GET", "/api/v1/templates", "templates_list", access=(TR,)),
    Route("POST", "/api/v1/templates", "templates_create", auth="admin", access=(TRW,)),
    Route("GET", "/api/v1/templates/{template_id}", "templates_get", access=(TR,)),
    Route("PUT", "/api/v1/templates/{template_id}", "templates_update", auth="admin", access=(TRW,)),
    Route("DELETE", "/api/v1/templates/{template_id}", "templates_delete", auth="admin", access=(TRW, SR)),
    Route("GET", "/api/v1/containers", "containers_list", access=(SR,)),
    Route("GET", "/api/v1/containers/{container_id}", "containers_get", access=(SR,)),
    Route("GET", "/api/v1/containers/{container_id}/logs", "containers_logs", access=(SR, ER, "runtime", WR)),
    Route("GET", "/api/v1/metrics", "metrics_prometheus", access=(SR, ER)),
    Route("POST", "/api/v1/keys", "keys_create", auth="admin", access=("api_keys:rw",)),
    Route("GET", "/api/v1/tenants/{tenant_id}/quotas", "tenants_quotas_get", access=("tenants:r",)),
    Route(
        "PUT",
        "/api/v1/tenants/{tenant_id}/quotas",
        "tenants_quotas_put",
        auth="admin",
        access=("tenants:rw",),
    ),
    Route(
        "POST",
        "/internal/sessions/{session_id}/container_ready",
        "internal_container_ready",
        "internal",
        "callback",
        # runtime: on ecs/eks the executor's address is asked of the runtime (DescribeTasks, the Pod).
        access=(SRW, "launch:callback", "runtime"),
    ),
    Route(
        "POST",
        "/internal/sessions/{session_id}/container_exited",
        "internal_container_exited",
        "internal",
        "callback",
        access=(SRW, "runtime", CRW, PRW, WRW),
    ),
    Route(
        "POST",
        "/internal/sessions/{session_id}/workspace-urls",
        "internal_workspace_urls",
        "internal",
        "callback",
        access=(SR, WRW),
    ),
    Route(
        "POST",
        "/internal/executions/{execution_id}/status",
        "internal_execution_status",
        "internal",
        "callback",
        access=(ERW,),
    ),
    Route(
        "POST",
        "/internal/executions/{execution_id}/heartbeat",
        "internal_heartbeat",
        "internal",
        "callback",
        access=(ERW, SRW),  # SRW: a heartbeat keeps its session alive (last_activity_at)
    ),
    Route(
        "POST",
        "/internal/executions/{execution_id}/result",
        "internal_execution_result",
        "internal",
        "callback",
        access=(ERW, SRW, WRW, "idempotency:rw"),
    ),
    Route(
        "POST",
        "/internal/executions/{execution_id}/artifacts",
        "internal_execution_artifacts",
        "internal",
        "callback",
        access=(ERW,),
    ),
    Route(
        "POST",
        "/internal/executions/{execution_id}/output",
        "internal_execution_output",
        "internal",
        "callback",
        access=(ER, "output_chunks:rw"),
    ),
    Route(
        "POST",
        "/internal/processes/{process_id}/output",
        "internal_process_output",
        "internal",
        "callback",
        access=(PRW, "output_chunks:rw"),
    ),
)

AUTHORIZERS: dict[Literal["api_key", "callback"], Job] = {
    # tenants:rw: the requests-per-second counter.
    "api_key": Job("authorizer_api_key", access=("api_keys:r", QUOTA_ACCESS), timeout_s=10),
    "callback": Job("authorizer_callback", access=(SR,), timeout_s=10),
}

# What the `runtime` grant brings besides the runtime's own permissions, per runtime (infra's runtime
# constructs grant it; the local access guard enforces it): the docker runtime reads its nodes' endpoints.
RUNTIME_IMPLIED_ACCESS: dict[str, tuple[str, ...]] = {"docker": ("runtime_nodes:r",)}

# Launch workflow steps, keyed by the ASL substitution variable that names each function's ARN.
LAUNCH_STEPS: dict[str, Job] = {
    # runtime_nodes:rw: placement adds the session to its node's stored load (services/nodes.py);
    # warm_pool:r: a node holding a free warm sandbox of the template scores highest.
    "PlaceSessionFunctionArn": Job("launch_place", access=(SRW, TR, "warm_pool:r", "runtime_nodes:rw")),
    "StartSandboxFunctionArn": Job(
        "launch_start_sandbox", access=(SRW, TR, "warm_pool:rw", "runtime"), timeout_s=120
    ),
    "MarkLaunchFailedFunctionArn": Job(
        "launch_mark_failed", access=(SRW, "runtime", CRW, PRW, WRW), timeout_s=60
    ),
}

# Periodic jobs: `every_s` is the period the schedule aims for (sub-minute ones run in a loop, see docs).
JOBS: tuple[Job, ...] = (
    Job("seed_templates", access=("templates:rw",), timeout_s=60),
    # SRW: ending a crashed or timed-out execution gives back its session's in-flight slot.
    Job("schedule_reap_executions", access=(SRW, ERW, WRW), timeout_s=40, every_s=5),
    Job("schedule_reap_sessions", access=(SRW, "runtime", CRW, PRW, WRW), timeout_s=40, every_s=10),
    # SR: each cycle recounts the nodes' load from the live sessions.
    Job("schedule_probe_nodes", access=(SR, "runtime_nodes:rw", "runtime"), timeout_s=30, every_s=10),
    Job("schedule_reap_orphans", access=(SR, "warm_pool:rw", "runtime"), timeout_s=60, every_s=60),
    # SR, runtime_nodes: new warm sandboxes are placed like sessions (services/nodes.choose_node).
    Job(
        "schedule_refill_warm_pool",
        access=(SR, TR, "warm_pool:rw", "runtime_nodes:rw", "runtime"),
        timeout_s=60,
        every_s=10,
    ),
    Job("schedule_purge_workspaces", access=(SRW, WRW), timeout_s=300, every_s=60),
)


def all_modules() -> list[str]:
    """Every function module, each deployed as one Lambda function."""
    mods = [r.module for r in ROUTES]
    mods += [j.module for j in AUTHORIZERS.values()]
    mods += [j.module for j in LAUNCH_STEPS.values()]
    mods += [j.module for j in JOBS]
    return mods


def route_for(module: str) -> Route:
    """The route a function module serves (each HTTP module serves exactly one)."""
    for route in ROUTES:
        if route.module == module:
            return route
    raise KeyError(f"no route is served by module '{module}'")


def resolver_path(path: str) -> str:
    """API Gateway's path variables in the powertools resolver's form: `{name}` -> `<name>`; a greedy
    `{name+}` -> `.+` (powertools' `<name>` stops at '/'; handlers read it from pathParameters)."""
    return re.sub(r"\{(\w+)\}", r"<\1>", re.sub(r"\{\w+\+\}", ".+", path))
