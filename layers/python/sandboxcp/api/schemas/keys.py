"""API key bodies (POST /keys)."""

from __future__ import annotations

from pydantic import Field

from sandboxcp.api.base import ResponseModel


class ApiKeyResponse(ResponseModel):
    api_key: str = Field(description="Shown once; only its hash is stored")
    tenant_id: str
    admin: bool
