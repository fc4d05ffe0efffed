"""Container monitoring (US5, FR-037..FR-039): listings by status and runtime, details with uptime, logs."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandboxcp.adapters.runtimes.process import ProcessRuntime
from sandboxcp.domain import clock
from sandboxcp.domain.models import Session
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.states import SessionStatus
from tests.functional.conftest import RecordingRuntime, body, invoke, sample_event, with_path

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class LoggingRuntime(RecordingRuntime):
    """The recording double with the runtimes' `logs()`."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines
        self.asked: list[tuple[str, int, datetime | None]] = []

    def logs(self, container_id: str, tail: int = 100, since: datetime | None = None) -> list[str]:
        self.asked.append((container_id, tail, since))
        return self.lines[-tail:]


@pytest.fixture
def now():
    t = [T0 + timedelta(hours=1)]
    clock.set_clock(lambda: t[0])
    yield t
    clock.set_clock(None)


def _seed(
    deps,  # type: ignore[no-untyped-def]
    n: int,
    *,
    tenant: str = "tenant-a",
    status: SessionStatus = SessionStatus.RUNNING,
    runtime: str = "process",
    container_id: str | None = "default",
    created: datetime | None = None,
    started: datetime | None = None,
) -> Session:
    sid = f"sess_{n:016d}"
    created = created or T0 + timedelta(minutes=n)
    deps.sessions.create(
        Session(
            session_id=sid,
            tenant_id=tenant,
            template_id="python-basic",
            status=SessionStatus.CREATING,
            runtime_type=runtime,
            workspace_path=f"s3://b/workspace/{sid}/",
            resources=ResourceLimit(cpu="2", memory="1Gi"),
            timeout=300,
            created_at=created,
            updated_at=created,
            last_activity_at=created,
        )
    )
    fields: dict[str, Any] = {"runtime_node": "local" if runtime == "process" else f"{runtime}-node-1"}
    if container_id is not None:
        fields["container_id"] = f"proc-{sid}" if container_id == "default" else container_id
    deps.sessions.update_fields(sid, fields, only_if=[SessionStatus.CREATING])
    if status != SessionStatus.CREATING:
        deps.sessions.transition(
            sid,
            SessionStatus.RUNNING,
            now=created,
            fields={"started_at": started or created + timedelta(seconds=2)},
        )
    if status not in (SessionStatus.CREATING, SessionStatus.RUNNING):
        end = created + timedelta(minutes=10)
        fields = {"terminated_at": end} if status == SessionStatus.TERMINATED else {}
        deps.sessions.transition(sid, status, now=end, fields=fields)
    session = deps.sessions.get(sid)
    assert session is not None
    return session


def _list(*, admin: bool = False, tenant: str = "tenant-a", **query: str) -> dict[str, Any]:
    event = sample_event("containers_list")
    event["queryStringParameters"] = query or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    event["requestContext"]["authorizer"].update(
        tenant_id=tenant, principalId=tenant, is_admin="true" if admin else "false"
    )
    return invoke("containers_list", event)


def _get(container_id: str, *, admin: bool = False, tenant: str = "tenant-a") -> dict[str, Any]:
    event = with_path(sample_event("containers_get"), container_id=container_id)
    event["requestContext"]["authorizer"].update(
        tenant_id=tenant, principalId=tenant, is_admin="true" if admin else "false"
    )
    return invoke("containers_get", event)


def _logs(container_id: str, *, tenant: str = "tenant-a", **query: str) -> dict[str, Any]:
    event = with_path(sample_event("containers_logs"), container_id=container_id)
    event["queryStringParameters"] = query or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    event["requestContext"]["authorizer"].update(tenant_id=tenant, principalId=tenant)
    return invoke("containers_logs", event)


def _ids(resp: dict[str, Any]) -> list[str]:
    assert resp["statusCode"] == 200, resp["body"]
    return [c["session_id"] for c in body(resp)["containers"]]


@pytest.fixture
def fleet(deps, now):  # type: ignore[no-untyped-def]
    """tenant-a: 2 running (process), 1 running (docker), 1 creating without container yet, 1 creating
    with one, 1 terminated; tenant-b: 1 running, 1 failed."""
    return {
        "a_run1": _seed(deps, 1),
        "a_run2": _seed(deps, 2),
        "a_docker": _seed(deps, 3, runtime="docker", container_id="0123456789abcdef"),
        "a_pending": _seed(deps, 4, status=SessionStatus.CREATING, container_id=None),
        "a_creating": _seed(deps, 5, status=SessionStatus.CREATING),
        "a_ended": _seed(deps, 6, status=SessionStatus.TERMINATED),
        "b_run": _seed(deps, 7, tenant="tenant-b"),
        "b_failed": _seed(deps, 8, tenant="tenant-b", status=SessionStatus.FAILED),
    }


def test_sample_event_lists_the_callers_running_containers(deps, fleet):
    resp = invoke("containers_list", sample_event("containers_list"))
    assert _ids(resp) == ["sess_0000000000000003", "sess_0000000000000002", "sess_0000000000000001"]
    listed = body(resp)
    assert listed["total"] == 3
    first = listed["containers"][0]
    assert first == {  # no pod_name off eks: contract strings without a value are left out, not null
        "container_id": "0123456789abcdef",
        "runtime_type": "docker",
        "status": "running",
        "session_id": "sess_0000000000000003",
        "tenant_id": "tenant-a",
        "template_id": "python-basic",
        "node_name": "docker-node-1",
        "resources": {"cpu": "2", "memory": "1Gi", "disk": "1Gi", "max_processes": 128},
        "created_at": "2026-03-01T12:03:00Z",
        "started_at": "2026-03-01T12:03:02Z",
        "uptime_seconds": 3600 - 3 * 60 - 2,
    }


def test_tenants_see_only_their_own_containers(deps, fleet):
    # Without a status: their whole history (sessions that got a container), newest first.
    assert _ids(_list()) == [f"sess_{n:016d}" for n in (6, 5, 3, 2, 1)]
    assert _ids(_list(tenant="tenant-b")) == ["sess_0000000000000008", "sess_0000000000000007"]
    assert _ids(_list(status="terminated")) == ["sess_0000000000000006"]
    assert _ids(_list(status="failed")) == []
    assert _ids(_list(tenant="tenant-c")) == []


def test_runtime_type_filter(deps, fleet):
    assert _ids(_list(runtime_type="docker")) == ["sess_0000000000000003"]
    assert _ids(_list(runtime_type="process", status="running")) == [
        "sess_0000000000000002",
        "sess_0000000000000001",
    ]
    _seed(deps, 9, runtime="eks", container_id="sandbox-sess-9")
    resp = _list(runtime_type="kubernetes")  # the contract's name for eks
    assert _ids(resp) == ["sess_0000000000000009"]
    assert body(resp)["containers"][0]["pod_name"] == "sandbox-sess-9"
    assert _list(runtime_type="lxc")["statusCode"] == 400


def test_pagination_and_limits(deps, fleet):
    page = _list(limit="2", offset="1")
    assert _ids(page) == ["sess_0000000000000005", "sess_0000000000000003"]
    assert body(page)["total"] == 5
    assert _ids(_list(limit="2", offset="4")) == ["sess_0000000000000001"]
    for bad in ({"limit": "0"}, {"limit": "201"}, {"offset": "-1"}, {"status": "sleeping"}):
        resp = _list(**bad)
        assert resp["statusCode"] == 400, bad
        assert body(resp)["error_code"] == "Sandbox.InvalidParameter"
    assert _list(limit="200")["statusCode"] == 200


def test_admins_see_every_tenant(deps, fleet):
    # Without a status: live containers only (the sparse active index), all tenants, newest first.
    live = _list(admin=True)
    assert _ids(live) == [f"sess_{n:016d}" for n in (7, 5, 3, 2, 1)]
    assert body(live)["total"] == 5
    assert _ids(_list(admin=True, status="running")) == [f"sess_{n:016d}" for n in (7, 3, 2, 1)]
    assert _ids(_list(admin=True, status="failed")) == ["sess_0000000000000008"]
    assert _ids(_list(admin=True, status="running", runtime_type="docker")) == ["sess_0000000000000003"]
    assert _ids(_list(admin=True, limit="2", offset="1")) == [
        "sess_0000000000000005",
        "sess_0000000000000003",
    ]


def test_details_by_container_id_or_session_id(deps, fleet, now):
    by_container = _get("proc-sess_0000000000000001")
    assert by_container["statusCode"] == 200
    info = body(by_container)
    assert info["session_id"] == "sess_0000000000000001" and info["status"] == "running"
    assert info["node_name"] == "local" and info["template_id"] == "python-basic"
    assert info["uptime_seconds"] == 3600 - 60 - 2
    now[0] += timedelta(seconds=30)
    assert body(_get("sess_0000000000000001"))["uptime_seconds"] == 3600 - 60 - 2 + 30
    # A container id that does not embed the session id is found among the tenant's sessions.
    assert body(_get("0123456789abcdef"))["session_id"] == "sess_0000000000000003"
    # Ended: uptime stops at termination.
    assert body(_get("proc-sess_0000000000000006"))["uptime_seconds"] == 600 - 2
    # Not started yet: no uptime.
    assert body(_get("proc-sess_0000000000000005"))["uptime_seconds"] == 0


def test_details_hide_other_tenants_and_missing_containers(deps, fleet):
    for cid in (
        "proc-sess_0000000000000007",  # tenant-b's
        "sess_0000000000000007",
        "sess_0000000000000004",  # no container yet
        "proc-sess_9999999999999999",
        "proc-sess_0000000000000002x",  # embeds a session but is not its container
        "ffffffffffff",
    ):
        resp = _get(cid)
        assert resp["statusCode"] == 404, cid
        assert body(resp)["error_code"] == "Sandbox.ContainerNotFound"
    assert body(_get("proc-sess_0000000000000007", admin=True))["tenant_id"] == "tenant-b"
    assert body(_get("0123456789abcdef", admin=True))["session_id"] == "sess_0000000000000003"
    assert _get("0123456789abcdef", tenant="tenant-b")["statusCode"] == 404


def test_logs_honour_tail_and_since_and_come_as_text(deps, fleet):
    runtime = LoggingRuntime([f"line {i}" for i in range(1, 301)])
    deps.runtime = runtime
    resp = invoke("containers_logs", sample_event("containers_logs"))
    assert resp["statusCode"] == 200
    assert resp["multiValueHeaders"]["Content-Type"] == ["text/plain; charset=utf-8"]
    assert resp["body"].splitlines() == [f"line {i}" for i in range(201, 301)]  # default tail 100
    assert runtime.asked[-1] == ("proc-sess_0000000000000001", 100, None)

    three = _logs("sess_0000000000000001", tail="3", since="2026-03-01T12:30:00Z")
    assert three["body"] == "line 298\nline 299\nline 300\n"
    assert runtime.asked[-1] == ("proc-sess_0000000000000001", 3, datetime(2026, 3, 1, 12, 30, tzinfo=UTC))
    assert _logs("sess_0000000000000001", tail="10000")["statusCode"] == 200
    for bad in ({"tail": "0"}, {"tail": "10001"}, {"tail": "x"}, {"since": "yesterday"}):
        assert _logs("sess_0000000000000001", **bad)["statusCode"] == 400, bad
    assert _logs("proc-sess_0000000000000007")["statusCode"] == 404
    asked = len(runtime.asked)
    assert _logs("proc-sess_0000000000000004")["statusCode"] == 404
    assert len(runtime.asked) == asked


def test_logs_without_runtime_support_are_empty(deps, fleet):
    resp = _logs("proc-sess_0000000000000001")
    assert resp["statusCode"] == 200 and resp["body"] == ""


class ForgettingRuntime(LoggingRuntime):
    """Drops a sandbox's logs with it, as docker (a removed container) and eks (a deleted Pod) do."""

    def destroy(self, container_id: str) -> None:
        super().destroy(container_id)
        self.lines = []


def test_an_ended_sandboxs_last_lines_are_kept_when_it_is_destroyed(deps, fleet):
    stamped = [f"2026-03-01T12:{m:02d}:00Z line {m}" for m in range(0, 40)]
    runtime = ForgettingRuntime([*stamped[:20], "Traceback (unstamped)", *stamped[20:]])
    deps.runtime = runtime
    sid = "sess_0000000000000001"
    event = with_path(sample_event("sessions_terminate"), session_id=sid)
    event["requestContext"]["authorizer"].update(tenant_id="tenant-a", principalId="tenant-a")
    assert invoke("sessions_terminate", event)["statusCode"] == 200
    assert runtime.destroyed == ["proc-sess_0000000000000001"] and runtime.lines == []

    assert _logs(sid, tail="2")["body"] == "2026-03-01T12:38:00Z line 38\n2026-03-01T12:39:00Z line 39\n"
    since = _logs(sid, since="2026-03-01T12:19:00Z")["body"].splitlines()
    assert since[:3] == [
        "2026-03-01T12:19:00Z line 19",
        "Traceback (unstamped)",
        "2026-03-01T12:20:00Z line 20",
    ]
    assert len(since) == 22


# -- the process runtime's logs(): the session's executor.log -------------------------------------------
def _write_log(tmp_path: Path, sid: str, lines: list[str]) -> ProcessRuntime:
    log = tmp_path / "sessions" / sid / "executor.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"{line}\n" for line in lines))
    return ProcessRuntime(str(tmp_path), "")


def test_process_runtime_logs_tail(tmp_path):
    lines = [
        f"2026-03-01T12:{i // 60:02d}:{i % 60:02d}.000Z sandbox-executor tick n={i}" for i in range(3000)
    ]
    runtime = _write_log(tmp_path, "sess_0000000000000001", lines)
    assert runtime.logs("proc-sess_0000000000000001", tail=5) == lines[-5:]
    assert runtime.logs("proc-sess_0000000000000001") == lines[-100:]
    assert runtime.logs("proc-sess_0000000000000001", tail=10000) == lines
    assert runtime.logs("proc-sess_0000000000000001", tail=0) == []
    assert runtime.logs("proc-sess_0000000000000099") == []


def test_process_runtime_logs_since_keeps_unstamped_lines_with_their_entry(tmp_path):
    lines = [
        "Traceback (most recent call last):",  # before any stamp: time unknown
        "2026-03-01T12:00:00.000Z sandbox-executor listening port=0",
        "2026-03-01T12:00:05.500Z sandbox-executor ready session_id=sess_0000000000000001",
        "2026-03-01T12:01:00.000Z sandbox-executor execution_started execution_id=exec_1",
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "2026-03-01T12:02:00.000Z sandbox-executor stopped",
    ]
    runtime = _write_log(tmp_path, "sess_0000000000000001", lines)
    cid = "proc-sess_0000000000000001"
    assert runtime.logs(cid, since=datetime(2026, 3, 1, 12, 0, 5, 500000, tzinfo=UTC)) == lines[2:]
    assert runtime.logs(cid, since=datetime(2026, 3, 1, 12, 1, tzinfo=UTC)) == lines[3:]
    assert runtime.logs(cid, since=datetime(2026, 3, 1, 12, 1, 30)) == lines[6:]  # naive = UTC
    assert runtime.logs(cid, tail=2, since=datetime(2026, 3, 1, 12, 1, tzinfo=UTC)) == lines[5:]
    assert runtime.logs(cid, since=datetime(2026, 3, 1, 13, 0, tzinfo=UTC)) == []


def test_process_runtime_logs_read_only_the_end_of_a_large_log(tmp_path, monkeypatch):
    big = [f"2026-03-01T12:00:00.000Z sandbox-executor filler {'x' * 100} n={i}" for i in range(50_000)]
    runtime = _write_log(tmp_path, "sess_0000000000000001", big)
    size = os.path.getsize(tmp_path / "sessions" / "sess_0000000000000001" / "executor.log")
    read: list[int] = []
    real_open = open

    def spying_open(*args: Any, **kwargs: Any) -> Any:
        f = real_open(*args, **kwargs)
        original = f.read

        def counted(n: int = -1) -> Any:
            data = original(n)
            read.append(len(data))
            return data

        f.read = counted  # type: ignore[method-assign]
        return f

    monkeypatch.setattr("builtins.open", spying_open)
    assert runtime.logs("proc-sess_0000000000000001", tail=10) == big[-10:]
    assert sum(read) <= 64 * 1024 < size
