"""The sandboxes' only way to S3 in local mode (see S3Forwarder)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from werkzeug.test import EnvironBuilder, run_wsgi_app
from werkzeug.wrappers import Response

from sandboxcp.domain import clock
from sandboxcp.local import inprocess_aws
from sandboxcp.local.s3_auth import Refused, WorkspaceSigning, verify_presigned
from sandboxcp.local.s3_form import MAX_BODY, read_form
from sandboxcp.local.s3_post_policy import PostGrant, verify_post
from sandboxcp.observability import audit

# Headers of moto's answer a sandbox gets; nothing of the request but the upload's framing is passed on
# (an unsigned header such as x-amz-copy-source or Range must not change what a signed request does).
_RETURNED_HEADERS = frozenset(
    {"content-type", "content-length", "etag", "last-modified", "content-disposition"}
)


class S3Forwarder:
    """The sandboxes' only way to S3 in local mode: `/_s3/<bucket>/<key>?<query>` on the internal unix
    socket, where moto (which checks no signature) plays S3, in the moto server's process (the local
    stack's): `s3_endpoint` is that server's address, which the requests are signed for. Only what the
    control plane signed for one session's workspace prefix gets through, checked here first: a
    presigned GET (s3_auth) or a POST policy upload (s3_post_policy); anything else is a 403 and an
    audit line, and never reaches moto.
    Every other path goes to `fallback` (the internal API) untouched.

    A download's request target is handed on byte for byte as the sandbox sent it (the raw request URI,
    never the decoded PATH_INFO), so the key moto reads is the key that was signed (`q%3Fx.txt`, `€.txt`).
    An upload stores the file part read here under the key its policy check named (`_store`)."""

    PREFIX = "/_s3/"

    def __init__(
        self, s3_endpoint: str, fallback: Any, *, bucket: str, signing: WorkspaceSigning | None = None
    ) -> None:
        """`signing` defaults to boto3's credentials and region (those the control plane signs with)."""
        self.endpoint = urlsplit(s3_endpoint)
        if self.endpoint.scheme != "http" or not self.endpoint.hostname:
            raise ValueError(f"the local S3 endpoint must be http://host:port, got {s3_endpoint!r}")
        self.fallback = fallback
        self.signing = signing or WorkspaceSigning.from_boto3(bucket, s3_endpoint)
        if self.signing.bucket != bucket:
            raise ValueError("the signing identity is for another bucket")
        self.s3_app = inprocess_aws.backend_app("s3")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("PATH_INFO", "").startswith(self.PREFIX):
            return self.fallback(environ, start_response)
        try:
            response = self._handle(environ)
        except Refused as refused:
            response = self._deny(environ, refused)
        return response(environ, start_response)

    def _handle(self, environ: dict[str, Any]) -> Response:
        # werkzeug's server (and gunicorn) keep the request line's target as sent; PATH_INFO is decoded.
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
        if not raw.startswith(self.PREFIX):
            raise Refused("the request target is not under /_s3/ as sent")
        target = raw[len(self.PREFIX) - 1 :]
        raw_path, _, raw_query = target.partition("?")
        method = environ.get("REQUEST_METHOD", "")
        if method == "GET":
            verify_presigned(self.signing, method, raw_path, raw_query, clock.now())
            return self._download(target)
        if method == "POST":
            return self._upload(environ, raw_path, raw_query)
        raise Refused(f"{method} is not allowed")

    def _upload(self, environ: dict[str, Any], raw_path: str, raw_query: str) -> Response:
        bucket = raw_path.removesuffix("/")[1:]
        if raw_query or "/" in bucket or bucket != self.signing.bucket:
            raise Refused("a form upload goes to the workspace bucket itself")
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isascii() or not length.isdigit() or not 0 < int(length) <= MAX_BODY:
            raise Refused("an upload needs a Content-Length of at most 100 MB and the form")
        content_type = environ.get("CONTENT_TYPE", "")
        now = clock.now()

        def check(fields: dict[str, str], filename: str | None) -> PostGrant:
            return verify_post(self.signing, bucket, fields, filename, now)

        form = read_form(environ["wsgi.input"], int(length), content_type, check)
        try:
            form.grant.check_size(form.file_size)
            return self._store(bucket, form.grant.key, form.file.read(), form.fields)
        finally:
            form.close()

    def _store(self, bucket: str, key: str, data: bytes, fields: dict[str, str]) -> Response:
        """Write the checked object as moto's own POST handler does (its S3 backend's put_object, then the
        form's `x-amz-meta-*` and Content-Type as metadata), and answer as S3 does by default: 204 with the
        object's ETag. Not through moto's handler: it would parse the form a second time, most of an
        upload's cost here (1,000 small files a run: issue #14); and what is stored is then exactly what
        was checked. The form's `success_action_*` fields are not honoured (no sandbox needs them)."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends
        from moto.s3.utils import metadata_from_headers

        try:
            backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
            stored = backend.put_object(bucket, key, data, request_method="POST")
            stored.set_metadata(metadata_from_headers(fields))
        except Exception:  # what the moto server answers when moto fails
            logging.getLogger(__name__).warning("moto failed on an S3 upload", exc_info=True)
            return _s3_error(500, "InternalError", "S3 failed")
        return Response(status=204, headers={"ETag": stored.etag})

    def _download(self, target: str) -> Response:
        """Hand the checked GET to moto's S3 application, in this process (the moto server's own
        backends), and relay the answer streamed (downloads reach 100 MB). Not over HTTP to the moto
        server: a TCP connection, the server's thread and moto's per-request service lookup cost more than
        a small file itself (1,000 small files a run: issue #14)."""
        raw_path, _, raw_query = target.partition("?")
        builder = EnvironBuilder(
            path=raw_path,  # as sent: percent-encoded (PATH_INFO is decoded from it, as a server does)
            base_url=f"http://{self.endpoint.netloc}",
            query_string=raw_query,
        )
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        environ["RAW_URI"] = environ["REQUEST_URI"] = target  # the key as signed (moto reads RAW_URI)
        try:
            answer, status, upstream = run_wsgi_app(self.s3_app, environ)
        except Exception:  # what the moto server answers when moto fails
            logging.getLogger(__name__).warning("moto failed on an S3 request", exc_info=True)
            return _s3_error(500, "InternalError", "S3 failed")
        passed = [(k, v) for k, v in upstream.items() if k.lower() in _RETURNED_HEADERS]
        return Response(answer, status=int(status.split(" ", 1)[0]), headers=passed, direct_passthrough=True)

    def _deny(self, environ: dict[str, Any], refused: Refused) -> Response:
        # The tenant is not known here (only the session a key claims); the path is logged without its
        # query, which holds the signature.
        audit(
            "workspace.sandbox_request",
            "denied",
            tenant="unknown",
            session_id=refused.session_id,
            method=environ.get("REQUEST_METHOD", ""),
            path=environ.get("PATH_INFO", "")[:300],
            reason=refused.reason,
        )
        return _s3_error(403, "AccessDenied", refused.reason)


def _s3_error(status: int, code: str, message: str) -> Response:
    """An error as S3 words it (the executor reads <Code>)."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    )
    return Response(body, status=status, content_type="application/xml")
