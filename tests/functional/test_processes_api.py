"""Background processes (issue #12) on moto with their sample events: start, list, get, stdin, signal, output
through the live-output service, the exit from the executor's output callback, the per-session limit,
isolation between sessions and tenants, and processes ending with their session."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from sandboxcp.domain import clock
from sandboxcp.domain.states import SessionStatus
from tests.functional.conftest import (
    SAMPLE_SESSION,
    TENANT,
    body,
    invoke,
    sample_event,
    seed_session,
    with_path,
)
from tests.functional.test_contexts_api import ERROR_FIELDS, retry_after

URL = f"unix:///tmp/{SAMPLE_SESSION}.sock"
OTHER_SESSION = "sess_0000000000000002"


def _start(
    payload: dict[str, Any] | None = None, session_id: str = SAMPLE_SESSION, tenant: str = TENANT
) -> Any:
    event = with_path(sample_event("processes_create"), session_id=session_id)
    if payload is not None:
        event["body"] = json.dumps(payload)
    event["requestContext"]["authorizer"]["tenant_id"] = tenant
    return invoke("processes_create", event)


def _call(
    module: str,
    process_id: str,
    payload: dict[str, Any] | None = None,
    *,
    session_id: str = SAMPLE_SESSION,
    tenant: str = TENANT,
    query: dict[str, str] | None = None,
) -> Any:
    event = with_path(sample_event(module), session_id=session_id, process_id=process_id)
    if payload is not None:
        event["body"] = json.dumps(payload)
    if query is not None:
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    event["requestContext"]["authorizer"]["tenant_id"] = tenant
    return invoke(module, event)


def _post_output(process_id: str, report: dict[str, Any], session: str = SAMPLE_SESSION) -> Any:
    event = with_path(sample_event("internal_process_output"), process_id=process_id)
    event["body"] = json.dumps(report)
    event["requestContext"]["authorizer"]["session_id"] = session
    return invoke("internal_process_output", event)


def _chunk(seq: int, data: str, stream: str = "stdout") -> dict[str, Any]:
    return {"seq": seq, "stream": stream, "data": data, "at": "2026-01-01T00:00:01.500Z"}


def _error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp["statusCode"] == status, resp["body"]
    out = body(resp)
    assert set(out) == ERROR_FIELDS and out["error_code"] == code, out
    return out


@pytest.fixture
def running(deps: Any) -> Any:
    seed_session(deps, token_hash="executor-key-1")
    return deps


def test_process_lifecycle_with_output_and_exit_from_the_callback(running):
    resp = _start()
    assert resp["statusCode"] == 201, resp["body"]
    proc = body(resp)
    pid = proc["process_id"]
    assert re.fullmatch(r"proc-[a-z0-9]{16}", pid)
    assert proc["status"] == "running" and proc["pid"] >= 1000 and proc["started_at"] is not None
    assert proc["cmd"] == "python3 -m http.server 8000" and proc["cwd"] == "/workspace"
    [call] = running.executor.interactive_calls
    assert call == (
        "start_process",
        URL,
        (pid, "python3 -m http.server 8000", "/workspace", {"PYTHONUNBUFFERED": "1"}),
        "executor-key-1",
    )
    assert "PYTHONUNBUFFERED" not in json.dumps(
        running.processes.get(pid).model_dump(mode="json")
    )  # not stored

    listed = body(invoke("processes_list", sample_event("processes_list")))
    assert listed["total"] == 1 and listed["processes"][0]["process_id"] == pid
    assert body(_call("processes_get", pid))["status"] == "running"

    written = _call("processes_stdin", pid, {"data": "héllo\n"})
    assert written["statusCode"] == 200 and body(written) == {"process_id": pid, "written": 7}

    # output while it runs
    assert (
        _post_output(pid, {"chunks": [_chunk(1, "serving\n"), _chunk(2, "oops\n", "stderr")]})["statusCode"]
        == 200
    )
    page = body(_call("processes_output", pid, query={"after": "0"}))
    assert [c["data"] for c in page["chunks"]] == ["serving\n", "oops\n"]
    assert page["process_id"] == pid and page["next_after"] == 2 and page["complete"] is False
    assert body(_call("processes_output", pid, query={"after": "2", "wait": "0"}))["chunks"] == []

    # the last post: a chunk and the exit
    last = _post_output(
        pid,
        {
            "chunks": [_chunk(3, "bye\n")],
            "exit": {"exit_code": 3, "signal": None, "ended_at": "2026-01-01T00:00:09Z"},
        },
    )
    assert last["statusCode"] == 200 and body(last) == {"stored": 1, "status": "exited"}
    got = body(_call("processes_get", pid))
    assert got["status"] == "exited" and got["exit_code"] == 3 and got["signal"] is None
    assert got["ended_at"].startswith("2026-01-01T00:00:09")
    page = body(_call("processes_output", pid, query={"after": "2", "wait": "5"}))
    assert [c["data"] for c in page["chunks"]] == ["bye\n"] and page["complete"] is True

    # a repeated last post stores nothing and changes nothing
    again = _post_output(
        pid, {"chunks": [_chunk(3, "bye\n")], "exit": {"exit_code": 0, "ended_at": "2026-01-02T00:00:00Z"}}
    )
    assert body(again) == {"stored": 0, "status": "exited"}
    assert running.processes.get(pid).exit_code == 3

    # after the exit: stdin and signals are conflicts, with the contract's body
    out = _error(_call("processes_stdin", pid, {"data": "more"}), 409, "Sandbox.StateConflict")
    assert "exited" in out["error_detail"]
    _error(_call("processes_signal", pid, {"signal": "SIGTERM"}), 409, "Sandbox.StateConflict")
    assert [c[0] for c in running.executor.interactive_calls].count("write_stdin") == 1


def test_an_exit_posted_without_chunks_is_recorded(running):
    pid = body(_start())["process_id"]
    resp = _post_output(
        pid, {"chunks": [], "exit": {"exit_code": None, "signal": 9, "ended_at": "2026-01-01T00:00:01Z"}}
    )
    assert resp["statusCode"] == 200, resp["body"]
    got = running.processes.get(pid)
    assert got.status == "exited" and got.signal == 9 and got.exit_code is None
    assert running.processes.count_live(SAMPLE_SESSION) == 0


def test_stdin_eof_then_more_is_a_conflict_from_the_sandbox(running):
    pid = body(_start())["process_id"]
    assert _call("processes_stdin", pid, {"data": "", "eof": True})["statusCode"] == 200
    out = _error(_call("processes_stdin", pid, {"data": "x"}), 409, "Sandbox.StateConflict")
    assert "stdin is closed" in out["error_detail"]


def test_signal_and_an_exit_the_sandbox_knows_before_reporting_it(running):
    pid = body(_start())["process_id"]
    resp = _call("processes_signal", pid, {"signal": "SIGKILL"})
    assert resp["statusCode"] == 200 and body(resp)["status"] == "running"
    assert running.executor.interactive_calls[-2][:3] == ("signal_process", URL, (pid, "SIGKILL"))
    running.executor.exit_process(URL, pid, None, signal=9)
    got = body(_call("processes_get", pid))  # refreshed from the executor while the session runs
    assert got["status"] == "exited" and got["signal"] == 9
    assert running.processes.get(pid).status == "exited"
    _error(_call("processes_stdin", pid, {"data": "x"}), 409, "Sandbox.StateConflict")


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"cmd": "x" * (64 * 1024 + 1)}, "65,537 bytes"),
        ({"cmd": "   "}, "whitespace"),
        ({"cmd": ""}, "cmd"),
        ({}, "cmd"),
        ({"cmd": "ls\u0000"}, "NUL"),
        ({"cmd": "ls", "cwd": "/tmp"}, "inside /workspace"),
        ({"cmd": "ls", "cwd": "/workspace/../etc"}, "inside /workspace"),
        ({"cmd": "ls", "env": {"1BAD": "x"}}, "not a valid environment variable name"),
        ({"cmd": "ls", "env": {"AWS_SECRET": "x"}}, "reserved"),
        ({"cmd": "ls", "env": {"A": "x\u0000"}}, "NUL"),
        ({"cmd": "ls", "env": {f"V{i}": "x" for i in range(65)}}, "at most 64"),
        ({"cmd": "ls", "env": {"A": "x" * 5000}}, "4,096 bytes"),
        ({"cmd": "ls", "env": {"A": 1}}, "env"),
        ({"cmd": ["ls"]}, "cmd"),
    ],
)
def test_bad_process_requests_get_400_and_record_nothing(running, payload, detail):
    out = _error(_start(payload), 400, "Sandbox.InvalidParameter")
    assert detail in out["error_detail"], out["error_detail"]
    assert running.executor.interactive_calls == []
    assert running.processes.list_for_session(SAMPLE_SESSION) == []


@pytest.mark.parametrize(
    ("module", "payload"),
    [
        ("processes_stdin", {"data": "x" * (64 * 1024 + 1)}),
        ("processes_stdin", {"data": 1}),
        ("processes_stdin", {"eof": True}),
        ("processes_signal", {"signal": "SIGSTOP"}),
        ("processes_signal", {"signal": 9}),
    ],
)
def test_bad_stdin_and_signal_requests_get_400(running, module, payload):
    pid = body(_start())["process_id"]
    _error(_call(module, pid, payload), 400, "Sandbox.InvalidParameter")
    assert [c[0] for c in running.executor.interactive_calls] == ["start_process"]


def test_bad_output_queries_get_400(running):
    pid = body(_start())["process_id"]
    for query in ({"after": "-1"}, {"wait": "21"}, {"after": "x"}):
        _error(_call("processes_output", pid, query=query), 400, "Sandbox.InvalidParameter")


def test_a_seventeenth_running_process_is_refused_with_retry_after(running):
    ids = [body(_start())["process_id"] for _ in range(16)]
    resp = _start()
    out = _error(resp, 429, "Sandbox.TooManyRequestsExection")
    assert "limit 16" in out["error_detail"] and retry_after(resp) == "5"
    assert len(running.processes.list_for_session(SAMPLE_SESSION)) == 16
    # one exits in the sandbox, its exit not reported yet: the limit asks the sandbox before refusing
    running.executor.exit_process(URL, ids[3], 0)
    assert _start()["statusCode"] == 201
    assert running.processes.get(ids[3]).status == "exited"
    _error(_start(), 429, "Sandbox.TooManyRequestsExection")


def test_a_process_the_sandbox_refuses_is_recorded_failed(running):
    running.executor.MAX_PROCESSES = 0
    resp = _start()
    _error(resp, 429, "Sandbox.TooManyRequestsExection")
    assert retry_after(resp) == "5"
    [failed] = running.processes.list_for_session(SAMPLE_SESSION)
    assert failed.status == "failed" and "too many" in failed.error_message
    assert running.processes.count_live(SAMPLE_SESSION) == 0


def test_processes_need_a_running_session(deps):
    seed_session(deps, status=SessionStatus.TERMINATED)
    _error(_start(), 409, "Sandbox.StateConflict")
    assert deps.processes.list_for_session(SAMPLE_SESSION) == []


def test_processes_of_another_session_or_tenant_are_not_found(running):
    pid = body(_start())["process_id"]
    seed_session(running, OTHER_SESSION)
    seed_session(running, "sess_0000000000000003", tenant="tenant-b")
    calls = [
        ("processes_get", None),
        ("processes_stdin", {"data": "x"}),
        ("processes_signal", {"signal": "SIGTERM"}),
        ("processes_output", None),
    ]
    for module, payload in calls:
        _error(_call(module, pid, payload, session_id=OTHER_SESSION), 404, "Sandbox.ProcessNotFound")
        _error(_call(module, pid, payload, tenant="tenant-b"), 404, "Sandbox.SessionNotFound")
        _error(
            _call(module, pid, payload, session_id="sess_0000000000000003", tenant="tenant-b"),
            404,
            "Sandbox.ProcessNotFound",
        )
        _error(_call(module, "proc-0000000000000099", payload), 404, "Sandbox.ProcessNotFound")
        _error(_call(module, "proc-%2E%2E", payload), 404, "Sandbox.ProcessNotFound")
    assert [c[0] for c in running.executor.interactive_calls] == ["start_process"]
    listed = body(
        invoke("processes_list", with_path(sample_event("processes_list"), session_id=OTHER_SESSION))
    )
    assert listed == {"processes": [], "total": 0}


def test_the_output_callback_is_for_the_tokens_own_session(running):
    pid = body(_start())["process_id"]
    seed_session(running, OTHER_SESSION)
    out = _error(
        _post_output(pid, {"chunks": [_chunk(1, "x")]}, session=OTHER_SESSION), 403, "Sandbox.Forbidden"
    )
    assert pid in out["error_detail"]
    _error(
        _post_output("proc-0000000000000099", {"chunks": [_chunk(1, "x")]}), 404, "Sandbox.ProcessNotFound"
    )
    _error(_post_output(pid, {"chunks": [_chunk(1, "x"), _chunk(3, "y")]}), 400, "Sandbox.InvalidParameter")
    _error(_post_output(pid, {"exit": {"exit_code": "0", "ended_at": "x"}}), 400, "Sandbox.InvalidParameter")
    assert body(_call("processes_output", pid))["chunks"] == []
    assert running.processes.get(pid).status == "running"


def test_processes_end_with_their_session(running):
    pid = body(_start())["process_id"]
    done = body(_start())["process_id"]
    _post_output(done, {"exit": {"exit_code": 0, "ended_at": "2026-01-01T00:00:01Z"}})
    assert invoke("sessions_terminate", sample_event("sessions_terminate"))["statusCode"] == 200
    ended = running.processes.get(pid)
    assert ended.status == "ended" and ended.ended_at is not None and ended.exit_code is None
    assert running.processes.get(done).status == "exited"  # an exited one keeps its exit
    assert running.processes.count_live(SAMPLE_SESSION) == 0
    got = body(_call("processes_get", pid))
    assert got["status"] == "ended"
    assert body(_call("processes_output", pid))["complete"] is True
    _error(_call("processes_stdin", pid, {"data": "x"}), 409, "Sandbox.StateConflict")


def test_a_container_exit_ends_the_sessions_processes(running):
    pid = body(_start())["process_id"]
    event = sample_event("internal_container_exited")
    event["requestContext"]["authorizer"]["session_id"] = SAMPLE_SESSION
    assert invoke("internal_container_exited", event)["statusCode"] == 200
    assert running.sessions.get(SAMPLE_SESSION).status == SessionStatus.FAILED
    assert running.processes.get(pid).status == "ended"


def test_a_live_process_of_an_ended_session_is_settled_when_read(running):
    pid = body(_start())["process_id"]
    running.sessions.transition(SAMPLE_SESSION, SessionStatus.TIMEOUT, now=clock.now())
    listed = body(invoke("processes_list", sample_event("processes_list")))
    assert listed["processes"][0]["status"] == "ended"
    assert running.processes.get(pid).status == "ended"
