"""Session workspaces in S3: s3://{bucket}/workspace/{session_id}/{path}. Every key is built from the
session prefix and a normalized path, and every presigned URL or POST policy is scoped to that prefix."""

from __future__ import annotations

import mimetypes
import os
from functools import cached_property
from typing import Any
from urllib.parse import quote

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from sandboxcp.domain.workspace import PRESIGN_EXPIRY_S, WorkspaceFile, workspace_prefix

MAX_LISTED = 1000


def guess_mime(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def content_disposition(path: str) -> str:
    """`attachment` with the file's name. Header values are ASCII (moto's server cannot even send others):
    a non-ASCII name goes as RFC 6266's `filename*` (UTF-8, percent-encoded) after an ASCII fallback."""
    filename = path.rsplit("/", 1)[-1].replace('"', "")
    if filename.isascii():
        return f'attachment; filename="{filename}"'
    fallback = "".join(ch if ch.isascii() else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def s3_client_config(*, custom_endpoint: bool) -> Config:
    """SigV4 everywhere (presigned URLs and POST policies carry their own expiry and scope), and in AWS
    regional virtual-hosted URLs (`<bucket>.s3.<region>.amazonaws.com`): the global name of a new bucket
    answers with redirects for hours outside us-east-1, and sandboxes without internet reach S3 only
    through the region's endpoint. A custom endpoint (moto) keeps path-style addressing."""
    if custom_endpoint:
        return Config(signature_version="s3v4", s3={"addressing_style": "path"})
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"},
    )


class S3WorkspaceStore:
    def __init__(self, bucket: str, client: Any = None, region: str = "") -> None:
        self.bucket = bucket
        self.region = region
        self._injected = client

    @cached_property
    def _s3(self) -> Any:
        if self._injected is not None:
            return self._injected
        custom = bool(os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
        return boto3.client(
            "s3", region_name=self.region or None, config=s3_client_config(custom_endpoint=custom)
        )

    def key(self, session_id: str, path: str) -> str:
        return workspace_prefix(session_id) + path

    def list(self, session_id: str, *, limit: int = MAX_LISTED) -> list[WorkspaceFile]:
        prefix = workspace_prefix(session_id)
        out: list[WorkspaceFile] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"MaxItems": limit}
        ):
            for obj in page.get("Contents", []):
                out.append(
                    WorkspaceFile(
                        path=obj["Key"][len(prefix) :],
                        size=int(obj["Size"]),
                        etag=str(obj.get("ETag", "")).strip('"'),
                        last_modified=obj["LastModified"].isoformat(),
                    )
                )
        return out

    def usage_bytes(self, session_id: str) -> int:
        return sum(f.size for f in self.list(session_id, limit=100_000))

    def head(self, session_id: str, path: str) -> WorkspaceFile | None:
        try:
            meta = self._s3.head_object(Bucket=self.bucket, Key=self.key(session_id, path))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return WorkspaceFile(
            path=path, size=int(meta["ContentLength"]), etag=str(meta.get("ETag", "")).strip('"')
        )

    def put(self, session_id: str, path: str, body: bytes) -> WorkspaceFile:
        resp = self._s3.put_object(
            Bucket=self.bucket, Key=self.key(session_id, path), Body=body, ContentType=guess_mime(path)
        )
        return WorkspaceFile(path=path, size=len(body), etag=str(resp.get("ETag", "")).strip('"'))

    def read(self, session_id: str, path: str) -> bytes:
        return bytes(self._s3.get_object(Bucket=self.bucket, Key=self.key(session_id, path))["Body"].read())

    def presign_get(self, session_id: str, path: str, *, expires_s: int = PRESIGN_EXPIRY_S) -> str:
        return str(
            self._s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.key(session_id, path),
                    "ResponseContentDisposition": content_disposition(path),
                },
                ExpiresIn=expires_s,
            )
        )

    def presign_post(
        self, session_id: str, *, path: str | None, max_bytes: int, expires_s: int = PRESIGN_EXPIRY_S
    ) -> dict[str, Any]:
        """A POST policy for one file (`path`) or for any key under the session prefix (`path=None`,
        the executor's artifact uploads); the policy caps each object's size at `max_bytes`."""
        prefix = workspace_prefix(session_id)
        key_condition: dict[str, str] | list[str]
        if path is not None:
            key, key_condition = prefix + path, {"key": prefix + path}
        else:
            key, key_condition = prefix + "${filename}", ["starts-with", "$key", prefix]
        post = self._s3.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            # S3 refuses form fields no condition names: allow the uploader to set the object's type.
            Conditions=[
                key_condition,
                ["content-length-range", 0, max_bytes],
                ["starts-with", "$Content-Type", ""],
            ],
            ExpiresIn=expires_s,
        )
        return {"url": post["url"], "fields": post["fields"], "key_prefix": prefix, "max_bytes": max_bytes}

    def delete_all(self, session_id: str) -> int:
        """Delete one session's objects (lists that prefix only, never the bucket)."""
        deleted = 0
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=workspace_prefix(session_id)):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        return deleted
