"""Presigned URLs and POST policies are scoped to one session's prefix and carry the size limit. moto does
not check signatures, so these tests read the URL and the policy we generate."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
from botocore.config import Config

from sandboxcp.adapters.workspace_store import S3WorkspaceStore

SID = "sess_0000000000000001"


@pytest.fixture
def store() -> S3WorkspaceStore:
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(signature_version="s3v4"),
    )
    return S3WorkspaceStore("ws-bucket", client=client)


def _policy(post: dict) -> dict:
    return json.loads(base64.b64decode(post["fields"]["policy"]))


def test_presigned_get_names_one_object_of_the_session_for_one_hour(store):
    url = urlparse(store.presign_get(SID, "output/result.csv"))
    assert url.path.endswith(f"/workspace/{SID}/output/result.csv")
    query = parse_qs(url.query)
    assert query["X-Amz-Expires"] == ["3600"]
    assert query["response-content-disposition"] == ['attachment; filename="result.csv"']
    assert "X-Amz-Signature" in query


def test_single_file_post_policy_pins_the_key_and_the_size(store):
    post = store.presign_post(SID, path="data/input.csv", max_bytes=1234)
    policy = _policy(post)
    assert {"key": f"workspace/{SID}/data/input.csv"} in policy["conditions"]
    assert ["content-length-range", 0, 1234] in policy["conditions"]
    assert {"bucket": "ws-bucket"} in policy["conditions"]
    assert post["fields"]["key"] == f"workspace/{SID}/data/input.csv"


def test_artifact_post_policy_allows_only_the_session_prefix(store):
    post = store.presign_post(SID, path=None, max_bytes=100 * 1024 * 1024)
    conditions = _policy(post)["conditions"]
    assert ["starts-with", "$key", f"workspace/{SID}/"] in conditions
    assert ["content-length-range", 0, 100 * 1024 * 1024] in conditions
    # boto3 adds its own starts-with for "${filename}" keys; every one must be the session's prefix.
    starts = [c for c in conditions if isinstance(c, list) and c[0] == "starts-with" and c[1] == "$key"]
    assert starts and all(c == ["starts-with", "$key", f"workspace/{SID}/"] for c in starts)
    # The only other free field is the object's Content-Type (S3 refuses fields no condition names).
    free = [c for c in conditions if isinstance(c, list) and c[0] == "starts-with" and c[1] != "$key"]
    assert free == [["starts-with", "$Content-Type", ""]]


def test_policy_expires_within_the_hour(store):
    from datetime import UTC, datetime

    policy = _policy(store.presign_post(SID, path="a.txt", max_bytes=1))
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    remaining = (expires - datetime.now(UTC)).total_seconds()
    assert 3500 < remaining <= 3600


@pytest.mark.parametrize("region", ["eu-west-1", "us-east-1"])
def test_in_aws_links_use_the_regional_virtual_hosted_name(monkeypatch, region):
    """Outside us-east-1 a new bucket's global name answers with redirects for hours, and sandboxes
    without internet reach S3 only through the region's endpoint: the host names the region."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    store = S3WorkspaceStore("ws-bucket", region=region)
    get = urlparse(store.presign_get(SID, "a.txt"))
    assert get.scheme == "https" and get.hostname == f"ws-bucket.s3.{region}.amazonaws.com"
    assert f"/{region}/s3/aws4_request" in parse_qs(get.query)["X-Amz-Credential"][0]
    post = store.presign_post(SID, path="b.bin", max_bytes=10)
    assert urlparse(post["url"]).hostname == f"ws-bucket.s3.{region}.amazonaws.com"


def test_against_a_custom_endpoint_links_stay_path_style(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    get = urlparse(S3WorkspaceStore("ws-bucket", region="eu-west-1").presign_get(SID, "a.txt"))
    assert (get.hostname, get.port) == ("127.0.0.1", 5999) and get.path.startswith("/ws-bucket/workspace/")
