"""The Python SDK against the real local stack (process runtime, bubblewrap sandboxes): every public method
of the sync and async clients, retries through a fault-injecting proxy, and idempotent create."""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxcp_client import (
    AsyncSandbox,
    AsyncSandboxClient,
    ExecutionFailedError,
    ForbiddenError,
    IdempotencyKeyReusedError,
    RetryPolicy,
    Sandbox,
    SandboxClient,
    SandboxConnectionError,
    ServiceUnavailableError,
    SessionNotFoundError,
    WorkspaceFileNotFoundError,
)
from tests.e2e.conftest import Stack, executor_pids
from tests.sdk.proxy import FaultProxy

pytestmark = pytest.mark.e2e
FAST = RetryPolicy(max_retries=3, backoff_base=0.05, backoff_max=0.2)
BIG = 6 * 1024 * 1024  # over the 4 MB inline limit: the presigned path
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture(scope="module")
def client(stack: Stack, tenant_key: str) -> Iterator[SandboxClient]:
    with SandboxClient(stack.url, tenant_key, retry=FAST) as c:
        yield c


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Iterator[SandboxClient]:
    with SandboxClient(stack.url, stack.admin_key, retry=FAST) as c:
        yield c


@pytest.fixture(scope="module")
def proxy(stack: Stack) -> Iterator[FaultProxy]:
    p = FaultProxy(stack.url)
    yield p
    p.close()


# -- Sandbox (sync) ----------------------------------------------------------------------------------------
def test_sandbox_runs_code_and_moves_files(stack: Stack, tenant_key: str, tmp_path: Path) -> None:
    with Sandbox.create(
        template="python-basic",
        timeout=600,
        env_vars={"GREETING": "hello"},
        url=stack.url,
        api_key=tenant_key,
    ) as sbx:
        assert sbx.status == "running" and sbx.id.startswith("sess_") and sbx.session_id == sbx.id
        assert "python-basic" in repr(sbx)

        r = sbx.run_code("import os\nprint(os.environ['GREETING'])\n6 * 7")
        assert (r.ok, r.stdout, r.result, r.return_value, r.text) == (True, "hello\n", 42, 42, "42")
        r = sbx.run_code(
            "def handler(event):\n    print('in handler')\n    return event['x'] * 2", event={"x": 21}
        )
        assert (r.return_value, r.stdout, r.text) == (42, "in handler\n", None)
        r = sbx.run_code("import sys\nprint('to stderr', file=sys.stderr)\nraise ValueError('boom')")
        assert (
            not r.ok and r.status == "failed" and r.exit_code == 1 and r.error_code == "Sandbox.ExecException"
        )
        assert 'File "<code>", line 3' in r.stderr and "ValueError: boom" in r.stderr
        with pytest.raises(ExecutionFailedError, match="boom"):
            r.raise_for_error()
        assert sbx.run_code("console.log(6 * 7)", language="javascript").stdout == "42\n"
        assert sbx.run_code("echo $((6 * 7)); exit 3", language="shell").exit_code == 3
        assert sbx.run_code("import time\ntime.sleep(5)", timeout=1).status == "timeout"

        # files: inline, then the presigned path (both ways), with progress
        assert sbx.files.write("data/small.csv", b"a,b\n1,2\n").size == 8
        assert sbx.files.write("notes.txt", "héllo").size == 6
        assert sbx.files.read("data/small.csv") == b"a,b\n1,2\n"
        assert sbx.files.read_text("notes.txt") == "héllo"
        r = sbx.run_code("open('/workspace/data/small.csv').read().count(',')")
        assert r.result == 2
        up: list[tuple[int, int | None]] = []
        payload = os.urandom(BIG)
        stored = sbx.files.write("big/blob.bin", io.BytesIO(payload), progress=lambda d, t: up.append((d, t)))
        assert stored.size == BIG and up[-1] == (BIG, BIG) and len(up) > 10
        r = sbx.run_code(
            "import hashlib\nhashlib.sha256(open('/workspace/big/blob.bin','rb').read()).hexdigest()"
        )
        import hashlib

        assert r.result == hashlib.sha256(payload).hexdigest()
        down: list[tuple[int, int | None]] = []
        target = tmp_path / "blob.bin"
        assert sbx.files.download("big/blob.bin", target, progress=lambda d, t: down.append((d, t))) == BIG
        assert target.read_bytes() == payload and down[-1] == (BIG, BIG)
        assert b"".join(sbx.files.iter_bytes("big/blob.bin")) == payload
        sink = io.BytesIO()
        assert sbx.files.download("notes.txt", sink) == 6 and sink.getvalue() == "héllo".encode()
        local = tmp_path / "upload.txt"
        local.write_text("from disk")
        assert sbx.files.write("from_disk.txt", local).size == 9
        listed = {f.path: f.size for f in sbx.files.list()}
        assert listed["big/blob.bin"] == BIG and listed["from_disk.txt"] == 9
        with pytest.raises(WorkspaceFileNotFoundError) as missing:
            sbx.files.read("nope.txt")
        assert missing.value.request_id and missing.value.solution

        # artifacts, async submit and wait, executions, container and logs
        r = sbx.run_code(f"open('/workspace/dot.png', 'wb').write({PNG!r})")
        assert [(a.path, a.mime_type) for a in r.artifacts] == [("dot.png", "image/png")]
        job = sbx.submit("import time\ntime.sleep(0.5)\nprint('done')")
        assert job.status == "pending" and job.execution_id.startswith("exec_")
        assert sbx.wait(job.execution_id, timeout=60).stdout == "done\n"
        assert sbx.executions().total >= 10
        assert [e.id for e in sbx.executions(status="timeout").executions] != []
        assert sbx.container().session_id == sbx.id
        assert "execution_finished" in sbx.logs(tail=50)
        assert sbx.refresh().status == "running"

        other = Sandbox.connect(sbx.id, url=stack.url, api_key=tenant_key)
        assert other.info.session_id == sbx.id
        other.close()
        sid = sbx.id
        sbx.kill()
        assert sbx.status == "terminated"
        sbx.terminate()  # terminating an ended session is harmless (and __exit__ does it again)
    with SandboxClient(stack.url, tenant_key) as c:
        assert c.sessions.get(sid).status == "terminated"


# -- the resource clients (sync) ---------------------------------------------------------------------------
def test_client_endpoints(client: SandboxClient, admin: SandboxClient, tmp_path: Path) -> None:
    assert client.health()["status"] in ("healthy", "degraded")
    info = client.sessions.create(
        "python-basic", timeout=300, resources={"cpu": "1", "memory": "512Mi", "disk": "1Gi"}
    )
    assert info.status == "creating" and info.active
    running = client.sessions.wait_until_running(info.session_id)
    assert running.status == "running"
    sid = info.session_id
    assert sid in {s.session_id for s in client.sessions.list(status="running", limit=200).sessions}
    assert client.sessions.list(template="python-basic").total >= 1
    assert "sandboxcp_" in client.metrics()

    sync = client.executions.execute_sync(sid, "print('sync')")
    assert not isinstance(sync, type(None)) and getattr(sync, "stdout", None) == "sync\n"
    ran = client.executions.run(sid, "def handler(event):\n    return event", event={"k": [1, 2]})
    assert ran.return_value == {"k": [1, 2]}
    sub = client.executions.submit(sid, "1 + 1")
    done = client.executions.wait(sub.execution_id)
    assert done.result == 2
    status = client.executions.status(sub.execution_id)
    assert status.done and status.status == "completed" and status.session_id == sid
    assert client.executions.result(sub.execution_id).return_value == 2
    detail = client.executions.get(sub.execution_id)
    assert detail.session_id == sid and detail.result is not None and detail.result.return_value == 2
    assert sub.execution_id in {e.id for e in client.executions.list(sid, limit=10).executions}

    grant = client.files.upload_url(sid, "granted.bin", 3)
    assert grant.max_bytes == 3 and grant.path == "granted.bin" and grant.url.startswith("http")
    assert client.files.upload(sid, "x/y.txt", b"xyz").path == "x/y.txt"
    assert client.files.read(sid, "x/y.txt") == b"xyz"
    assert client.files.download(sid, "x/y.txt", str(tmp_path / "y.txt")) == 3
    assert [f.path for f in client.files.list(sid)] == ["x/y.txt"]
    assert list(client.files.iter_bytes(sid, "x/y.txt")) == [b"xyz"]

    containers = client.containers.list()
    assert sid in {c.session_id for c in containers.containers}
    container = client.containers.get(sid)
    assert client.containers.get(container.container_id).session_id == sid
    assert "execution_accepted" in client.containers.logs(container.container_id, tail=20)
    assert client.containers.logs(sid, tail=5, since="2999-01-01T00:00:00Z") == ""

    # templates: reads for anyone, writes for admins
    ids = {t.id for t in client.templates.list().templates}
    assert {"python-basic", "python-datascience", "nodejs-basic"} <= ids
    assert client.templates.get("python-basic").languages == ["python", "shell"]
    with pytest.raises(ForbiddenError) as refused:
        client.templates.create(
            "sdk-denied",
            name="x",
            image="sandboxcp/python-basic:latest",
            default_resources={"cpu": "1", "memory": "512Mi", "disk": "1Gi"},
        )
    assert refused.value.solution
    tpl = admin.templates.create(
        "sdk-template",
        name="SDK template",
        image="sandboxcp/python-basic:latest",
        default_resources={"cpu": "1", "memory": "512Mi", "disk": "1Gi"},
        pre_installed_packages=["numpy"],
    )
    assert tpl.id == "sdk-template" and tpl.pre_installed_packages == ["numpy"]
    assert admin.templates.update("sdk-template", name="Renamed", deprecated=True).name == "Renamed"
    admin.templates.delete("sdk-template")
    assert "sdk-template" not in {t.id for t in admin.templates.list(limit=200).templates}

    key = admin.keys.create("sdk-other-tenant", admin=False)
    assert key.tenant_id == "sdk-other-tenant" and key.api_key and key.admin is False
    with SandboxClient(client.config.url, key.api_key) as other, pytest.raises(SessionNotFoundError):
        other.sessions.get(sid)

    assert client.sessions.terminate(sid)
    follow = list(client.containers.follow(sid, tail=3, poll_interval=0.1))
    assert 1 <= len(follow) <= 3


def test_follow_prints_new_lines_until_the_sandbox_ends(client: SandboxClient) -> None:
    sid = client.sessions.wait_until_running(client.sessions.create("python-basic").session_id).session_id
    lines: list[str] = []
    it = client.containers.follow(sid, tail=1, poll_interval=0.1)
    lines.append(next(it))
    client.executions.run(sid, "print('x')")
    client.sessions.terminate(sid)
    lines.extend(it)  # ends by itself once the container has ended
    assert any("execution_finished" in line for line in lines)
    assert len(lines) == len(set(lines))  # nothing printed twice


# -- idempotent create -------------------------------------------------------------------------------------
def test_two_creates_with_one_key_make_one_session_and_one_sandbox(client: SandboxClient) -> None:
    before = client.sessions.list(limit=200).total
    first = client.sessions.create("python-basic", timeout=120, idempotency_key="sdk-key-1")
    second = client.sessions.create("python-basic", timeout=120, idempotency_key="sdk-key-1")
    assert second.session_id == first.session_id and second.created_at == first.created_at
    assert client.sessions.list(limit=200).total == before + 1
    assert client.sessions.wait_until_running(first.session_id).status == "running"
    sandboxes = [c for c in client.containers.list(limit=200).containers if c.session_id == first.session_id]
    assert len(sandboxes) == 1
    assert len({p for p in executor_pids(first.session_id)}) >= 1
    with pytest.raises(IdempotencyKeyReusedError) as reused:
        client.sessions.create("python-basic", timeout=600, idempotency_key="sdk-key-1")
    err = reused.value
    assert err.status_code == 422 and err.error_code == "Sandbox.IdempotencyKeyReused"
    assert "sdk-key-1" in err.detail and err.solution and err.request_id and err.description
    assert client.sessions.list(limit=200).total == before + 1
    client.sessions.terminate(first.session_id)


# -- retries -----------------------------------------------------------------------------------------------
def test_a_503_with_retry_after_is_retried_once_then_answers(proxy: FaultProxy, tenant_key: str) -> None:
    proxy.reset()
    proxy.inject("GET", "/api/v1/templates", headers={"Retry-After": "1"})
    with SandboxClient(proxy.url, tenant_key, retry=FAST) as c:
        started = time.monotonic()
        assert c.templates.get("python-basic").id == "python-basic"
        elapsed = time.monotonic() - started
    seen = proxy.requests_to("GET", "/api/v1/templates/python-basic")
    assert [s.answered for s in seen] == [503, 200]
    assert elapsed >= 1.0  # Retry-After honoured (FAST's own backoff is at most 0.2 s)


def test_a_lost_create_answer_is_retried_with_its_key_and_makes_one_session(
    proxy: FaultProxy, client: SandboxClient, tenant_key: str
) -> None:
    proxy.reset()
    before = client.sessions.list(limit=200).total
    # The stack creates the session, but the client gets a 503 instead of the answer.
    proxy.inject("POST", "/api/v1/sessions", after_forward=True, headers={"Retry-After": "0"})
    with SandboxClient(proxy.url, tenant_key, retry=FAST) as c:
        info = c.sessions.create("python-basic", timeout=120)
    posts = proxy.requests_to("POST", "/api/v1/sessions")
    assert [p.answered for p in posts] == [503, 200]  # 200: the stored session, replayed
    assert len({p.headers["idempotency-key"] for p in posts}) == 1
    assert client.sessions.list(limit=200).total == before + 1
    assert client.sessions.get(info.session_id).template_id == "python-basic"
    client.sessions.terminate(info.session_id)


def test_non_idempotent_calls_are_not_retried(
    proxy: FaultProxy, client: SandboxClient, tenant_key: str
) -> None:
    sid = client.sessions.wait_until_running(client.sessions.create("python-basic").session_id).session_id
    proxy.reset()
    proxy.inject("POST", f"/api/v1/sessions/{sid}/execute")
    with SandboxClient(proxy.url, tenant_key, retry=FAST) as c:
        with pytest.raises(ServiceUnavailableError) as refused:
            c.executions.submit(sid, "print(1)")
        assert (
            refused.value.request_id.startswith("proxy-") and refused.value.solution == "Please retry later"
        )
        assert len(proxy.requests_to("POST", f"/api/v1/sessions/{sid}/execute")) == 1
        # a dropped connection: retried for a GET, not for a POST that may have been received
        proxy.inject("GET", f"/api/v1/sessions/{sid}", drop=True)
        assert c.sessions.get(sid).session_id == sid
        assert len(proxy.requests_to("GET", f"/api/v1/sessions/{sid}")) == 2
        proxy.inject("POST", f"/api/v1/sessions/{sid}/execute-sync", drop=True)
        with pytest.raises(SandboxConnectionError):
            c.executions.run(sid, "print(1)")
        assert len(proxy.requests_to("POST", f"/api/v1/sessions/{sid}/execute-sync")) == 1
        # 429 on an idempotent call is retried too
        proxy.inject("GET", "/api/v1/containers", status=429, headers={"Retry-After": "0"})
        assert c.containers.get(sid).session_id == sid
    assert len(client.executions.list(sid).executions) == 0  # nothing ran twice, nothing ran at all
    client.sessions.terminate(sid)


def test_an_unreachable_api_raises_a_connection_error_after_retries() -> None:
    with (
        SandboxClient("http://127.0.0.1:9", "sk_x", retry=RetryPolicy(max_retries=2, backoff_base=0.01)) as c,
        pytest.raises(SandboxConnectionError, match="ConnectError"),
    ):
        c.sessions.list()


# -- the async client --------------------------------------------------------------------------------------
def test_async_client_and_sandbox(stack: Stack, tenant_key: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with AsyncSandboxClient(stack.url, stack.admin_key, retry=FAST) as admin:
            assert (await admin.health())["status"] in ("healthy", "degraded")
            key = await admin.keys.create("sdk-async-tenant")
            tpl = await admin.templates.create(
                "sdk-async-template",
                name="A",
                image="sandboxcp/python-basic:latest",
                default_resources={"cpu": "1", "memory": "512Mi", "disk": "1Gi"},
            )
            assert (await admin.templates.update(tpl.id, name="B")).name == "B"
            await admin.templates.delete(tpl.id)
        async with AsyncSandboxClient(stack.url, key.api_key, retry=FAST) as api:
            assert "sandboxcp_" in await api.metrics()
            assert (await api.templates.get("python-basic")).id == "python-basic"
            assert (await api.templates.list()).total >= 3
            async with await AsyncSandbox.create(template="python-basic", timeout=300, client=api) as sbx:
                assert sbx.status == "running" and "AsyncSandbox" in repr(sbx)
                r = await sbx.run_code("print('a')\n40 + 2")
                assert (r.stdout, r.result) == ("a\n", 42)
                r = await sbx.run_code("def handler(e):\n    return e['n'] + 1", event={"n": 1})
                assert r.return_value == 2
                job = await sbx.submit("print('later')")
                assert (await sbx.wait(job.execution_id)).stdout == "later\n"
                sync = await api.executions.execute_sync(sbx.id, "7 * 6")
                assert getattr(sync, "result", None) == 42
                eid = job.execution_id
                assert (await api.executions.status(eid)).done
                assert (await api.executions.result(eid)).stdout == "later\n"
                assert (await api.executions.get(eid)).session_id == sbx.id
                assert (await api.executions.list(sbx.id)).total == 4
                assert (await sbx.executions()).total == 4

                payload = os.urandom(BIG)
                progress: list[int] = []
                await sbx.files.write("big.bin", payload, progress=lambda d, t: progress.append(d))
                assert progress[-1] == BIG
                assert await sbx.files.read("big.bin") == payload
                await sbx.files.write("t.txt", "text")
                assert await sbx.files.read_text("t.txt") == "text"
                assert await sbx.files.download("big.bin", tmp_path / "a.bin") == BIG
                assert b"".join([c async for c in sbx.files.iter_bytes("t.txt")]) == b"text"
                assert {f.path for f in await sbx.files.list()} == {"big.bin", "t.txt"}
                assert (await api.files.upload_url(sbx.id, "u.bin", 10)).max_bytes == 10
                assert await api.files.download(sbx.id, "t.txt", io.BytesIO()) == 4

                assert (await sbx.container()).session_id == sbx.id
                assert (await api.containers.get(sbx.id)).session_id == sbx.id
                assert sbx.id in {c.session_id for c in (await api.containers.list()).containers}
                assert "execution_finished" in await sbx.logs(tail=50)
                assert "execution" in await api.containers.logs(sbx.id, tail=5)
                assert (await sbx.refresh()).status == "running"
                other = await AsyncSandbox.connect(sbx.id, client=api)
                assert other.id == sbx.id
                await other.aclose()
                assert sbx.id in {s.session_id for s in (await api.sessions.list()).sessions}
                assert (await api.sessions.get(sbx.id)).status == "running"
                sid = sbx.id
            assert sbx.status == "terminated"
            lines = [line async for line in api.containers.follow(sid, tail=2, poll_interval=0.1)]
            assert 1 <= len(lines) <= 2
            again = await api.sessions.create("python-basic", idempotency_key="sdk-async-key")
            same = await api.sessions.create("python-basic", idempotency_key="sdk-async-key")
            assert same.session_id == again.session_id
            assert (await api.sessions.wait_until_running(again.session_id)).status == "running"
            assert await api.sessions.terminate(again.session_id)
            await sbx.kill()

    asyncio.run(scenario())
