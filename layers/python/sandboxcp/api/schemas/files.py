"""Workspace file bodies: uploads (direct and presigned) and the listing."""

from __future__ import annotations

from pydantic import Field

from sandboxcp.api.base import ResponseModel
from sandboxcp.domain.inputs import RequestBody
from sandboxcp.domain.workspace import WorkspaceFile


class UploadedFile(ResponseModel):
    path: str
    size: int


class UploadUrlRequest(RequestBody):
    path: str = Field(min_length=1, max_length=4096)
    size: int = Field(ge=0, description="Exact size in bytes; the upload policy refuses more")


class PresignedUpload(ResponseModel):
    path: str
    url: str
    fields: dict[str, str]
    key_prefix: str
    max_bytes: int


class FileList(ResponseModel):
    files: list[WorkspaceFile]
    total: int
