"""POST policy uploads (browser-style multipart forms) from a sandbox, checked the way S3 checks them:
the policy's SigV4 signature with the control plane's signing key, its expiration, every condition against
the form (and the bucket), no form field the policy does not name, the file's size within
content-length-range, and the key that moto will write under a session's workspace prefix."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import posixpath
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.auth import S3SigV4PostAuth
from botocore.awsrequest import AWSRequest

from sandboxcp.local.s3_auth import Refused, WorkspaceSigning, check_scope, check_signature, session_of

# Form fields S3 does not require a condition for (the file, and the policy and its signature).
UNCONDITIONED = frozenset({"policy", "x-amz-signature", "file"})
MAX_POLICY_BYTES = 20 * 1024


@dataclass(frozen=True)
class PostGrant:
    """What a verified form may do: write `key` (as moto will name it) with a file of `size_range` bytes."""

    key: str
    session_id: str
    size_range: tuple[int, int] | None

    def check_size(self, size: int) -> None:
        if self.size_range is not None and not self.size_range[0] <= size <= self.size_range[1]:
            raise Refused("the file is outside the policy's content-length-range", self.session_id)


def _policy_document(encoded: str) -> dict[str, Any]:
    if len(encoded) > MAX_POLICY_BYTES:
        raise Refused("the policy is too large")
    try:
        document = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        raise Refused("the policy is not base64 JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("conditions"), list):
        raise Refused("the policy has no conditions")
    return document


def _check_expiration(document: dict[str, Any], now: datetime) -> None:
    try:
        expires = datetime.fromisoformat(str(document.get("expiration")))
    except ValueError:
        raise Refused("the policy has no valid expiration") from None
    if expires.tzinfo is None:
        raise Refused("the policy's expiration has no time zone")
    if now >= expires:
        raise Refused("the policy has expired")


def _matches(op: str, actual: str | None, expected: str) -> bool:
    if op == "eq":
        return actual == expected
    # starts-with "" allows any value, including none at all (boto3's free Content-Type).
    return (actual or "").startswith(expected)


def _apply_conditions(
    conditions: list[Any], bucket: str, fields: dict[str, str]
) -> tuple[set[str], tuple[int, int] | None]:
    """Evaluate every condition (an unknown one refuses the form); returns the field names the conditions
    name and the content-length-range."""
    named: set[str] = set()
    size_range: tuple[int, int] | None = None
    for condition in conditions:
        if isinstance(condition, dict) and len(condition) == 1:
            [(name, expected)] = condition.items()
            op, name = "eq", str(name).lower()
        elif isinstance(condition, list) and len(condition) == 3 and condition[0] == "content-length-range":
            low, high = condition[1], condition[2]
            if not all(type(v) is int for v in (low, high)) or not 0 <= low <= high:
                raise Refused("invalid content-length-range in the policy")
            size_range = (low, high)
            continue
        elif (
            isinstance(condition, list)
            and len(condition) == 3
            and str(condition[0]).lower() in ("eq", "starts-with")
            and str(condition[1]).startswith("$")
        ):
            op, name, expected = str(condition[0]).lower(), str(condition[1])[1:].lower(), condition[2]
        else:
            raise Refused("unsupported condition in the policy")
        if not isinstance(expected, str):
            raise Refused("unsupported condition in the policy")
        actual = bucket if name == "bucket" else fields.get(name)
        if not _matches(op, actual, expected):
            raise Refused(f"the form does not satisfy the policy's condition on {name!r}")
        named.add(name)
    return named, size_range


@functools.lru_cache(maxsize=64)
def _policy_signature(signing: WorkspaceSigning, policy: str, amz_date: str) -> str:
    """The signature `policy` should carry. Remembered: every file a run writes comes with the same policy
    (1,000 uploads of one run; issue #14), and deriving the signing key is five HMACs."""
    request = AWSRequest()
    request.context["timestamp"] = amz_date
    return str(S3SigV4PostAuth(signing.credentials(), "s3", signing.region).signature(policy, request))


def verify_post(
    signing: WorkspaceSigning, bucket: str, fields: dict[str, str], filename: str | None, now: datetime
) -> PostGrant:
    """Check a POST form's fields (names lower-cased, each once; `filename` that of the file part, None if
    the file came as a plain field) before its file is accepted; returns what it may write, or raises
    Refused."""
    if bucket != signing.bucket:
        raise Refused("not the workspace bucket")
    if "key" not in fields or "policy" not in fields:
        raise Refused("the form has no key or no policy")
    check_scope(
        signing,
        fields.get("x-amz-algorithm", ""),
        fields.get("x-amz-credential", ""),
        fields.get("x-amz-date", ""),
    )
    check_signature(
        _policy_signature(signing, fields["policy"], fields["x-amz-date"]), fields.get("x-amz-signature", "")
    )
    document = _policy_document(fields["policy"])
    _check_expiration(document, now)
    named, size_range = _apply_conditions(document["conditions"], bucket, fields)
    extra = sorted(set(fields) - named - UNCONDITIONED)
    if extra:
        raise Refused(f"form fields no policy condition names: {', '.join(extra)}")
    if "key" not in named:
        raise Refused("the policy does not constrain the key")
    # S3 (and moto) put the file part's name in place of ${filename}: check the key that will be written.
    key = fields["key"]
    if filename is not None:
        key = key.replace("${filename}", posixpath.basename(filename))
    return PostGrant(key, session_of(key), size_range)
