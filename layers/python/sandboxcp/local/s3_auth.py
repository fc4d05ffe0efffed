"""What makes a sandbox's S3 request acceptable in local mode, checked before it reaches moto (which checks
no signature at all): a SigV4 signature made with the control plane's own credentials for the endpoint
host, not expired, on the workspace bucket, for a key under one session's `workspace/<session_id>/`.

Presigned URLs (query signatures) are verified here; POST policies in s3_post_policy.py. The SigV4 steps
are botocore's own signer pieces, fed with the timestamp and scope the request claims, so the string we
recompute is the one boto3 signed when the control plane made the URL."""

from __future__ import annotations

import hmac
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

import boto3
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sandboxcp.domain.ids import SESSION_ID_RE
from sandboxcp.domain.workspace import MAX_PATH_BYTES

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_EXPIRES_S = 7 * 24 * 3600  # SigV4's own ceiling for presigned URLs
CLOCK_SKEW = timedelta(minutes=15)  # S3 refuses requests dated further ahead than this
# What boto3 puts in a presigned URL: unreserved characters and %XX escapes (keys are quoted with
# safe="/~", query values with safe="-_.~"). Anything else could be read one way by us and another by
# moto, so it is refused rather than normalized.
_RAW_PATH_RE = re.compile(r"^(?:[A-Za-z0-9\-._~/]|%[0-9A-Fa-f]{2})*$")
_RAW_QUERY_RE = re.compile(r"^(?:[A-Za-z0-9\-._~=&]|%[0-9A-Fa-f]{2})*$")
_SIGNATURE_RE = re.compile(r"^[0-9a-f]{64}$")


class Refused(Exception):
    """The request is not one the control plane signed for a session's workspace; `reason` says why
    (for the audit log, never with a signature or a query in it)."""

    def __init__(self, reason: str, session_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.session_id = session_id


@dataclass(frozen=True)
class WorkspaceSigning:
    """The control plane's signing identity for workspace requests: the bucket, the host the URLs are
    made for (the S3 endpoint's host:port) and the credentials and region boto3 signs them with."""

    bucket: str
    host: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str

    @classmethod
    def from_boto3(cls, bucket: str, endpoint: str) -> WorkspaceSigning:
        """The credentials and region of boto3's default chain: those the control plane's S3 client
        signs with (in local mode, aws_environment's)."""
        session = boto3.session.Session()
        credentials = session.get_credentials()
        if credentials is None or not session.region_name:
            raise RuntimeError("no AWS credentials or region to verify workspace signatures with")
        frozen = credentials.get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            raise RuntimeError("incomplete AWS credentials to verify workspace signatures with")
        host = urlsplit(endpoint).netloc
        return cls(bucket, host, frozen.access_key, frozen.secret_key, session.region_name)

    def credentials(self) -> Credentials:
        return Credentials(self.access_key, self.secret_key)

    def scope(self, day: str) -> str:
        return f"{self.access_key}/{day}/{self.region}/s3/aws4_request"


def session_of(key: str) -> str:
    """The session whose workspace holds `key`, or Refused: `workspace/<session_id>/<path>` where the path
    is a plain relative path (the control plane's and the executor's path rules), nothing else."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != "workspace" or not SESSION_ID_RE.match(parts[1]):
        raise Refused("the key is not under a session's workspace prefix")
    path = "/".join(parts[2:])
    if (
        any(p in ("", ".", "..") for p in parts[2:])
        or any(unicodedata.category(ch) == "Cc" for ch in path)
        or len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES
    ):
        raise Refused("the key is not a plain workspace path", parts[1])
    return parts[1]


def amz_date(value: str) -> datetime:
    try:
        return datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise Refused("malformed X-Amz-Date") from None


def check_scope(signing: WorkspaceSigning, algorithm: str, credential: str, date: str) -> None:
    """The request claims our algorithm, our access key, region and service, on the day it is dated."""
    if algorithm != ALGORITHM:
        raise Refused("unsupported signature algorithm")
    amz_date(date)
    if not hmac.compare_digest(credential.encode(), signing.scope(date[:8]).encode()):
        raise Refused("credential scope is not the control plane's")


def check_signature(expected: str, given: str) -> None:
    if not _SIGNATURE_RE.match(given) or not hmac.compare_digest(expected.encode(), given.encode()):
        raise Refused("signature does not match")


def _query_params(raw_query: str) -> tuple[dict[str, str], str]:
    """The decoded parameters (each at most once) and the raw query without X-Amz-Signature, which is
    what the signature covers."""
    params: dict[str, str] = {}
    kept: list[str] = []
    for pair in raw_query.split("&") if raw_query else []:
        name, _, value = pair.partition("=")
        name = unquote(name)
        if name in params:
            raise Refused(f"query parameter {name!r} given twice")
        params[name] = unquote(value)
        if name != "X-Amz-Signature":
            kept.append(pair)
    return params, "&".join(kept)


def verify_presigned(
    signing: WorkspaceSigning, method: str, raw_path: str, raw_query: str, now: datetime
) -> str:
    """Check a presigned request (`raw_path` is `/<bucket>/<key>` exactly as sent, still percent-encoded)
    and return the object key, or raise Refused. Only GET is ever presigned for a sandbox."""
    if method != "GET":
        raise Refused(f"{method} is not a presigned workspace request")
    if not _RAW_PATH_RE.match(raw_path) or not _RAW_QUERY_RE.match(raw_query):
        raise Refused("the request target is not in the form the control plane signs")
    bucket, _, raw_key = raw_path[1:].partition("/")
    if bucket != signing.bucket:
        raise Refused("not the workspace bucket")
    try:
        key = unquote(raw_key, errors="strict")
    except UnicodeDecodeError:
        raise Refused("the key is not UTF-8") from None
    session_id = session_of(key)
    params, unsigned_query = _query_params(raw_query)
    try:
        check_scope(
            signing,
            params.get("X-Amz-Algorithm", ""),
            params.get("X-Amz-Credential", ""),
            params.get("X-Amz-Date", ""),
        )
        if params.get("X-Amz-SignedHeaders") != "host":
            raise Refused("only the host header may be signed")
        expires = params.get("X-Amz-Expires", "")
        expires_s = int(expires) if re.fullmatch(r"[0-9]{1,7}", expires) else 0
        if not 0 < expires_s <= MAX_EXPIRES_S:
            raise Refused("missing or invalid X-Amz-Expires")
        signed_at = amz_date(params["X-Amz-Date"])
        if now > signed_at + timedelta(seconds=expires_s):
            raise Refused("the presigned URL has expired")
        if signed_at > now + CLOCK_SKEW:
            raise Refused("the presigned URL is dated in the future")
        # botocore's canonical request reads the path and query from the URL as given (S3 paths are not
        # normalized), and the host from its netloc: the host the control plane signed for.
        request = AWSRequest(method=method, url=f"http://{signing.host}{raw_path}?{unsigned_query}")
        request.context["timestamp"] = params["X-Amz-Date"]
        signer = S3SigV4QueryAuth(signing.credentials(), "s3", signing.region, expires=expires_s)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        check_signature(expected, params.get("X-Amz-Signature", ""))
    except Refused as refused:
        raise Refused(refused.reason, session_id) from None
    return key
