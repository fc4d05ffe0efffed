"""Execution outcomes too large for a DynamoDB item, and the logs of ended sandboxes, kept in the workspace
bucket under results/ (expired by the bucket's lifecycle rule)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import boto3


class S3ResultStore:
    def __init__(self, bucket: str, client: Any = None) -> None:
        self._bucket = bucket
        self._injected = client

    @cached_property
    def _s3(self) -> Any:
        return self._injected or boto3.client("s3")

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=content_type)

    def get(self, key: str) -> bytes:
        return bytes(self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read())

    def get_if_any(self, key: str) -> bytes | None:
        """The object, or None when there is none."""
        try:
            return self.get(key)
        except self._s3.exceptions.NoSuchKey:
            return None
