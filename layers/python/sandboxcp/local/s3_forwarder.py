"""The sandboxes' only way to S3 in local mode (see S3Forwarder)."""

from __future__ import annotations

from typing import Any

import httpx
from werkzeug.wrappers import Request, Response


class S3Forwarder:
    """The sandboxes' only way to S3 in local mode: `/_s3/<bucket>/<key>?<query>` on the internal unix
    socket is forwarded to the S3 endpoint (moto). Only presigned requests carry any authority, and those
    are scoped to one session's prefix; the forwarder reaches no other host."""

    PREFIX = "/_s3/"

    def __init__(self, s3_endpoint: str, fallback: Any) -> None:
        self.endpoint = s3_endpoint.rstrip("/")
        self.fallback = fallback

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("PATH_INFO", "").startswith(self.PREFIX):
            return self.fallback(environ, start_response)
        request = Request(environ)
        target = self.endpoint + request.full_path[len(self.PREFIX) - 1 :].rstrip("?")
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED_HEADERS}
        upstream = httpx.request(
            request.method, target, content=request.get_data(), headers=headers, timeout=60
        )
        passed = {k: v for k, v in upstream.headers.items() if k.lower() in _RETURNED_HEADERS}
        return Response(upstream.content, status=upstream.status_code, headers=passed)(
            environ, start_response
        )


_FORWARDED_HEADERS = {"content-type", "content-length", "content-md5", "x-amz-content-sha256", "x-amz-date"}
_RETURNED_HEADERS = {"content-type", "etag", "last-modified", "content-disposition", "location"}
