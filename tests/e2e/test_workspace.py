"""Workspace files end to end on a real executor: upload -> code reads it -> code writes -> artifact ->
download the same bytes; large files through presigned URLs; traversal refused; tenant isolation."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e
TERMINAL = {"completed", "failed", "timeout", "crashed"}

PROCESS = (
    "import csv\n"
    "def handler(event):\n"
    "    rows = list(csv.reader(open('/workspace/data/input.csv')))\n"
    "    import os\n"
    "    os.makedirs('/workspace/output', exist_ok=True)\n"
    "    with open('/workspace/output/result.csv', 'w') as f:\n"
    "        for row in rows:\n"
    "            f.write(','.join(row + [str(sum(int(x) for x in row))]) + '\\n')\n"
    "    return len(rows)\n"
)


def _run(api, sid, code):  # type: ignore[no-untyped-def]
    eid = api.post(f"/sessions/{sid}/execute", json={"code": code, "language": "python"}).json()[
        "execution_id"
    ]
    assert wait_for(lambda: api.get(f"/executions/{eid}/status").json()["status"] in TERMINAL, timeout=30)
    return api.get(f"/executions/{eid}").json()


def test_upload_read_write_artifact_download(api, session):  # type: ignore[no-untyped-def]
    up = api.post(
        f"/sessions/{session}/files/upload",
        files={"file": ("input.csv", b"1,2\n3,4\n")},
        data={"path": "data/input.csv"},
    )
    assert up.status_code == 200, up.text
    assert up.json() == {"path": "data/input.csv", "size": 8}
    done = _run(api, session, PROCESS)
    assert done["status"] == "completed", done["result"]["stderr"]
    assert done["result"]["return_value"] == 2
    [artifact] = [a for a in done["result"]["artifacts"] if a["path"] == "output/result.csv"]
    assert artifact["size"] == len(b"1,2,3\n3,4,7\n") and artifact["mime_type"] == "text/csv"
    assert artifact["type"] == "artifact"
    got = api.get(f"/sessions/{session}/files/output/result.csv")
    assert got.status_code == 200 and got.content == b"1,2,3\n3,4,7\n"
    listed = {f["path"] for f in api.get(f"/sessions/{session}/files").json()["files"]}
    assert {"data/input.csv", "output/result.csv"} <= listed


def test_large_file_redirects_to_a_presigned_url(api, session):  # type: ignore[no-untyped-def]
    code = "def handler(event):\n    open('/workspace/big.bin', 'wb').write(bytes(range(256)) * 20480)\n"
    done = _run(api, session, code)
    assert done["status"] == "completed", done["result"]["stderr"]
    resp = api.get(f"/sessions/{session}/files/big.bin", follow_redirects=False)
    assert resp.status_code == 307
    fetched = httpx.get(resp.headers["location"], timeout=30)
    assert fetched.status_code == 200 and fetched.content == bytes(range(256)) * 20480
    assert 'filename="big.bin"' in fetched.headers.get("content-disposition", "")


def test_presigned_upload_then_code_reads_it(api, session):  # type: ignore[no-untyped-def]
    payload = os.urandom(6 * 1024 * 1024)
    grant = api.post(
        f"/sessions/{session}/files/upload-url", json={"path": "in/blob.bin", "size": len(payload)}
    )
    assert grant.status_code == 200, grant.text
    form = grant.json()
    posted = httpx.post(form["url"], data=form["fields"], files={"file": ("blob.bin", payload)}, timeout=60)
    assert posted.status_code in (200, 201, 204), posted.text
    done = _run(api, session, "def handler(e):\n    return len(open('/workspace/in/blob.bin', 'rb').read())")
    assert done["result"]["return_value"] == len(payload)


@pytest.mark.parametrize(
    "path", ["../x", "%2e%2e/x", "a/../../b", "..%2F..%2Fetc%2Fpasswd", "%252e%252e/etc"]
)
def test_traversal_is_refused(api, session, path):  # type: ignore[no-untyped-def]
    resp = api.get(f"/sessions/{session}/files/{path}")
    assert resp.status_code in (400, 404), resp.text
    up = api.post(f"/sessions/{session}/files/upload", files={"file": ("x", b"x")}, data={"path": path})
    assert up.status_code == 400
    abs_up = api.post(
        f"/sessions/{session}/files/upload", files={"file": ("x", b"x")}, data={"path": "/etc/passwd"}
    )
    assert abs_up.status_code == 400


def test_over_100_mb_is_refused_naming_the_limit(api, session):  # type: ignore[no-untyped-def]
    resp = api.post(
        f"/sessions/{session}/files/upload-url", json={"path": "huge.bin", "size": 101 * 1024 * 1024}
    )
    assert resp.status_code == 400 and "100 MB" in resp.json()["error_detail"]


def test_another_tenant_cannot_touch_the_workspace(stack, api, session):  # type: ignore[no-untyped-def]
    env = {**os.environ, "SANDBOXCP_URL": stack.url, "SANDBOXCP_API_KEY": stack.admin_key}
    out = subprocess.run(
        [sys.executable, "-m", "sandboxcp.cli", "keys", "create", "--tenant", "intruder"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    with stack.client(out.strip().splitlines()[-1]) as other:
        assert other.get(f"/sessions/{session}/files").status_code == 404
        assert other.get(f"/sessions/{session}/files/data/input.csv").status_code == 404
        up = other.post(f"/sessions/{session}/files/upload", files={"file": ("x", b"x")}, data={"path": "x"})
        assert up.status_code == 404
