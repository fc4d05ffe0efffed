"""sandbox_executor workspace sync: presigned downloads before the run, artifact uploads after it.

End to end against a real executor and ``FakeS3`` (over TCP, and over a unix socket under ``/_s3``
as in local mode), plus in-process tests of ``WorkspaceSync`` for the path rules, symlinks, retries
and the POST policy details.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_executor import workspace as ws
from sandbox_executor.artifacts import workspace_usage
from sandbox_executor.config import ConfigError, load_config
from sandbox_executor.http_client import Endpoint, presigned_target
from sandbox_executor.validation import ValidationError, parse_execute_request, parse_workspace_plan
from sandbox_executor.workspace import SyncError, WorkspaceSync, path_problem
from tests.unit.executor_helpers import (
    SESSION_ID,
    ExecutorProcess,
    FakeControlPlane,
    FakeS3,
    new_execution_id,
)

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is required")

PREFIX = f"workspace/{SESSION_ID}/"
MIB = 1 << 20


# Function-scoped on purpose: a fresh executor, workspace and fake S3 per test, so no test sees files,
# objects or an ETag cache another test left behind (these used to fail depending on the order).
@pytest.fixture
def cp() -> Iterator[FakeControlPlane]:
    with FakeControlPlane() as plane:
        yield plane


@pytest.fixture
def s3() -> Iterator[FakeS3]:
    with FakeS3() as fake:
        yield fake


@pytest.fixture
def ex(cp: FakeControlPlane) -> Iterator[ExecutorProcess]:
    executor = ExecutorProcess(cp)
    try:
        executor.wait_ready()
        yield executor
    finally:
        log = executor.log_text()
        executor.terminate()
        assert "X-Amz-Signature" not in log and "Signature=" not in log, "a presigned URL leaked into the log"


@pytest.fixture(autouse=True)
def _clean_fakes(s3: FakeS3) -> None:
    s3.fail_posts.clear()
    s3.fail_gets.clear()
    s3.etag_header = True


def _files(result: dict[str, Any]) -> list[str]:
    return [a["path"] for a in result["artifacts"]]


# -- end to end: downloads ----------------------------------------------------------------------


def test_planned_files_are_downloaded_before_the_run(ex: ExecutorProcess, s3: FakeS3) -> None:
    s3.objects[PREFIX + "dl/input.csv"] = b"a,b\n1,2\n"
    s3.objects[PREFIX + "dl/deep/er/blob.bin"] = bytes(range(256))
    code = (
        "def handler(event):\n"
        "    return [open('dl/input.csv').read(), len(open('dl/deep/er/blob.bin', 'rb').read())]\n"
    )
    result = ex.run(code, workspace=s3.plan(PREFIX))
    assert result["status"] == "success", result["stderr"]
    assert result["return_value"] == ["a,b\n1,2\n", 256]
    assert result["artifacts"] == []  # inputs synced in are not outputs of the run
    assert (ex.workspace / "dl/deep/er/blob.bin").read_bytes() == bytes(range(256))
    assert not [p for p in (ex.workspace / "dl").iterdir() if p.name.startswith(".sbx-")]
    (get,) = s3.gets(PREFIX + "dl/input.csv")
    assert get.host == s3.url.removeprefix("http://") and get.transport == "tcp"
    assert "workspace_downloaded" in ex.log_text()


def test_a_plan_without_a_listing_is_trusted_at_the_revision_this_agent_synced(
    ex: ExecutorProcess, cp: FakeControlPlane, s3: FakeS3
) -> None:
    """The control plane lists nothing with a submit (docs/workspace.md): a new agent, or one behind the
    plan's revision, asks for the listing with its callback token (without URLs), then for presigned
    GETs of the files it lacks, and only those; one at that revision asks nothing."""
    key = PREFIX + "rev/a.txt"
    s3.objects[key] = b"one"
    s3.objects[PREFIX + "rev/kept.txt"] = b"kept"
    cp.listing = {**s3.plan(PREFIX), "rev": 5}
    lean = {**s3.plan(PREFIX), "rev": 5, "downloads": None}
    code = "def handler(event):\n    return open('rev/a.txt').read()\n"
    first = ex.run(code, workspace=lean)  # a new agent: it has synced nothing
    assert first["return_value"] == "one", first["stderr"]
    assert cp.workspace_requests() == [{"urls": False}, {"paths": ["rev/a.txt", "rev/kept.txt"]}]
    assert len(s3.gets(key)) == 1
    again = ex.run(code, workspace=lean)  # the same revision: nothing asked, nothing fetched
    assert again["return_value"] == "one"
    assert len(cp.workspace_requests()) == 2 and len(s3.gets(key)) == 1
    s3.objects[key] = b"two"  # written through the API: a new revision
    cp.listing = {**s3.plan(PREFIX), "rev": 6}
    newer = ex.run(code, workspace={**lean, "rev": 6})
    assert newer["return_value"] == "two"
    assert cp.workspace_requests()[2:] == [{"urls": False}, {"paths": ["rev/a.txt"]}]  # not kept.txt
    assert len(s3.gets(key)) == 2 and len(s3.gets(PREFIX + "rev/kept.txt")) == 1
    cp.listing = None  # the control plane cannot answer with a listing: the run fails, and says why
    lost = ex.run(code, workspace={**lean, "rev": 7})
    assert lost["status"] != "success"
    assert "listing could not be had" in lost["stderr"]


def test_files_listed_without_urls_are_presigned_when_lacking_and_no_url_fails_the_run(
    ex: ExecutorProcess, cp: FakeControlPlane, s3: FakeS3
) -> None:
    """A plan may list files without URLs: the sync asks for GETs of those it lacks. No URL for one
    fails the run, and says why."""
    for n in range(3):
        s3.objects[PREFIX + f"b/{n}.txt"] = str(n).encode()
    cp.listing = s3.plan(PREFIX)
    bare = cp.workspace_urls({"urls": False})
    code = "def handler(event):\n    return [open(f'b/{n}.txt').read() for n in range(3)]\n"
    done = ex.run(code, workspace={**bare, "rev": None})
    assert done["return_value"] == ["0", "1", "2"], done["stderr"]
    assert cp.workspace_requests() == [{"paths": ["b/0.txt", "b/1.txt", "b/2.txt"]}]
    s3.objects[PREFIX + "b/0.txt"] = b"changed"
    cp.listing = s3.plan(PREFIX)
    bare = cp.workspace_urls({"urls": False})
    cp.listing = {**cp.listing, "downloads": []}  # from now on it has no URL for any file
    failed = ex.run(code, workspace={**bare, "rev": None})
    assert failed["status"] != "success" and "no presigned URL" in failed["stderr"], failed


def test_presigning_asks_in_batches_of_max_presign_paths(tmp_path: Path) -> None:
    from sandbox_executor.contract import MAX_PRESIGN_PATHS
    from sandbox_executor.validation import Download

    sync = WorkspaceSync(str(tmp_path))
    asked: list[list[str]] = []
    sync.presign = lambda paths: asked.append(paths) or {p: f"http://s3/{p}" for p in paths}
    todo = [Download(path=f"f{n}", url=None) for n in range(MAX_PRESIGN_PATHS + 5)]
    todo.append(Download(path="signed", url="http://s3/signed"))
    signed = sync._presigned(todo)
    assert [len(batch) for batch in asked] == [MAX_PRESIGN_PATHS, 5]
    assert [d.url for d in signed] == [f"http://s3/{d.path}" for d in todo]
    sync.presign = lambda paths: None  # the control plane could not be reached
    with pytest.raises(SyncError, match="no presigned URLs"):
        sync._presigned(todo)


def test_a_new_agent_at_revision_0_runs_without_asking_for_the_listing(
    ex: ExecutorProcess, cp: FakeControlPlane, s3: FakeS3
) -> None:
    """Revision 0: nothing was ever written through the API, so the workspace holds only what this sandbox
    wrote itself. A new session's first run must not depend on the control plane answering a listing
    (under a burst it may not in time); a later revision still asks."""
    cp.listing = None  # were the listing asked for, the run would fail
    code = "def handler(event):\n    open('mine.txt', 'w').write('x')\n    return 1\n"
    first = ex.run(code, workspace={**s3.plan(PREFIX), "rev": 0, "downloads": None})
    assert first["status"] == "success" and first["return_value"] == 1, first["stderr"]
    assert cp.workspace_requests() == []
    cp.listing = {**s3.plan(PREFIX), "rev": 1}
    later = ex.run(
        "def handler(event):\n    return 2\n", workspace={**s3.plan(PREFIX), "rev": 1, "downloads": None}
    )
    # mine.txt is listed, but this agent uploaded it: it has its etag, so it asks no GET for it
    assert later["return_value"] == 2 and cp.workspace_requests() == [{"urls": False}]


def test_an_unchanged_etag_is_not_downloaded_again(ex: ExecutorProcess, s3: FakeS3) -> None:
    key = PREFIX + "etag/data.txt"
    s3.objects[key] = b"version 1"
    code = "def handler(event):\n    return open('etag/data.txt').read()\n"
    assert ex.run(code, workspace=s3.plan(PREFIX))["return_value"] == "version 1"
    assert ex.run(code, workspace=s3.plan(PREFIX))["return_value"] == "version 1"
    assert len(s3.gets(key)) == 1
    s3.objects[key] = b"version 2"  # a new etag
    assert ex.run(code, workspace=s3.plan(PREFIX))["return_value"] == "version 2"
    assert len(s3.gets(key)) == 2
    # Deleted by code since: fetched again although its etag is known.
    (ex.workspace / "etag/data.txt").unlink()
    assert ex.run(code, workspace=s3.plan(PREFIX))["return_value"] == "version 2"
    assert len(s3.gets(key)) == 3


def test_a_failed_download_fails_the_execution_without_running_it(ex: ExecutorProcess, s3: FakeS3) -> None:
    missing = {"path": "fail/missing.csv", "size": 3, "etag": "abc", "url": s3.presigned_get(PREFIX + "nope")}
    result = ex.run("touch fail-marker", "shell", workspace=s3.plan(PREFIX, downloads=[missing]))
    assert (result["status"], result["exit_code"]) == ("failed", -1)
    assert result["stderr"] == "workspace sync failed: fail/missing.csv: HTTP 404 NoSuchKey\n"
    assert result["artifacts"] == []
    assert not (ex.workspace / "fail-marker").exists()
    assert "X-Amz" not in result["stderr"]


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/escape.txt", "a/../../escape.txt", "a\x00b"])
def test_unsafe_download_paths_are_refused(ex: ExecutorProcess, s3: FakeS3, path: str) -> None:
    s3.objects[PREFIX + "escape.txt"] = b"x"
    bad = {"path": path, "size": 1, "etag": "e", "url": s3.presigned_get(PREFIX + "escape.txt")}
    before = len(s3.gets())
    result = ex.run("touch refused-marker", "shell", workspace=s3.plan(PREFIX, downloads=[bad]))
    assert (result["status"], result["exit_code"]) == ("failed", -1)
    assert result["stderr"].startswith(f"workspace sync failed: refusing to write {path!r}")
    assert len(s3.gets()) == before
    assert not (ex.dir / "escape.txt").exists() and not (ex.workspace / "refused-marker").exists()


# -- end to end: uploads ------------------------------------------------------------------------


def test_files_the_run_writes_are_uploaded_and_reported(ex: ExecutorProcess, s3: FakeS3) -> None:
    code = (
        "import os, json\n"
        "def handler(event):\n"
        "    os.makedirs('up/out', exist_ok=True)\n"
        "    json.dump({'ok': True}, open('up/out/result.json', 'w'))\n"
        "    open('up/notes', 'wb').write(b'\\x00\\x01raw')\n"
    )
    result = ex.run(code, workspace=s3.plan(PREFIX))
    assert result["status"] == "success", result["stderr"]
    assert result["artifacts"] == [
        {"path": "up/notes", "size": 5, "mime_type": "application/octet-stream", "type": "artifact"},
        {"path": "up/out/result.json", "size": 12, "mime_type": "application/json", "type": "artifact"},
    ]
    (upload,) = s3.uploaded(PREFIX + "up/out/result.json")
    assert upload.data == b'{"ok": true}'
    assert upload.filename == "result.json" and upload.content_type == "application/json"
    assert [name for name, _ in upload.fields] == [
        "key", "x-amz-algorithm", "x-amz-credential", "x-amz-date", "policy", "x-amz-signature",
        "Content-Type",
    ]  # fmt: skip
    assert dict(upload.fields)["Content-Type"] == "application/json"
    assert s3.uploaded(PREFIX + "up/notes")[0].data == b"\x00\x01raw"
    # The next plan lists them with the etag just uploaded: not downloaded back.
    again = ex.run("echo nothing", "shell", workspace=s3.plan(PREFIX))
    assert again["artifacts"] == [] and again["stderr"] == ""
    assert s3.gets(PREFIX + "up/out/result.json") == []


def test_failed_and_timed_out_runs_still_save_what_they_wrote(ex: ExecutorProcess, s3: FakeS3) -> None:
    failed = ex.run(
        "def handler(event):\n    open('partial-f.txt', 'w').write('half')\n    raise RuntimeError('x')\n",
        workspace=s3.plan(PREFIX),
    )
    assert failed["status"] == "failed" and _files(failed) == ["partial-f.txt"]
    timed_out = ex.run("echo half > partial-t.txt; sleep 30", "shell", timeout=1, workspace=s3.plan(PREFIX))
    assert timed_out["status"] == "timeout" and _files(timed_out) == ["partial-t.txt"]
    assert s3.uploaded(PREFIX + "partial-t.txt")[0].data == b"half\n"


def test_over_quota_nothing_is_uploaded(ex: ExecutorProcess, s3: FakeS3) -> None:
    uploads = len(s3.uploads)
    result = ex.run(
        "head -c 5000 /dev/zero > quota.bin; echo done", "shell", workspace=s3.plan(PREFIX, quota_bytes=4096)
    )
    assert (result["status"], result["stdout"]) == ("success", "done\n")
    assert result["artifacts"] == []
    used = workspace_usage(str(ex.workspace))
    assert result["stderr"] == (
        f"workspace quota exceeded: {used} of 4096 bytes; files of this run were not saved"
    )
    assert len(s3.uploads) == uploads


def test_a_503_slowdown_upload_is_retried(ex: ExecutorProcess, s3: FakeS3) -> None:
    s3.fail_posts.extend([503, 500])
    result = ex.run("echo retried > retried.txt", "shell", workspace=s3.plan(PREFIX))
    assert result["status"] == "success" and _files(result) == ["retried.txt"], result["stderr"]
    assert [r.status for r in s3.requests if r.method == "POST"][-3:] == [503, 500, 204]
    assert s3.uploaded(PREFIX + "retried.txt")[0].data == b"retried\n"


def test_a_4xx_upload_is_final_and_noted(ex: ExecutorProcess, s3: FakeS3) -> None:
    s3.fail_posts.append(403)
    posts = len([r for r in s3.requests if r.method == "POST"])
    result = ex.run("echo a > denied-a.txt; echo b > denied-b.txt", "shell", workspace=s3.plan(PREFIX))
    assert result["status"] == "success"
    lines = result["stderr"].splitlines()
    # The refused one is noted and not retried. Uploads run several at once, so either file may be the one
    # refused, and the other was either already under way (and saved) or not started (and noted).
    refused = re.fullmatch(r"workspace file not saved: (denied-[ab]\.txt): HTTP 403 AccessDenied", lines[0])
    assert refused is not None, lines
    if result["artifacts"]:
        other = ({"denied-a.txt", "denied-b.txt"} - {refused.group(1)}).pop()
        assert [a["path"] for a in result["artifacts"]] == [other] and len(lines) == 1
        assert len([r for r in s3.requests if r.method == "POST"]) == posts + 2
    else:
        assert lines[1:] == ["workspace files not saved: 1 more, for the same reason"]
        assert len([r for r in s3.requests if r.method == "POST"]) == posts + 1


def test_a_file_over_max_bytes_is_skipped(ex: ExecutorProcess, s3: FakeS3) -> None:
    result = ex.run(
        "head -c 2048 /dev/zero > max-big.bin; echo s > max-small.txt",
        "shell",
        workspace=s3.plan(PREFIX, max_bytes=1024),
    )
    assert _files(result) == ["max-small.txt"]
    assert result["stderr"] == "workspace file not saved: max-big.bin is over the 1024 byte limit per file"
    assert s3.uploaded(PREFIX + "max-big.bin") == []


def test_without_a_plan_artifacts_are_listed_as_objects_but_not_uploaded(
    ex: ExecutorProcess, s3: FakeS3
) -> None:
    uploads = len(s3.uploads)
    result = ex.run("printf abc > noplan.txt", "shell")
    assert result["artifacts"] == [
        {"path": "noplan.txt", "size": 3, "mime_type": "text/plain", "type": "artifact"}
    ]
    assert len(s3.uploads) == uploads


def test_twenty_mib_each_way_is_streamed(ex: ExecutorProcess, s3: FakeS3) -> None:
    data = os.urandom(1024) * (20 * 1024)
    s3.objects[PREFIX + "big/in.bin"] = data
    agent = ex.agent_pid()
    rss_before = _proc_status_kib(agent, "VmRSS")
    code = "import shutil\ndef handler(event):\n    shutil.copyfile('big/in.bin', 'big/out.bin')\n"
    result = ex.run(code, timeout_s=60, workspace=s3.plan(PREFIX))
    assert result["status"] == "success", result["stderr"]
    assert (ex.workspace / "big/in.bin").read_bytes() == data
    (upload,) = s3.uploaded(PREFIX + "big/out.bin")
    assert hashlib.md5(upload.data).digest() == hashlib.md5(data).digest()
    assert result["artifacts"] == [
        {"path": "big/out.bin", "size": 20 * MIB, "mime_type": "application/octet-stream", "type": "artifact"}
    ]
    # The agent's peak since the run started (reset at spawn) includes the whole upload.
    grown_mib = (_proc_status_kib(agent, "VmHWM") - rss_before) / 1024
    assert grown_mib < 12, f"the agent grew by {grown_mib:.1f} MiB for a 20 MiB upload"


def _proc_status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def test_presigned_requests_through_the_control_plane_socket() -> None:
    sock_dir = Path(tempfile.mkdtemp(prefix="s3v-"))
    try:
        with FakeControlPlane() as cp, FakeS3(unix_path=str(sock_dir / "cp.sock")) as s3:
            s3.objects[PREFIX + "via/in.txt"] = b"through the socket"
            ex = ExecutorProcess(cp, SANDBOXCP_S3_VIA=f"unix://{sock_dir}/cp.sock")
            try:
                ex.wait_ready()
                code = "def handler(event):\n    open('via/out.txt', 'w').write(open('via/in.txt').read())\n"
                result = ex.run(code, workspace=s3.plan(PREFIX, via_unix=True))
                assert result["status"] == "success", result["stderr"]
                assert _files(result) == ["via/out.txt"]
            finally:
                ex.terminate()
            assert s3.uploaded(PREFIX + "via/out.txt")[0].data == b"through the socket"
            get, post = s3.requests
            assert (get.method, get.transport, get.host) == ("GET", "unix", s3.virtual_host)
            assert get.path.startswith(f"/_s3/bkt/{PREFIX}via/in.txt?") and "X-Amz-Signature=" in get.path
            assert (post.method, post.transport, post.host, post.path) == (
                "POST",
                "unix",
                s3.virtual_host,
                "/_s3/bkt",
            )
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)


# -- in process: WorkspaceSync --------------------------------------------------------------------


def _plan(s3: FakeS3, **kwargs: Any) -> Any:
    plan = parse_workspace_plan(s3.plan(PREFIX, **kwargs))
    assert plan is not None
    return plan


@pytest.fixture
def sync(tmp_path: Path) -> WorkspaceSync:
    (tmp_path / "ws").mkdir()
    syncer = WorkspaceSync(str(tmp_path / "ws"))
    syncer.sleep = lambda _s: None
    return syncer


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/abs",
        "../x",
        "a/../b",
        "a/./b",
        "a//b",
        "a/",
        ".",
        "a\x00b",
        "a\nb",
        "a\\b",
        "x" * 1025,
        "\udcff",
    ],
)
def test_path_rules_refuse(path: str) -> None:
    assert path_problem(path)


@pytest.mark.parametrize("path", ["a", "a/b/c.txt", ".hidden/x", "über/ñ.txt", "a b/%2e%2e", "..a/b.."])
def test_path_rules_accept(path: str) -> None:
    assert path_problem(path) is None


def test_a_symlinked_directory_is_never_followed_out(sync: WorkspaceSync, s3: FakeS3, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, Path(sync.workspace) / "link")
    s3.objects[PREFIX + "link/x.txt"] = b"x"
    item = {"path": "link/x.txt", "size": 1, "etag": "1", "url": s3.presigned_get(PREFIX + "link/x.txt")}
    with pytest.raises(SyncError, match="'link' is a symlink or not a directory"):
        sync.download(_plan(s3, downloads=[item]))
    assert list(outside.iterdir()) == []


def test_a_symlink_at_the_target_is_replaced_not_followed(
    sync: WorkspaceSync, s3: FakeS3, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("keep")
    os.symlink(secret, Path(sync.workspace) / "t.txt")
    s3.objects[PREFIX + "t.txt"] = b"new"
    item = {"path": "t.txt", "size": 3, "etag": "2", "url": s3.presigned_get(PREFIX + "t.txt")}
    sync.download(_plan(s3, downloads=[item]))
    target = Path(sync.workspace) / "t.txt"
    assert not target.is_symlink() and target.read_bytes() == b"new"
    assert secret.read_text() == "keep"


def test_a_symlinked_artifact_directory_is_not_read_through(
    sync: WorkspaceSync, s3: FakeS3, tmp_path: Path
) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    os.symlink(tmp_path / "outside", Path(sync.workspace) / "d")
    saved = sync.upload(_plan(s3), [("d/secret", 1)])
    assert saved.artifacts == []
    assert saved.notes == ["workspace file not saved: d/secret: 'd' is a symlink or not a directory"]


def test_transient_download_failures_are_retried(sync: WorkspaceSync, s3: FakeS3) -> None:
    s3.objects[PREFIX + "flaky.txt"] = b"eventually"
    s3.fail_gets[PREFIX + "flaky.txt"] = [503, 502]
    sync.download(_plan(s3, downloads=[_item(s3, "flaky.txt")]))
    assert (Path(sync.workspace) / "flaky.txt").read_bytes() == b"eventually"
    assert [r.status for r in s3.gets(PREFIX + "flaky.txt")] == [503, 502, 200]


def test_an_unreachable_s3_gives_up_after_a_few_attempts(sync: WorkspaceSync, s3: FakeS3) -> None:
    delays: list[float] = []
    sync.sleep = delays.append
    dead = {"path": "dead.txt", "etag": "1", "url": "http://127.0.0.1:9/bkt/dead.txt?X-Amz-Signature=s"}
    with pytest.raises(SyncError, match=r"^dead.txt: ConnectionRefusedError: .*gave up after 4 attempts"):
        sync.download(_plan(s3, downloads=[dead]))
    assert delays == list(ws.RETRY_DELAYS_S)
    assert not list(Path(sync.workspace).iterdir())


def test_download_memory_stays_bounded(sync: WorkspaceSync, s3: FakeS3) -> None:
    data = os.urandom(1024) * (20 * 1024)
    s3.objects[PREFIX + "mem.bin"] = data
    tracemalloc.start()
    try:
        sync.download(_plan(s3, downloads=[_item(s3, "mem.bin")]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (Path(sync.workspace) / "mem.bin").read_bytes() == data
    assert peak < 4 * MIB, f"peak {peak / MIB:.1f} MiB for a 20 MiB download"


def test_content_type_is_only_sent_when_the_policy_allows_it(sync: WorkspaceSync, s3: FakeS3) -> None:
    # S3 refuses form fields no policy condition names; the control plane's policy may not name it.
    Path(sync.workspace, "page.html").write_text("<p>")
    saved = sync.upload(_plan(s3, allow_content_type=False), [("page.html", 3)])
    assert saved.notes == [] and saved.artifacts[0]["mime_type"] == "text/html"
    (upload,) = s3.uploaded(PREFIX + "page.html")
    assert "Content-Type" not in dict(upload.fields) and upload.content_type == "text/html"


def test_a_sync_picks_one_boundary_for_its_uploads_after_the_run(sync: WorkspaceSync, s3: FakeS3) -> None:
    # One per sync (a receiver compiles its pattern once, not per file: the local forwarder's cost at
    # 1,000 files); a new one each sync, so no file written before can hold the boundary it is sent with.
    for name in ("a.txt", "b.txt", "c.txt"):
        Path(sync.workspace, name).write_text(name)
    sync.upload(_plan(s3), [("a.txt", 5), ("b.txt", 5)])
    sync.upload(_plan(s3), [("c.txt", 5)])
    first = {u.boundary for name in ("a.txt", "b.txt") for u in s3.uploaded(PREFIX + name)}
    (second,) = (u.boundary for u in s3.uploaded(PREFIX + "c.txt"))
    assert len(first) == 1 and None not in first and second not in first


def test_a_sync_reuses_a_few_kept_connections_for_many_files(sync: WorkspaceSync, s3: FakeS3) -> None:
    # A connection per file costs a handshake per file on both sides (TLS to S3 in AWS).
    names = [f"f{n:02}.txt" for n in range(40)]
    for name in names:
        Path(sync.workspace, name).write_text(name)
    saved = sync.upload(_plan(s3), [(name, 7) for name in names])
    assert saved.notes == [] and len(saved.artifacts) == 40
    posts = [r for r in s3.requests if r.method == "POST"]
    assert len(posts) == 40 and len({r.connection for r in posts}) <= ws.TRANSFER_WORKERS
    shutil.rmtree(sync.workspace)
    os.mkdir(sync.workspace)
    sync.manifest.clear()
    sync.download(_plan(s3))
    gets = s3.gets()
    assert len(gets) == 40 and len({r.connection for r in gets}) <= ws.TRANSFER_WORKERS
    assert sorted(p.name for p in Path(sync.workspace).iterdir()) == names


def test_a_kept_connection_the_server_closed_is_replaced_without_a_retry(
    sync: WorkspaceSync, s3: FakeS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws, "TRANSFER_WORKERS", 1)  # one thread: each file finds the last one's connection
    s3.drop_connections = True
    s3.etag_header = False  # the ETag comes from the MD5 of the body sent: the body sent again, whole
    delays: list[float] = []
    sync.sleep = delays.append
    for n in range(5):
        Path(sync.workspace, f"d{n}.txt").write_text(f"file {n}")
    saved = sync.upload(_plan(s3), [(f"d{n}.txt", 6) for n in range(5)])
    assert saved.notes == [] and delays == []  # each upload went on a new connection, not after a pause
    for n in range(5):
        (upload,) = s3.uploaded(f"{PREFIX}d{n}.txt")
        assert upload.data == f"file {n}".encode()
        assert sync.manifest[f"d{n}.txt"] == hashlib.md5(upload.data).hexdigest()
    posts = [r for r in s3.requests if r.method == "POST"]
    assert len({r.connection for r in posts}) == 5


def test_without_an_etag_header_the_md5_is_remembered(sync: WorkspaceSync, s3: FakeS3) -> None:
    s3.etag_header = False  # like moto
    Path(sync.workspace, "m.txt").write_bytes(b"md5 me")
    sync.upload(_plan(s3), [("m.txt", 6)])
    assert sync.manifest["m.txt"] == hashlib.md5(b"md5 me").hexdigest()


def test_unsafe_artifact_names_are_not_uploaded(sync: WorkspaceSync, s3: FakeS3) -> None:
    Path(sync.workspace, "back\\slash").write_text("x")
    Path(sync.workspace, "fine.txt").write_text("x")
    saved = sync.upload(_plan(s3), [("back\\slash", 1), ("fine.txt", 1)])
    assert [a["path"] for a in saved.artifacts] == ["fine.txt"]
    assert saved.notes == ["workspace file not saved: 'back\\\\slash': backslash in the name"]


def test_workspace_usage_counts_dot_directories_but_not_symlinks(tmp_path: Path) -> None:
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "c").write_bytes(b"x" * 100)
    (tmp_path / "f").write_bytes(b"y" * 10)
    os.symlink(tmp_path / "f", tmp_path / "link")
    assert workspace_usage(str(tmp_path)) == 110


def _item(s3: FakeS3, path: str) -> dict[str, Any]:
    data = s3.objects[PREFIX + path]
    return {"path": path, "size": len(data), "etag": s3.etag(data), "url": s3.presigned_get(PREFIX + path)}


# -- plan, configuration, URLs ----------------------------------------------------------------------


def _request(workspace: Any) -> dict[str, Any]:
    return {"execution_id": new_execution_id(), "code": "x", "language": "shell", "workspace": workspace}


def test_the_workspace_plan_is_optional_and_validated(s3: FakeS3) -> None:
    assert parse_execute_request(_request(None)).workspace is None
    plan = parse_execute_request(_request(s3.plan(PREFIX, quota_bytes=7))).workspace
    assert plan is not None and plan.quota_bytes == 7 and plan.upload.key_prefix == PREFIX
    for bad in (
        [],
        {"downloads": "x", "upload": {}},
        {"downloads": [{"path": "a", "url": ""}], "upload": s3.plan(PREFIX)["upload"]},
        {"downloads": [{"url": "http://s3/x"}], "upload": s3.plan(PREFIX)["upload"]},
        {"downloads": [], "upload": None},
        {"downloads": [], "upload": {**s3.plan(PREFIX)["upload"], "fields": {"key": 1}}},
        {"downloads": [], "upload": s3.plan(PREFIX)["upload"], "quota_bytes": -1},
    ):
        with pytest.raises(ValidationError, match="workspace"):
            parse_execute_request(_request(bad))


def test_s3_via_configuration() -> None:
    env = {"SANDBOXCP_SESSION_ID": "s", "SANDBOXCP_CALLBACK_URL": "http://cp"}
    assert load_config(env).s3_via is None
    assert load_config({**env, "SANDBOXCP_S3_VIA": "unix:///run/cp.sock"}).s3_via == "unix:///run/cp.sock"
    with pytest.raises(ConfigError, match="SANDBOXCP_S3_VIA"):
        load_config({**env, "SANDBOXCP_S3_VIA": "/run/cp.sock"})


def test_presigned_targets() -> None:
    url = "https://bkt.s3.amazonaws.com/workspace/s/a%20b.txt?X-Amz-Signature=abc&X-Amz-Expires=60"
    direct = presigned_target(url)
    assert (direct.endpoint.scheme, direct.endpoint.host, direct.endpoint.port) == (
        "https",
        "bkt.s3.amazonaws.com",
        None,
    )
    assert direct.target == "/workspace/s/a%20b.txt?X-Amz-Signature=abc&X-Amz-Expires=60"
    assert direct.host == "bkt.s3.amazonaws.com"
    via = presigned_target("http://localhost:5000/bkt", Endpoint.parse("unix:///run/cp.sock"))
    assert (via.endpoint.socket_path, via.target, via.host) == ("/run/cp.sock", "/_s3/bkt", "localhost:5000")
    with pytest.raises(ValueError):
        presigned_target("ftp://x/y")
