"""Template bodies (GET/POST/PUT /templates)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from sandboxcp.api.base import ResponseModel
from sandboxcp.api.schemas.common import NEXT_TOKEN_DOC, OptionalString, TimedResponse
from sandboxcp.domain.models import Template
from sandboxcp.domain.resources import ResourceLimit


class TemplateResponse(TimedResponse):
    id: str
    name: str
    image: str
    base_image: OptionalString = None
    pre_installed_packages: list[str]
    default_resources: ResourceLimit
    security_context: dict[str, Any]
    languages: list[str]
    deprecated: bool = False
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, t: Template) -> TemplateResponse:
        return cls(**t.model_dump(include=set(cls.model_fields)))


class TemplateList(ResponseModel):
    templates: list[TemplateResponse]
    total: int
    next_token: str | None = Field(default=None, description=NEXT_TOKEN_DOC)
