"""The local S3 forwarder (the sandboxes' only way to S3 in local mode) lets through only what the control
plane signed for one session's workspace, and forwards that byte for byte.

Real pieces throughout: moto's server in-process (it checks no signatures, so anything let through would
succeed), URLs and POST policies made by the workspace adapter and `files.workspace_plan`, the forwarder
served by werkzeug on a unix socket as in `sandboxcp local`, raw HTTP over AF_UNIX as hostile code would
send it, and the executor's own WorkspaceSync for the round trips."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import pytest
from botocore.config import Config
from werkzeug.serving import make_server

from sandbox_executor.validation import parse_workspace_plan
from sandbox_executor.workspace import WorkspaceSync
from sandboxcp.adapters.workspace_store import S3WorkspaceStore
from sandboxcp.domain import clock
from sandboxcp.local.aws import MotoAws
from sandboxcp.local.s3_auth import WorkspaceSigning
from sandboxcp.local.s3_forwarder import S3Forwarder
from sandboxcp.services.files import workspace_plan

BUCKET = "sandboxcp-workspace"
REGION, ACCESS, SECRET = "us-east-1", "local", "local"
ATTACKER, VICTIM = "sess_aaaaaaaaaaaaaaaa", "sess_vvvvvvvvvvvvvvvv"
TABLE = "sandboxcp-sessions"
VICTIM_FILE = b"the victim's secret\n"
# Names that broke when the forwarder passed on the decoded path: a '?' (encoded in the URL), a space,
# non-ASCII, and a name percent-encoded four times (each decode yields another valid escape).
ODD_NAMES = ["q%3Fx.txt", "a b.txt", "€.txt", quote(quote(quote(quote("x?y.txt", safe="")))), "dir/ü %41.bin"]


# -- fixtures ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto() -> Iterator[MotoAws]:
    server = MotoAws()
    server.start()
    yield server
    server.stop()


def _client(moto: MotoAws, service: str, secret: str = SECRET) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=moto.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS,
        aws_secret_access_key=secret,
        config=Config(signature_version="s3v4"),
    )


@pytest.fixture(scope="module")
def s3(moto: MotoAws) -> Any:
    client = _client(moto, "s3")
    client.create_bucket(Bucket=BUCKET)
    client.create_bucket(Bucket="other-bucket")
    ddb = _client(moto, "dynamodb")
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


@pytest.fixture(scope="module")
def store(s3: Any) -> S3WorkspaceStore:
    store = S3WorkspaceStore(BUCKET, client=s3)
    store.put(VICTIM, "secret.txt", VICTIM_FILE)
    store.put(ATTACKER, "mine.txt", b"attacker's own file\n")
    s3.put_object(Bucket=BUCKET, Key="results/exec_1/out.json", Body=b"{}")
    return store


class Fallback:
    """Stands for the internal API: records what reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.paths.append(environ["RAW_URI"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"internal api"]


@pytest.fixture(scope="module")
def fallback() -> Fallback:
    return Fallback()


@pytest.fixture(scope="module")
def sock(moto: MotoAws, store: S3WorkspaceStore, fallback: Fallback) -> Iterator[str]:
    """The forwarder on a unix socket, as `sandboxcp local` serves it."""
    path = os.path.join(tempfile.mkdtemp(prefix="s3fwd-"), "internal.sock")
    signing = WorkspaceSigning(BUCKET, urlsplit(moto.endpoint).netloc, ACCESS, SECRET, REGION)
    server = make_server(
        f"unix://{path}",
        0,
        S3Forwarder(moto.endpoint, fallback, bucket=BUCKET, signing=signing),
        threaded=True,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


@pytest.fixture
def shifted_clock() -> Iterator[Any]:
    """shift(delta): the forwarder's clock runs `delta` ahead of real time (until the test ends)."""

    def shift(delta: timedelta) -> None:
        clock.set_clock(lambda: datetime.now(UTC) + delta)

    yield shift
    clock.set_clock(None)


# -- helpers -----------------------------------------------------------------------------------------------
class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


def send(
    sock: str, method: str, target: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw request, the target exactly as given (what hostile code can do)."""
    conn = _Unix(sock)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None and "Content-Length" not in (headers or {}):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def via(url: str) -> str:
    """A presigned URL's target through the socket, as the executor sends it (SANDBOXCP_S3_VIA)."""
    parts = urlsplit(url)
    return "/_s3" + parts.path + (f"?{parts.query}" if parts.query else "")


def form(
    fields: list[tuple[str, str]],
    content: bytes,
    filename: str = "f.bin",
    after: tuple[tuple[str, str], ...] = (),
) -> tuple[bytes, str]:
    """A multipart/form-data body (`fields` in order, the file, then `after`) and its Content-Type."""
    boundary = secrets.token_hex(12)

    def part(name: str, value: str) -> bytes:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        return head.encode() + value.encode() + b"\r\n"

    body = b"".join(part(n, v) for n, v in fields)
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body += content + b"\r\n" + b"".join(part(n, v) for n, v in after) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post_fields(grant: dict[str, Any], key: str, **override: str) -> list[tuple[str, str]]:
    fields = {**grant["fields"], "key": key, "Content-Type": "text/plain", **override}
    return list(fields.items())


def snapshot(s3: Any, moto: MotoAws) -> tuple[list[tuple[str, str]], list[str]]:
    """Every object (key, etag) of both buckets and the DynamoDB tables, read straight from moto."""
    objects = []
    for bucket in (BUCKET, "other-bucket"):
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            objects.append((f"{bucket}/{obj['Key']}", obj["ETag"]))
    return sorted(objects), _client(moto, "dynamodb").list_tables()["TableNames"]


def assert_denied(status: int, body: bytes) -> None:
    assert status == 403, body
    assert b"<Code>AccessDenied</Code>" in body


# -- presigned GET -----------------------------------------------------------------------------------------
def test_a_presigned_get_of_the_sessions_file_is_served(sock, store):
    status, headers, body = send(sock, "GET", via(store.presign_get(ATTACKER, "mine.txt")))
    assert status == 200 and body == b"attacker's own file\n"
    assert headers["content-disposition"] == 'attachment; filename="mine.txt"'


def _forgeries(store: S3WorkspaceStore) -> dict[str, tuple[str, str]]:
    """(method, target) of each request an attacker holding a valid URL for its own file could try."""
    own = via(store.presign_get(ATTACKER, "mine.txt"))
    path, _, query = own.partition("?")
    victim_path = f"/_s3/{BUCKET}/workspace/{VICTIM}/secret.txt"
    signature = query.rsplit("X-Amz-Signature=", 1)[1]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    return {
        "tampered signature": ("GET", own.replace(signature, flipped)),
        "another key of the session": ("GET", f"/_s3/{BUCKET}/workspace/{ATTACKER}/other.txt?{query}"),
        "victim key, attacker's signature": ("GET", f"{victim_path}?{query}"),
        "victim key, fake signature": ("GET", f"{victim_path}?{query.replace(signature, '0' * 64)}"),
        "victim key, empty signature": ("GET", f"{victim_path}?{query.replace(signature, '')}"),
        "unsigned victim key": ("GET", victim_path),
        "extra query parameter": ("GET", f"{own}&versionId=1"),
        "signature given twice": ("GET", f"{own}&X-Amz-Signature={signature}"),
        "HEAD with a GET signature": ("HEAD", own),
        "DELETE with a GET signature": ("DELETE", own),
        "PUT with a GET signature": ("PUT", own),
        "listing": ("GET", f"/_s3/{BUCKET}/"),
        "listing v2": ("GET", f"/_s3/{BUCKET}?list-type=2&prefix=workspace/"),
        "listing, no slash": ("GET", f"/_s3/{BUCKET}"),
        "results of the control plane": ("GET", f"/_s3/{BUCKET}/results/exec_1/out.json?{query}"),
        "another bucket": ("GET", f"/_s3/other-bucket/workspace/{ATTACKER}/mine.txt?{query}"),
        "list the buckets": ("GET", "/_s3/"),
        "moto-api data": ("GET", "/_s3/moto-api/data.json"),
        "moto-api reset": ("POST", "/_s3/moto-api/reset"),
        "moto-api reset by GET": ("GET", "/_s3/moto-api/reset"),
        "dot segments to moto-api": ("POST", "/_s3/../moto-api/reset"),
        "encoded dot segments": ("GET", f"/_s3/{BUCKET}/workspace/{ATTACKER}/%2e%2e/{VICTIM[5:]}?{query}"),
        "path smuggled in the key": ("GET", f"{path}/../../{VICTIM}/secret.txt?{query}"),
        "raw target differs from PATH_INFO": (
            "GET",
            f"/%5Fs3/{BUCKET}/workspace/{VICTIM}/secret.txt?{query}",
        ),
        "absolute-form target": ("GET", f"http://localhost/_s3/{BUCKET}/workspace/{VICTIM}/secret.txt"),
        "double slash": ("GET", f"//_s3/{BUCKET}/workspace/{VICTIM}/secret.txt?{query}"),
    }


def test_everything_not_signed_for_the_exact_request_is_refused_and_never_reaches_moto(sock, store, s3, moto):
    before = snapshot(s3, moto)
    for name, (method, target) in _forgeries(store).items():
        status, _, body = send(sock, method, target, body=b"" if method in ("POST", "PUT") else None)
        if method == "HEAD":
            assert status == 403, name
            continue
        assert status == 403, f"{name}: {status} {body[:300]!r}"
        assert b"<Code>AccessDenied</Code>" in body, name
        assert VICTIM_FILE not in body and b"workspace/" not in body, name
    assert snapshot(s3, moto) == before  # in particular: no reset happened (objects and table still there)


def test_a_url_signed_with_other_credentials_is_refused(sock, moto, s3):
    forged = S3WorkspaceStore(BUCKET, client=_client(moto, "s3", secret="guessed"))
    assert_denied(*send(sock, "GET", via(forged.presign_get(VICTIM, "secret.txt")))[::2])


def test_an_expired_or_future_dated_url_is_refused(sock, store, shifted_clock):
    target = via(store.presign_get(ATTACKER, "mine.txt", expires_s=60))
    shifted_clock(timedelta(seconds=61))
    assert_denied(*send(sock, "GET", target)[::2])
    shifted_clock(timedelta(minutes=-20))
    assert_denied(*send(sock, "GET", target)[::2])
    shifted_clock(timedelta(seconds=50))
    assert send(sock, "GET", target)[0] == 200


def test_a_refusal_is_audited_without_the_signature(sock, store, caplog):
    own = via(store.presign_get(ATTACKER, "mine.txt"))
    with caplog.at_level(logging.INFO, logger="sandbox-control-plane"):
        send(sock, "GET", own.replace(ATTACKER, VICTIM))
    [record] = [r for r in caplog.records if getattr(r, "action", None) == "workspace.sandbox_request"]
    line = record.__dict__
    assert line["audit"] is True and line["outcome"] == "denied" and line["method"] == "GET"
    assert line["session_id"] == VICTIM and line["reason"] == "signature does not match"
    assert line["path"] == f"/_s3/{BUCKET}/workspace/{VICTIM}/mine.txt"  # no query: it holds the signature


def test_other_paths_go_to_the_internal_api_untouched(sock, fallback):
    for target in ("/internal/sessions/sess_x/heartbeat?a=%2F", "/_s3", "/api/v1/health"):
        status, _, body = send(sock, "GET", target)
        assert (status, body) == (200, b"internal api")
        assert fallback.paths[-1] == target


# -- POST policy uploads -----------------------------------------------------------------------------------
def test_a_policy_upload_into_the_sessions_prefix_is_stored(sock, store, s3):
    grant = store.presign_post(ATTACKER, path=None, max_bytes=1000)
    body, ctype = form(post_fields(grant, f"workspace/{ATTACKER}/out/new.txt"), b"hello")
    status, headers, answer = send(sock, "POST", via(grant["url"]), body, {"Content-Type": ctype})
    # S3's default answer to a form upload: 204, no body, the object's ETag (the MD5 of its bytes).
    assert (status, answer) == (204, b""), answer
    assert headers["etag"] == '"5d41402abc4b2a76b9719d911017c592"'
    assert store.read(ATTACKER, "out/new.txt") == b"hello"
    head = s3.head_object(Bucket=BUCKET, Key=f"workspace/{ATTACKER}/out/new.txt")
    assert head["ETag"] == headers["etag"]
    assert head["ContentType"] == "text/plain"  # the form's Content-Type field


def _bad_uploads(store: S3WorkspaceStore) -> dict[str, tuple[str, bytes, str]]:
    """(target, body, content type) of each upload an attacker holding its own policy could try."""
    grant = store.presign_post(ATTACKER, path=None, max_bytes=100)
    url = via(grant["url"])
    victim_key = f"workspace/{VICTIM}/secret.txt"
    own_key = f"workspace/{ATTACKER}/x.txt"
    policy = json.loads(base64.b64decode(grant["fields"]["policy"]))
    widened = json.dumps(
        {**policy, "conditions": [["starts-with", "$key", "workspace/"], *policy["conditions"][1:]]}
    )
    for condition in policy["conditions"]:
        if isinstance(condition, list) and condition[1] == "$key":
            condition[2] = "workspace/"
    retargeted = base64.b64encode(json.dumps(policy).encode()).decode()
    exact = store.presign_post(ATTACKER, path="one.txt", max_bytes=5)

    def upload(fields: list[tuple[str, str]], content: bytes = b"evil", **kw: Any) -> tuple[str, bytes, str]:
        body, ctype = form(fields, content, **kw)
        return url, body, ctype

    return {
        "key in the victim's prefix": upload(post_fields(grant, victim_key)),
        "widened policy": upload(
            post_fields(grant, victim_key, policy=base64.b64encode(widened.encode()).decode())
        ),
        "retargeted policy": upload(post_fields(grant, victim_key, policy=retargeted)),
        "fake signature": upload(post_fields(grant, victim_key, **{"x-amz-signature": "0" * 64})),
        "no signature": upload([f for f in post_fields(grant, own_key) if f[0] != "x-amz-signature"]),
        "other credential": upload(
            post_fields(grant, own_key, **{"x-amz-credential": grant["fields"]["x-amz-credential"] + "x"})
        ),
        "over content-length-range": upload(post_fields(grant, own_key), b"x" * 101),
        "key other than the policy's exact key": (
            via(exact["url"]),
            *form(post_fields(exact, f"workspace/{ATTACKER}/two.txt"), b"12345"),
        ),
        "field no condition names": upload(post_fields(grant, own_key, acl="public-read")),
        "metadata no condition names": upload(post_fields(grant, own_key, **{"x-amz-meta-a": "1"})),
        "redirect no condition names": upload(
            post_fields(grant, own_key, success_action_redirect="http://example.com/")
        ),
        "key given twice": upload([*post_fields(grant, own_key), ("key", victim_key)]),
        "key in upper case": upload(
            [("KEY" if n == "key" else n, v) for n, v in post_fields(grant, own_key)]
        ),
        "dot segments in the key": upload(post_fields(grant, f"workspace/{ATTACKER}/../{VICTIM[5:]}/x")),
        "filename with dot segments": upload(
            post_fields(grant, f"workspace/{ATTACKER}/${{filename}}"), filename=".."
        ),
        "field after the file": upload(post_fields(grant, own_key), after=(("key", victim_key),)),
        "field in another charset": (url, *_field_charset(form(post_fields(grant, own_key), b"evil"))),
    }


def _field_charset(body_and_type: tuple[bytes, str]) -> tuple[bytes, str]:
    """The form with its key field declared latin-1 (a parser decoding by charset could read another key)."""
    body, ctype = body_and_type
    plain = b'name="key"\r\n\r\n'
    assert plain in body
    return body.replace(plain, b'name="key"\r\nContent-Type: text/plain; charset=latin-1\r\n\r\n'), ctype


def test_forged_or_out_of_policy_uploads_are_refused_and_never_reach_moto(sock, store, s3, moto):
    before = snapshot(s3, moto)
    for name, (target, body, ctype) in _bad_uploads(store).items():
        status, _, answer = send(sock, "POST", target, body, {"Content-Type": ctype})
        assert status == 403, f"{name}: {status} {answer[:300]!r}"
        assert b"<Code>AccessDenied</Code>" in answer, name
    assert snapshot(s3, moto) == before
    assert store.read(VICTIM, "secret.txt") == VICTIM_FILE


def test_malformed_or_misdirected_uploads_are_refused(sock, store, s3, moto):
    grant = store.presign_post(ATTACKER, path=None, max_bytes=100)
    body, ctype = form(post_fields(grant, f"workspace/{ATTACKER}/x.txt"), b"fine")
    before = snapshot(s3, moto)
    cases = {
        "other bucket": ("/_s3/other-bucket", body, ctype),
        "query (delete objects)": (via(grant["url"]) + "?delete", body, ctype),
        "not multipart": (via(grant["url"]), b"key=x", "application/x-www-form-urlencoded"),
        "truncated": (via(grant["url"]), body[:-20], ctype),
    }
    for name, (target, payload, content_type) in cases.items():
        status, _, answer = send(sock, "POST", target, payload, {"Content-Type": content_type})
        assert status == 403, f"{name}: {status} {answer[:300]!r}"
    # A Content-Length over the limit is refused before a byte of the body is read.
    status, _, _ = send(
        sock, "POST", via(grant["url"]), b"", {"Content-Type": ctype, "Content-Length": str(200 << 20)}
    )
    assert status == 403
    assert snapshot(s3, moto) == before


def test_an_expired_policy_is_refused(sock, store, shifted_clock):
    grant = store.presign_post(ATTACKER, path=None, max_bytes=100, expires_s=60)
    body, ctype = form(post_fields(grant, f"workspace/{ATTACKER}/late.txt"), b"late")
    shifted_clock(timedelta(seconds=61))
    assert_denied(*send(sock, "POST", via(grant["url"]), body, {"Content-Type": ctype})[::2])
    assert store.head(ATTACKER, "late.txt") is None


# -- exact keys and large bodies ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_are_fetched_by_exactly_the_signed_key(sock, store, name):
    store.put(VICTIM, name, b"victim:" + name.encode())
    store.put(ATTACKER, name, b"attacker:" + name.encode())
    status, headers, body = send(sock, "GET", via(store.presign_get(ATTACKER, name)))
    assert (status, body) == (200, b"attacker:" + name.encode())
    # Header values are ASCII: a non-ASCII name goes as RFC 6266's filename* (moto cannot send it raw).
    disposition = headers["content-disposition"]
    assert disposition.startswith("attachment; filename=") and disposition.isascii()
    if not name.isascii():
        assert disposition.endswith("filename*=UTF-8''" + quote(name.rsplit("/", 1)[-1], safe=""))


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_round_trip_through_the_executor_client(sock, store, s3, name):
    """The executor uploads a file by name (POST policy) and a fresh agent downloads it (presigned GET):
    the key in S3 and the file on disk are exactly the name."""
    session = SimpleNamespace(
        session_id=ATTACKER, resources=SimpleNamespace(disk_mb=64), workspace_rev=0, workspace_open_until=None
    )
    deps = SimpleNamespace(workspace=store)
    content = name.encode() * 3
    with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as dst:
        Path(src, name).parent.mkdir(parents=True, exist_ok=True)
        Path(src, name).write_bytes(content)
        plan = parse_workspace_plan(workspace_plan(deps, session))  # type: ignore[arg-type]
        assert plan is not None
        uploaded = WorkspaceSync(src, via=f"unix://{sock}").upload(plan, [(name, len(content))])
        assert [a["path"] for a in uploaded.artifacts] == [name], uploaded.notes
        assert s3.get_object(Bucket=BUCKET, Key=f"workspace/{ATTACKER}/{name}")["Body"].read() == content
        plan = parse_workspace_plan(workspace_plan(deps, session))  # type: ignore[arg-type]
        assert plan is not None
        WorkspaceSync(dst, via=f"unix://{sock}").download(plan)
        assert Path(dst, name).read_bytes() == content


def test_a_large_upload_and_download_pass_unchanged(sock, store):
    payload = os.urandom(12 * 1024 * 1024 + 7)  # spooled to disk on the way in, streamed on the way out
    grant = store.presign_post(ATTACKER, path="big.bin", max_bytes=len(payload))
    body, ctype = form(post_fields(grant, f"workspace/{ATTACKER}/big.bin"), payload)
    status, _, answer = send(sock, "POST", via(grant["url"]), body, {"Content-Type": ctype})
    assert status in (200, 201, 204), answer
    status, headers, got = send(sock, "GET", via(store.presign_get(ATTACKER, "big.bin")))
    assert status == 200 and got == payload and headers["content-length"] == str(len(payload))


def test_signing_identity_comes_from_boto3s_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    signing = WorkspaceSigning.from_boto3(BUCKET, "http://127.0.0.1:4566")
    assert (signing.host, signing.access_key, signing.region) == ("127.0.0.1:4566", "local", "us-east-1")
    assert "secret_key" not in repr(signing)
