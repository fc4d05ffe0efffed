"""Container bodies (ops API: GET /containers, GET /containers/{id})."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from sandboxcp.api.base import ResponseModel
from sandboxcp.api.schemas.common import OptionalString, TimedResponse, is_none
from sandboxcp.domain import clock
from sandboxcp.domain.models import Session
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.states import ACTIVE_SESSION_STATUSES
from sandboxcp.domain.usage import ContainerUsage


class ContainerInfo(TimedResponse):
    """A session's sandbox (contract ContainerInfo). `runtime_type` is our runtime name; `node_name` is the
    runtime node; `pod_name` is set on eks, where the container id is the pod name."""

    container_id: str
    pod_name: OptionalString = None
    runtime_type: str
    status: str
    session_id: str
    tenant_id: str
    template_id: str
    node_name: OptionalString = None
    resources: ResourceLimit
    created_at: datetime
    started_at: datetime | None = None
    uptime_seconds: int
    usage: ContainerUsage | None = Field(
        default=None,
        exclude_if=is_none,
        description="CPU, memory and /workspace use now (running containers, where measured; else absent)",
    )

    @classmethod
    def of(
        cls, s: Session, now: datetime | None = None, usage: ContainerUsage | None = None
    ) -> ContainerInfo:
        assert s.container_id is not None
        return cls(
            usage=usage,
            container_id=s.container_id,
            pod_name=s.container_id if s.runtime_type == "eks" else None,
            runtime_type=s.runtime_type,
            status=s.status.value,
            session_id=s.session_id,
            tenant_id=s.tenant_id,
            template_id=s.template_id,
            node_name=s.runtime_node,
            resources=s.resources,
            created_at=s.created_at,
            started_at=s.started_at,
            uptime_seconds=uptime_seconds(s, now),
        )


def uptime_seconds(s: Session, now: datetime | None = None) -> int:
    """From the sandbox's start to its end (terminated_at, or the last update of an ended session) or now."""
    if s.started_at is None:
        return 0
    if s.terminated_at is not None:
        end = s.terminated_at
    elif s.status in ACTIVE_SESSION_STATUSES:
        end = now or clock.now()
    else:
        end = s.updated_at
    return max(0, int((end - s.started_at).total_seconds()))


class ContainerList(ResponseModel):
    containers: list[ContainerInfo]
    total: int
