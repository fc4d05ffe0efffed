"""The SDK's pieces without a stack: retry decisions and Retry-After, error mapping, the snippet wrapper
(run here with the executor's own bootstrap), uploads' sources and progress, config resolution."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from sandbox_executor.bootstrap_python import PYTHON_BOOTSTRAP
from sandboxcp_client import RetryPolicy, SandboxClient, _api, _snippet
from sandboxcp_client._files import ProgressReader, open_source
from sandboxcp_client._http import ClientConfig
from sandboxcp_client.errors import (
    ConflictError,
    IdempotencyKeyReusedError,
    InternalServerError,
    InvalidParameterError,
    SandboxConnectionError,
    ServiceUnavailableError,
    SessionNotFoundError,
    TooManyRequestsError,
    error_from_response,
)
from sandboxcp_client.retry import parse_retry_after

FAST = RetryPolicy(max_retries=3, backoff_base=0.001, backoff_max=0.002)


def _error(status: int, code: str, **extra: str) -> httpx.Response:
    body = {
        "error_code": code,
        "description": "d",
        "error_detail": "detail",
        "solution": "do this",
        "request_id": "req-1",
        **extra,
    }
    return httpx.Response(status, json=body)


# -- Retry-After and backoff -------------------------------------------------------------------------------
def test_retry_after_seconds_and_http_dates():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now) == 7.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=7), usegmt=True), now) == 0.0
    assert (
        parse_retry_after(None) is None
        and parse_retry_after("soon") is None
        and parse_retry_after("") is None
    )


def test_backoff_is_jittered_and_capped():
    policy = RetryPolicy(backoff_base=1.0, backoff_max=4.0)
    delays = [policy.backoff(attempt) for attempt in range(8) for _ in range(20)]
    assert all(0 <= d <= 4.0 for d in delays) and len(set(delays)) > 100
    assert policy.delay_for(0, httpx.Response(503, headers={"Retry-After": "2"})) == 2.0
    assert policy.delay_for(0, httpx.Response(503, headers={"Retry-After": "600"})) is None  # too long


# -- error mapping -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "Sandbox.InvalidParameter", InvalidParameterError),
        (404, "Sandbox.SessionNotFound", SessionNotFoundError),
        (409, "Sandbox.StateConflict", ConflictError),
        (422, "Sandbox.IdempotencyKeyReused", IdempotencyKeyReusedError),
        (429, "Sandbox.TooManyRequestsExection", TooManyRequestsError),
        (503, "Sandbox.TooManyRequestsExection", ServiceUnavailableError),
        (500, "Sandbox.InternalError", InternalServerError),
        (502, "HTTP.502", InternalServerError),
    ],
)
def test_each_error_code_has_its_exception(status, code, cls):
    err = error_from_response(_error(status, code))
    assert type(err) is cls
    assert (err.status_code, err.error_code, err.detail, err.solution, err.request_id) == (
        status,
        code,
        "detail",
        "do this",
        "req-1",
    )
    assert "req-1" in str(err) and err.error_detail == "detail"


def test_a_non_json_error_still_maps():
    err = error_from_response(httpx.Response(502, text="Bad Gateway", headers={"x-amzn-requestid": "gw-1"}))
    assert isinstance(err, InternalServerError) and err.detail == "Bad Gateway" and err.request_id == "gw-1"


# -- retries in the transport ------------------------------------------------------------------------------
class Script:
    """A MockTransport handler answering from a list (responses or exceptions), recording requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _client(script: Script, retry: RetryPolicy = FAST) -> SandboxClient:
    return SandboxClient(
        "http://api.test",
        "sk_x",
        retry=retry,
        http_client=httpx.Client(transport=httpx.MockTransport(script)),
    )


SESSION = {"session_id": "sess_0000000000000001", "status": "running"}


def test_get_retries_503_then_succeeds_with_the_key():
    script = Script(_error(503, "Sandbox.TooManyRequestsExection"), httpx.Response(200, json=SESSION))
    assert _client(script).sessions.get("sess_0000000000000001").status == "running"
    assert len(script.requests) == 2
    assert all(r.headers["authorization"] == "Bearer sk_x" for r in script.requests)


def test_create_retries_with_the_same_idempotency_key():
    script = Script(_error(503, "x"), _error(429, "x"), httpx.Response(201, json=SESSION))
    _client(script).sessions.create("python-basic")
    keys = {r.headers["idempotency-key"] for r in script.requests}
    assert len(script.requests) == 3 and len(keys) == 1


def test_a_post_without_a_key_is_never_retried_once_sent():
    script = Script(_error(503, "x"), httpx.Response(200, json={"execution_id": "e"}))
    with pytest.raises(ServiceUnavailableError):
        _client(script).executions.submit("sess_0000000000000001", "print(1)")
    assert len(script.requests) == 1
    script = Script(httpx.ReadError("reset"), httpx.Response(200, json={"execution_id": "e"}))
    with pytest.raises(SandboxConnectionError):
        _client(script).executions.submit("sess_0000000000000001", "print(1)")
    assert len(script.requests) == 1


def test_a_post_whose_connection_never_opened_is_retried():
    script = Script(httpx.ConnectError("refused"), httpx.Response(200, json={"execution_id": "e"}))
    assert _client(script).executions.submit("sess_0000000000000001", "print(1)").execution_id == "e"
    assert len(script.requests) == 2


def test_retries_stop_after_the_policy_and_raise_the_last_error():
    script = Script(*[_error(503, "x") for _ in range(3)])
    with pytest.raises(ServiceUnavailableError) as caught:
        _client(script, RetryPolicy(max_retries=2, backoff_base=0.001)).sessions.get("s")
    assert len(script.requests) == 3 and caught.value.solution == "do this"
    script = Script(_error(503, "x"))
    with pytest.raises(ServiceUnavailableError):
        _client(script, RetryPolicy.none()).sessions.get("s")


def test_run_polls_when_execute_sync_answers_202():
    result = {
        "execution_id": "exec_1",
        "status": "success",
        "stdout": "done\n",
        "stderr": "",
        "exit_code": 0,
        "execution_time": 30.0,
        "return_value": None,
        "metrics": {"duration_ms": 30000.0},
        "artifacts": [],
    }
    script = Script(
        httpx.Response(202, json={"execution_id": "exec_1", "status": "running"}),
        httpx.Response(200, json={"execution_id": "exec_1", "status": "running"}),
        httpx.Response(200, json={"execution_id": "exec_1", "status": "completed"}),
        httpx.Response(200, json=result),
    )
    out = _client(script).executions.run("sess_0000000000000001", "import time; time.sleep(30)")
    assert out.stdout == "done\n" and out.ok
    assert [r.url.path for r in script.requests] == [
        "/api/v1/sessions/sess_0000000000000001/execute-sync",
        "/api/v1/executions/exec_1/status",
        "/api/v1/executions/exec_1/status",
        "/api/v1/executions/exec_1/result",
    ]


def test_config_from_arguments_then_environment(monkeypatch):
    monkeypatch.setenv("SANDBOXCP_URL", "http://env.test:9/api/v1/")
    monkeypatch.setenv("SANDBOXCP_API_KEY", "sk_env")
    assert (ClientConfig.resolve().api_url, ClientConfig.resolve().api_key) == (
        "http://env.test:9/api/v1",
        "sk_env",
    )
    assert ClientConfig.resolve("http://arg.test", "sk_arg").api_url == "http://arg.test/api/v1"
    monkeypatch.delenv("SANDBOXCP_URL")
    assert ClientConfig.resolve().url == "http://127.0.0.1:8000"


# -- snippets ----------------------------------------------------------------------------------------------
def _bootstrap(code: str) -> tuple[int, str, str, object]:
    """Run code exactly as the executor does (its bootstrap, stdin request, return pipe)."""
    import os

    read_fd, write_fd = os.pipe()
    proc = subprocess.run(
        [sys.executable, "-u", "-c", PYTHON_BOOTSTRAP, str(write_fd)],
        input=json.dumps({"code": code, "event": {}}).encode(),
        capture_output=True,
        pass_fds=(write_fd,),
        timeout=30,
    )
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode(), json.loads(data) if data else None


def test_a_snippet_runs_as_a_script_and_returns_its_last_expression():
    rc, out, _err, ret = _bootstrap(_snippet.wrap_snippet("import math\nprint('hi')\nx = 6\nx * 7"))
    assert rc == 0 and out == "hi\n"
    assert _snippet.unwrap(ret) == (42, "42", [])
    rc, _, _, ret = _bootstrap(_snippet.wrap_snippet("object()"))
    value, text, _ = _snippet.unwrap(ret)  # type: ignore[misc]
    assert value is None and text.startswith("<object object at")
    rc, out, _, ret = _bootstrap(_snippet.wrap_snippet("print('only output')"))
    assert _snippet.unwrap(ret) == (None, None, [])


def test_a_failing_snippet_exits_1_with_a_traceback_at_its_own_lines():
    rc, _out, err, ret = _bootstrap(_snippet.wrap_snippet("a = 1\nb = 0\na / b"))
    assert rc == 1 and ret is None
    assert 'File "<code>", line 3' in err and "ZeroDivisionError" in err and "<handler>" not in err
    rc, _, err, _ = _bootstrap(_snippet.wrap_snippet("def broken(:\n"))
    assert rc == 1 and "SyntaxError" in err


def test_values_with_a_png_repr_come_back_as_images():
    code = "class P:\n    def _repr_png_(self):\n        return b'\\x89PNG fake'\nP()"
    _, _, _, ret = _bootstrap(_snippet.wrap_snippet(code))
    _, _, images = _snippet.unwrap(ret)  # type: ignore[misc]
    result = _api.unwrap_result(
        _api.read_result({"execution_id": "e", "status": "success", "return_value": ret}, snippet=True)
    )
    assert len(images) == 1 and result.images[0].data == b"\x89PNG fake" and result.text.startswith("<")


def test_handler_code_and_events_are_sent_unchanged():
    handler = "def handler(event):\n    return 1"
    assert _api.prepare_code(handler, "python", None) == (handler, False)
    assert _api.prepare_code("print(1)", "python", {"x": 1}) == ("print(1)", False)
    assert _api.prepare_code("console.log(1)", "javascript", None) == ("console.log(1)", False)
    assert _api.prepare_code("print(1)", "python", None)[1] is True
    assert not _snippet.defines_handler("def handler(:")


# -- files and logs ----------------------------------------------------------------------------------------
def test_sources_are_sized_and_rewindable(tmp_path: Path):
    assert open_source(b"abc").size == 3 and open_source("é").size == 2
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1000)
    src = open_source(path)
    assert (src.size, src.name) == (1000, "f.bin")
    src.close()
    buf = io.BytesIO(b"skip" + b"y" * 10)
    buf.read(4)
    src = open_source(buf)  # from the caller's position on
    assert src.size == 10 and src.reader(None).read() == b"y" * 10


def test_progress_reader_reports_bytes_and_length():
    seen: list[tuple[int, int | None]] = []
    reader = ProgressReader(io.BytesIO(b"z" * 100), 100, lambda done, total: seen.append((done, total)))
    assert reader.seek(0, 2) == 100
    assert reader.seek(0) == 0 and reader.tell() == 0
    while reader.read(30):
        pass
    assert seen[-1] == (100, 100) and [d for d, _ in seen] == [30, 60, 90, 100]
    assert httpx._utils.peek_filelike_length(reader) == 100  # httpx sends a Content-Length, not chunks


def test_new_log_lines_dedupes_the_overlap():
    assert _api.new_log_lines([], ["a", "b"]) == ["a", "b"]
    assert _api.new_log_lines(["a", "b", "c"], ["b", "c", "d", "e"]) == ["d", "e"]
    assert _api.new_log_lines(["a", "b"], ["a", "b"]) == []
    assert _api.new_log_lines(["a"], ["x", "y"]) == ["x", "y"]


# -- waiting for a session -----------------------------------------------------------------------------------
CREATING = {"session_id": "sess_0000000000000001", "status": "creating"}


def test_wait_until_running_waits_on_the_server_with_one_request_per_answer():
    """Each request asks the server to wait (`wait`, at most 20 s) and gets a read timeout beyond it."""
    script = Script(httpx.Response(200, json=SESSION))
    info = _client(script).sessions.wait_until_running("sess_0000000000000001", timeout=90)
    assert info.status == "running"
    (request,) = script.requests
    assert float(request.url.params["wait"]) == 20.0
    assert request.extensions["timeout"]["read"] == 30.0


def test_wait_until_running_paces_itself_against_a_server_that_answers_at_once(monkeypatch):
    """A server without `wait` answers `creating` at once: the client sleeps between reads (growing), as it
    polled before, instead of spinning."""
    from sandboxcp_client import client as client_module

    slept: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", slept.append)
    answers = [httpx.Response(200, json=CREATING) for _ in range(4)]
    script = Script(*answers, httpx.Response(200, json=SESSION))
    assert _client(script).sessions.wait_until_running("sess_0000000000000001").status == "running"
    assert len(script.requests) == 5 and len(slept) == 4
    assert slept == sorted(slept) and slept[0] < slept[-1]
