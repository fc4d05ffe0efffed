"""An API key's creation body (POST /keys)."""

from __future__ import annotations

from pydantic import Field

from sandboxcp.domain.inputs import RequestBody

MAX_TENANT_ID_CHARS = 64


class CreateKeyRequest(RequestBody):
    tenant_id: str = Field(min_length=1, max_length=MAX_TENANT_ID_CHARS)
    admin: bool = False
