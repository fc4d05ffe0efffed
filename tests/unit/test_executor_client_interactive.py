"""The executor client's code-context and process calls (issue #12) against a canned executor on loopback:
paths, bodies and the executor key sent; refusals mapped to the domain errors clients see; an executor's
untrusted explanation cut short; malformed answers refused."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sandboxcp.adapters.executor_client import HttpExecutorClient
from sandboxcp.domain.errors import (
    ContextNotFound,
    InvalidParameter,
    ProcessNotFound,
    SandboxUnavailable,
    SessionLimitReached,
    StateConflict,
)
from sandboxcp.domain.models import Execution
from sandboxcp.domain.states import ExecutionStatus


class Executor:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any, str]] = []
        self.answer: tuple[int, Any] = (200, {})


@pytest.fixture
def executor() -> Iterator[tuple[Executor, str]]:
    state = Executor()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(size) if size else b""
            state.requests.append(
                (self.command, self.path, json.loads(raw) if raw else None, self.headers["Authorization"])
            )
            status, answer = state.answer
            data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


CLIENT = HttpExecutorClient()


def test_context_calls_send_paths_bodies_and_the_key(executor):
    state, url = executor
    state.answer = (201, {"context_id": "ctx-1", "language": "python", "cwd": None, "status": "ready"})
    ctx = CLIENT.create_context(url, "ctx-1", "python", "/workspace/a", executor_key="k1")
    assert ctx.status == "ready" and ctx.executions == 0
    state.answer = (200, {"context_id": "ctx-1", "status": "busy", "executions": 2, "restarts": 1})
    assert CLIENT.get_context(url, "ctx-1", executor_key="k1").executions == 2
    assert CLIENT.restart_context(url, "ctx-1", executor_key="k1").restarts == 1
    state.answer = (200, {"context_id": "ctx-1", "status": "deleted"})
    CLIENT.delete_context(url, "ctx-1", executor_key="k1")
    assert state.requests == [
        (
            "POST",
            "/contexts",
            {"context_id": "ctx-1", "language": "python", "cwd": "/workspace/a"},
            "Bearer k1",
        ),
        ("GET", "/contexts/ctx-1", None, "Bearer k1"),
        ("POST", "/contexts/ctx-1/restart", {}, "Bearer k1"),
        ("DELETE", "/contexts/ctx-1", None, "Bearer k1"),
    ]


def test_process_calls(executor):
    state, url = executor
    state.answer = (
        201,
        {"process_id": "p", "pid": 7, "status": "running", "started_at": "2026-01-01T00:00:00Z"},
    )
    assert CLIENT.start_process(url, "p", "ls", None, {"A": "1"}, executor_key="k").pid == 7
    state.answer = (
        200,
        {"processes": [{"process_id": "p", "status": "exited", "exit_code": 0, "signal": None}]},
    )
    [listed] = CLIENT.list_processes(url, executor_key="k")
    assert listed.exit_code == 0
    state.answer = (200, {"written": 3})
    assert CLIENT.write_stdin(url, "p", "abc", True, executor_key="k") == 3
    state.answer = (200, {})
    CLIENT.signal_process(url, "p", "SIGINT", executor_key="k")
    assert [r[:3] for r in state.requests] == [
        ("POST", "/processes", {"process_id": "p", "cmd": "ls", "cwd": None, "env": {"A": "1"}}),
        ("GET", "/processes", None),
        ("POST", "/processes/p/stdin", {"data": "abc", "eof": True}),
        ("POST", "/processes/p/signal", {"signal": "SIGINT"}),
    ]


def _refusal(code: str, detail: str = "why") -> dict[str, str]:
    return {"error_code": code, "description": "x", "error_detail": detail, "solution": "y"}


@pytest.mark.parametrize(
    ("status", "call", "error"),
    [
        (404, lambda url: CLIENT.get_context(url, "c", executor_key="k"), ContextNotFound),
        (404, lambda url: CLIENT.get_process(url, "p", executor_key="k"), ProcessNotFound),
        (409, lambda url: CLIENT.write_stdin(url, "p", "x", False, executor_key="k"), StateConflict),
        (
            429,
            lambda url: CLIENT.create_context(url, "c", "python", None, executor_key="k"),
            SessionLimitReached,
        ),
        (
            429,
            lambda url: CLIENT.start_process(url, "p", "ls", None, {}, executor_key="k"),
            SessionLimitReached,
        ),
        (
            400,
            lambda url: CLIENT.create_context(url, "c", "python", None, executor_key="k"),
            InvalidParameter,
        ),
        (401, lambda url: CLIENT.get_context(url, "c", executor_key="k"), SandboxUnavailable),
        (500, lambda url: CLIENT.signal_process(url, "p", "SIGTERM", executor_key="k"), SandboxUnavailable),
    ],
)
def test_refusals_map_to_domain_errors(executor, status, call, error):
    state, url = executor
    state.answer = (status, _refusal("Executor.X", "because\x1b[31m " + "z" * 1000))
    with pytest.raises(error) as caught:
        call(url)
    if status != 500 and status != 401:
        assert "because" in caught.value.detail and "\x1b" not in caught.value.detail
        assert len(caught.value.detail) < 400
    if error is SessionLimitReached:
        assert caught.value.retry_after == 5


@pytest.mark.parametrize(
    "answer",
    [
        b"not json",
        {"context_id": "c", "status": "exploded"},
        {"context_id": "c", "status": "ready", "executions": -1},
    ],
)
def test_malformed_answers_are_refused(executor, answer):
    state, url = executor
    state.answer = (200, answer)
    with pytest.raises(SandboxUnavailable):
        CLIENT.get_context(url, "c", executor_key="k")


def test_an_unreachable_executor_is_unavailable():
    with pytest.raises(SandboxUnavailable, match="unreachable"):
        CLIENT.get_process("http://127.0.0.1:9", "p", executor_key="k")


def test_execute_carries_the_context_id_only_when_set(executor):
    state, url = executor
    execution = Execution(
        execution_id="exec_20260101_00000001",
        session_id="sess_0000000000000001",
        tenant_id="t",
        status=ExecutionStatus.PENDING,
        code="x",
        language="python",
        timeout=30,
        created_at=datetime.now(UTC),
    )
    state.answer = (202, {})
    CLIENT.submit(url, execution, executor_key="k")
    CLIENT.submit(url, execution.model_copy(update={"context_id": "ctx-1"}), executor_key="k")
    assert "context_id" not in state.requests[0][2]
    assert state.requests[1][2]["context_id"] == "ctx-1"
