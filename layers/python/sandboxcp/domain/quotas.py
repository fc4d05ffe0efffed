"""Per-tenant quotas: live sessions, executions in flight, the live sandboxes' total CPU and memory, and
API requests per second. Over a quota the API answers 429 `Sandbox.TooManyRequestsExection` with
`Retry-After` (sandboxcp.api.resolver adds the header from `QuotaExceeded.retry_after`).

The counters live in the tenants table (sandboxcp.adapters.dynamo.tenants): what a tenant may still use
(`free_*`) is taken and given back in the same DynamoDB transaction as the session's or execution's own
state change, so two racing creates never both take the last slot and a session or execution gives its
share back exactly once, when it leaves the live states."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sandboxcp.domain.base import DomainModel
from sandboxcp.domain.errors import TooManyRequests
from sandboxcp.domain.resources import ResourceLimit

QuotaKind = Literal["sessions", "inflight_executions", "cpu", "memory", "requests_per_second"]

# Upper bounds an admin may set (the counters are numbers on one small item; nothing else bounds them).
MAX_SESSIONS_LIMIT = 100_000
MAX_INFLIGHT_LIMIT = 100_000
MAX_CPU_LIMIT = 100_000.0  # cores
MAX_MEMORY_LIMIT_MB = 1024 * 1024 * 1024  # 1 PiB in MiB
MAX_RPS_LIMIT = 10_000

# How long a client should wait before trying again, per quota (seconds).
RETRY_AFTER_S: dict[QuotaKind, int] = {
    "sessions": 30,
    "inflight_executions": 5,
    "cpu": 30,
    "memory": 30,
    "requests_per_second": 1,
}


class QuotaLimits(DomainModel):
    """A tenant's limits. 0 refuses everything of that kind (a suspended tenant)."""

    max_sessions: int = Field(ge=0, le=MAX_SESSIONS_LIMIT, description="Sessions creating or running")
    max_inflight_executions: int = Field(
        ge=0, le=MAX_INFLIGHT_LIMIT, description="Executions pending or running, over all sessions"
    )
    max_cpu: float = Field(ge=0, le=MAX_CPU_LIMIT, description="Cores over the live sessions' `resources`")
    max_memory_mb: int = Field(
        ge=0, le=MAX_MEMORY_LIMIT_MB, description="MiB over the live sessions' `resources`"
    )
    max_requests_per_second: int = Field(
        ge=1, le=MAX_RPS_LIMIT, description="Public API requests per second (authorized requests)"
    )

    @property
    def max_cpu_millis(self) -> int:
        return cpu_millis(self.max_cpu)


class QuotaUsage(DomainModel):
    sessions: int = 0
    inflight_executions: int = 0
    cpu: float = 0.0
    memory_mb: int = 0


class TenantQuota(DomainModel):
    tenant_id: str
    limits: QuotaLimits
    usage: QuotaUsage
    defaults: bool = Field(description="True while no admin has set this tenant's limits")


class QuotaExceeded(TooManyRequests):
    """429 with `Retry-After`."""

    def __init__(self, kind: QuotaKind, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(
            detail,
            solution=(
                "Wait and retry (see Retry-After), end sessions or executions you no longer need, "
                "or ask an admin to raise the tenant's quota (PUT /api/v1/tenants/{tenant_id}/quotas)"
            ),
        )
        self.kind = kind
        self.retry_after = retry_after if retry_after is not None else RETRY_AFTER_S[kind]


def cpu_millis(cores: float) -> int:
    return round(cores * 1000)


def session_footprint(resources: ResourceLimit) -> tuple[int, int]:
    """(millicores, MiB) a live session holds against its tenant's quota."""
    return cpu_millis(resources.cpu_cores), resources.memory_mb
