"""Workspace file endpoints on moto S3: upload, presigned upload, download (inline and 307), listing,
traversal, quota, tenant isolation, the 24 h purge."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from sandboxcp.domain import clock
from sandboxcp.domain.states import SessionStatus
from sandboxcp.services.files import purge_due_workspaces
from tests.functional.conftest import SAMPLE_SESSION, body, invoke, sample_event, seed_session, with_path

BOUNDARY = "sandboxcpboundary"


def _multipart(fields: dict[str, tuple[str | None, bytes]]) -> bytes:
    out = b""
    for name, (filename, content) in fields.items():
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def _upload(path: str | None, content: bytes, *, tenant: str = "tenant-a") -> dict:
    fields = {"file": ("input.csv", content)}
    if path is not None:
        fields["path"] = (None, path.encode())
    event = sample_event("files_upload")
    event["headers"]["Content-Type"] = f"multipart/form-data; boundary={BOUNDARY}"
    event["body"] = base64.b64encode(_multipart(fields)).decode()
    event["isBase64Encoded"] = True
    event["requestContext"]["authorizer"]["tenant_id"] = tenant
    return invoke("files_upload", event)


def _download(path: str, *, tenant: str = "tenant-a") -> dict:
    event = with_path(sample_event("files_download"), path=path)
    event["requestContext"]["authorizer"]["tenant_id"] = tenant
    return invoke("files_download", event)


def test_upload_list_download_round_trip(deps):
    seed_session(deps)
    data = b"a,b\n1,2\n\x00\xff binary too"
    resp = _upload("data/input.csv", data)
    assert resp["statusCode"] == 200, resp
    assert body(resp) == {"path": "data/input.csv", "size": len(data)}
    listed = body(invoke("files_list", sample_event("files_list")))
    assert listed["total"] == 1 and listed["files"][0]["path"] == "data/input.csv"
    got = _download("data/input.csv")
    assert got["statusCode"] == 200 and got["isBase64Encoded"]
    assert base64.b64decode(got["body"]) == data
    assert got["multiValueHeaders"]["Content-Type"] == ["application/octet-stream"]


def test_upload_defaults_to_the_file_name(deps):
    seed_session(deps)
    assert body(_upload(None, b"x"))["path"] == "input.csv"


def test_large_file_downloads_through_a_presigned_redirect(deps):
    seed_session(deps)
    big = b"z" * (5 * 1024 * 1024)
    deps.workspace.put(SAMPLE_SESSION, "out/big.bin", big)
    resp = _download("out/big.bin")
    assert resp["statusCode"] == 307
    location = resp["multiValueHeaders"]["Location"][0]
    assert f"/workspace/{SAMPLE_SESSION}/out/big.bin" in location and "X-Amz-Expires=3600" in location


def test_missing_file_is_404_naming_the_workspace_path(deps):
    seed_session(deps)
    resp = _download("nope/missing.txt")
    assert resp["statusCode"] == 404
    err = body(resp)
    assert (
        err["error_code"] == "Sandbox.FileNotFound" and "/workspace/nope/missing.txt" in err["error_detail"]
    )


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "%2e%2e%2fx", "..%2F..%2Fetc%2Fpasswd"])
def test_traversal_is_refused(deps, path):
    seed_session(deps)
    assert _upload(path, b"x")["statusCode"] == 400
    assert _download(path)["statusCode"] == 400


def test_presigned_upload_enforces_the_100_mb_limit_and_the_quota(deps):
    seed_session(deps)
    event = sample_event("files_presign_upload")
    ok = invoke("files_presign_upload", event)
    assert ok["statusCode"] == 200, ok
    presigned = body(ok)
    policy = json.loads(base64.b64decode(presigned["fields"]["policy"]))
    assert ["content-length-range", 0, 20 * 1024 * 1024] in policy["conditions"]
    too_big = sample_event("files_presign_upload")
    too_big["body"] = json.dumps({"path": "huge.bin", "size": 100 * 1024 * 1024 + 1})
    resp = invoke("files_presign_upload", too_big)
    assert resp["statusCode"] == 400 and "100 MB" in body(resp)["error_detail"]


class _NearlyFullWorkspace:
    """The real S3 store, reporting 50 MB less free space than the 1 GiB quota: filling 1 GiB in moto would
    only slow the test; the rule under test is the service's arithmetic."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def usage_bytes(self, session_id):
        return self.real.usage_bytes(session_id) + 1024**3 - 50 * 1024**2


def test_quota_counts_the_whole_workspace(deps):
    seed_session(deps)  # disk 1Gi
    deps.workspace = _NearlyFullWorkspace(deps.workspace)
    event = sample_event("files_presign_upload")
    event["body"] = json.dumps({"path": "more.bin", "size": 60 * 1024 * 1024})
    resp = invoke("files_presign_upload", event)
    assert resp["statusCode"] == 400 and body(resp)["error_code"] == "Sandbox.QuotaExceeded"
    assert "1Gi" in body(resp)["error_detail"]
    event["body"] = json.dumps({"path": "more.bin", "size": 40 * 1024 * 1024})
    assert invoke("files_presign_upload", event)["statusCode"] == 200


def test_another_tenant_can_neither_list_download_nor_upload(deps):
    seed_session(deps)
    deps.workspace.put(SAMPLE_SESSION, "secret.txt", b"s")
    assert _upload("x.txt", b"x", tenant="tenant-other")["statusCode"] == 404
    assert _download("secret.txt", tenant="tenant-other")["statusCode"] == 404
    listing = sample_event("files_list")
    listing["requestContext"]["authorizer"]["tenant_id"] = "tenant-other"
    assert invoke("files_list", listing)["statusCode"] == 404
    assert [f.path for f in deps.workspace.list(SAMPLE_SESSION)] == ["secret.txt"]


def _submitted_plan(deps) -> dict:
    assert invoke("executions_submit", sample_event("executions_submit"))["statusCode"] == 200
    return deps.executor.workspaces[-1]


def _workspace_urls(request: object = None, *, caller: str = SAMPLE_SESSION) -> dict:
    event = with_path(sample_event("internal_workspace_urls"), session_id=SAMPLE_SESSION)
    event["requestContext"]["authorizer"]["session_id"] = caller
    event["body"] = None if request is None else json.dumps(request)  # none: as executors before 2026-12-02
    return invoke("internal_workspace_urls", event)


def _listing(request: object = None) -> dict:
    resp = _workspace_urls(request)
    assert resp["statusCode"] == 200, resp
    return body(resp)


def test_a_submit_sends_the_workspace_revision_and_no_listing(deps):
    """A submit costs no S3 listing (docs/workspace.md): the plan names the revision; the executor asks
    for the listing (internal workspace-urls) only when it has not synced that revision."""
    seed_session(deps)
    deps.workspace.put(SAMPLE_SESSION, "data/input.csv", b"1,2")  # as a run's own upload: no new revision
    plan = _submitted_plan(deps)
    assert plan["rev"] == 0 and plan["downloads"] is None
    assert plan["upload"]["key_prefix"] == f"workspace/{SAMPLE_SESSION}/"
    assert plan["quota_bytes"] == 1024 * 1024 * 1024
    listed = _listing()
    assert listed["rev"] == 0
    assert [d["path"] for d in listed["downloads"]] == ["data/input.csv"]
    assert f"/workspace/{SAMPLE_SESSION}/data/input.csv" in listed["downloads"][0]["url"]


def test_an_upload_through_the_api_moves_the_revision(deps):
    seed_session(deps)
    assert _upload("a.txt", b"a")["statusCode"] == 200
    assert _upload("b.txt", b"b")["statusCode"] == 200
    plan = _submitted_plan(deps)
    assert plan["rev"] == 2 and plan["downloads"] is None
    assert _listing()["rev"] == 2


def test_while_a_presigned_upload_may_land_every_plan_carries_the_listing(deps):
    """The control plane does not see a presigned upload land: until its URL expires, plans have no
    revision to trust (null) and list the workspace each time."""
    seed_session(deps)
    assert invoke("files_presign_upload", sample_event("files_presign_upload"))["statusCode"] == 200
    deps.workspace.put(SAMPLE_SESSION, "landed.csv", b"x")  # the client's upload, straight to S3
    plan = _submitted_plan(deps)
    assert plan["rev"] is None
    assert [d["path"] for d in plan["downloads"]] == ["landed.csv"]
    later = clock.now() + timedelta(hours=1, minutes=1)  # the URL has expired
    clock.set_clock(lambda: later)
    try:
        plan = _submitted_plan(deps)
    finally:
        clock.set_clock(None)
    assert plan["rev"] == 1 and plan["downloads"] is None


def test_an_executor_that_presigns_on_demand_gets_the_window_listing_without_urls(deps):
    """While a presigned upload may land every plan lists the workspace; an executor that announced
    `workspace-presign-on-demand` gets it without URLs (it asks for GETs of the files it lacks), an
    executor that did not (before 2026-12-02) gets a GET per file."""
    seed_session(deps)
    assert invoke("files_presign_upload", sample_event("files_presign_upload"))["statusCode"] == 200
    deps.workspace.put(SAMPLE_SESSION, "landed.csv", b"x")
    (old,) = _submitted_plan(deps)["downloads"]
    assert old["path"] == "landed.csv" and old["url"].startswith("http")
    features = {"executor_features": ["workspace-presign-on-demand"]}
    deps.sessions.update_fields(SAMPLE_SESSION, features, only_if=[SessionStatus.RUNNING])
    deps.recent_sessions.drop(SAMPLE_SESSION)  # this function instance read the session before
    plan = _submitted_plan(deps)
    assert plan["rev"] is None
    (listed,) = plan["downloads"]
    assert (listed["path"], listed["etag"]) == ("landed.csv", old["etag"]) and "url" not in listed


def test_workspace_is_purged_24_h_after_the_session_ended(deps):
    seed_session(deps, "sess_0000000000000001")
    seed_session(deps, "sess_0000000000000002")
    deps.workspace.put("sess_0000000000000001", "a.txt", b"a")
    deps.workspace.put("sess_0000000000000002", "b.txt", b"b")
    deps.sessions.transition("sess_0000000000000001", SessionStatus.TERMINATED, now=clock.now())
    assert purge_due_workspaces(deps, now=clock.now() + timedelta(hours=23)) == []
    assert purge_due_workspaces(deps, now=clock.now() + timedelta(hours=25)) == ["sess_0000000000000001"]
    assert deps.workspace.list("sess_0000000000000001") == []
    assert [f.path for f in deps.workspace.list("sess_0000000000000002")] == ["b.txt"]
    assert purge_due_workspaces(deps, now=clock.now() + timedelta(hours=26)) == []


def test_the_executors_listing_covers_more_than_a_thousand_files(deps):
    """S3 lists 1,000 keys a page: a sandbox must still sync a file written after the thousandth."""
    seed_session(deps)
    for n in range(1000):
        deps.workspace.put(SAMPLE_SESSION, f"many/f{n:04}.txt", b"x")
    assert _upload("zz-after.txt", b"new")["statusCode"] == 200
    paths = {d["path"] for d in _listing()["downloads"]}
    assert len(paths) == 1001 and "zz-after.txt" in paths


def test_the_executor_gets_the_listing_bare_and_presigned_gets_for_what_it_lacks(deps):
    """Presigning costs about a millisecond a file: an executor asks for the listing without URLs
    (`urls: false`) and then for GETs of the files whose etag it lacks (`paths`), not for every file."""
    seed_session(deps)
    deps.workspace.put(SAMPLE_SESSION, "a.txt", b"a")
    deps.workspace.put(SAMPLE_SESSION, "d/b.txt", b"b")
    bare = _listing({"urls": False})
    assert [(d["path"], d["size"], "url" in d) for d in bare["downloads"]] == [
        ("a.txt", 1, False),
        ("d/b.txt", 1, False),
    ]
    assert all(d["etag"] for d in bare["downloads"]) and bare["upload"]["key_prefix"]
    assert all("url" in d for d in _listing({})["downloads"])  # executors before 2026-12-02: every GET
    urls = _listing({"paths": ["d/b.txt", "not-there.txt"]})["urls"]
    assert set(urls) == {"d/b.txt", "not-there.txt"}
    assert f"/workspace/{SAMPLE_SESSION}/d/b.txt?" in urls["d/b.txt"]


@pytest.mark.parametrize(
    "request_body",
    [
        {"paths": ["../sess_0000000000000002/secret.txt"]},
        {"paths": ["a/../../sess_0000000000000002/x"]},
        {"paths": ["/etc/passwd"]},
        {"paths": ["a\\b"]},
        {"paths": [""]},
        {"paths": ["a//b"]},
        {"paths": ["a/./b"]},
        {"paths": ["nul\u0000.txt"]},
        {"paths": ["x" * 1025]},
        {"paths": ["f"] * 1001},
        {"paths": "a.txt"},
        {"paths": [1]},
        {"urls": "no"},
    ],
)
def test_workspace_urls_refuses_what_is_not_a_plain_workspace_path(deps, request_body):
    seed_session(deps)
    resp = _workspace_urls(request_body)
    assert resp["statusCode"] == 400, resp
    error = body(resp)
    assert error["error_code"] == "Sandbox.InvalidParameter"
    assert {"description", "error_detail", "solution", "request_id"} <= set(error)


def test_workspace_urls_answers_only_the_callers_own_session(deps):
    seed_session(deps)
    resp = _workspace_urls({"paths": ["a.txt"]}, caller="sess_0000000000000002")
    assert resp["statusCode"] == 403, resp
    assert "urls" not in body(resp)
