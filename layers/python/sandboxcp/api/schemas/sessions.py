"""Session bodies (POST/GET /sessions, GET /sessions/{id})."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from sandboxcp.api.base import ResponseModel
from sandboxcp.api.schemas.common import NEXT_TOKEN_DOC, OptionalString, TimedResponse
from sandboxcp.domain.models import Session
from sandboxcp.domain.resources import ResourceLimit


class SessionResponse(TimedResponse):
    session_id: str
    template_id: str
    status: str
    runtime_type: str
    runtime_node: OptionalString = None
    container_id: OptionalString = None
    pod_name: OptionalString = Field(default=None, description="The container id on eks (the pod's name)")
    workspace_path: str
    resources: ResourceLimit
    env_vars: dict[str, str]
    created_at: datetime
    updated_at: datetime
    timeout: int
    error_message: str | None = None

    @classmethod
    def of(cls, s: Session) -> SessionResponse:
        return cls(
            pod_name=s.container_id if s.runtime_type == "eks" else None,
            **s.model_dump(include=set(cls.model_fields) - {"pod_name"}),
        )


class SessionList(ResponseModel):
    sessions: list[SessionResponse]
    total: int
    next_token: str | None = Field(default=None, description=NEXT_TOKEN_DOC)
