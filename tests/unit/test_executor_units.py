"""sandbox_executor building blocks, in process: validation, capture, config, callbacks, outcomes."""

from __future__ import annotations

import itertools
import os
import resource
import signal
import sys
import threading
import time

import pytest

from sandbox_executor.callbacks import Backoff, CallbackClient, Outcome, result_backoff
from sandbox_executor.capture import BoundedBuffer
from sandbox_executor.config import ConfigError, ListenSpec, load_config
from sandbox_executor.http_client import Endpoint
from sandbox_executor.process import ChildRegistry, ProcessResult, run_process
from sandbox_executor.runner import child_env, outcome_from, shrink_report
from sandbox_executor.validation import ValidationError, parse_execute_request
from tests.unit.executor_helpers import FakeControlPlane, new_execution_id

# -- validation --------------------------------------------------------------------------------


def _req(**fields: object) -> dict[str, object]:
    return {"execution_id": "exec_20250106_abc12345", "code": "x", "language": "shell", **fields}


def test_request_defaults() -> None:
    req = parse_execute_request(_req())
    assert req.timeout == 30
    assert req.event == {}
    assert req.stdin is None


def test_event_wins_over_stdin_and_stdin_only_counts_as_an_object() -> None:
    assert parse_execute_request(_req(event={"a": 1}, stdin='{"b": 2}')).event == {"a": 1}
    assert parse_execute_request(_req(stdin='{"b": 2}')).event == {"b": 2}
    raw = parse_execute_request(_req(stdin="plain text"))
    assert raw.event == {}
    assert raw.stdin == "plain text"
    assert parse_execute_request(_req(event=None)).event == {}


@pytest.mark.parametrize("timeout", [1, 3600, 30.0])
def test_timeout_bounds_accepted(timeout: float) -> None:
    assert parse_execute_request(_req(timeout=timeout)).timeout == int(timeout)


@pytest.mark.parametrize("timeout", [0, 3601, True, 1.5, "30", -1])
def test_timeout_bounds_rejected(timeout: object) -> None:
    with pytest.raises(ValidationError, match="timeout"):
        parse_execute_request(_req(timeout=timeout))


def test_code_limit_is_in_utf8_bytes() -> None:
    parse_execute_request(_req(code="x" * (1 << 20)))
    with pytest.raises(ValidationError, match="code"):
        parse_execute_request(_req(code="é" * ((1 << 19) + 1)))
    with pytest.raises(ValidationError, match="code"):
        parse_execute_request(_req(code="   \n"))


def test_body_must_be_an_object() -> None:
    with pytest.raises(ValidationError):
        parse_execute_request([1, 2])


# -- capture -----------------------------------------------------------------------------------


def test_bounded_buffer_keeps_the_head_and_counts_the_rest() -> None:
    buf = BoundedBuffer(5)
    buf.feed(b"abc")
    assert not buf.truncated
    buf.feed(b"defg")
    buf.feed(b"hij")
    assert buf.data() == b"abcde"
    assert buf.truncated
    assert buf.total == 10


def test_bounded_buffer_decodes_a_cut_character_leniently() -> None:
    buf = BoundedBuffer(3)
    buf.feed("aaé!".encode())  # the limit falls inside the 2-byte é
    assert buf.text() == "aa\ufffd"


# -- configuration -----------------------------------------------------------------------------


def test_listen_specs() -> None:
    assert ListenSpec.parse("unix:/run/x.sock") == ListenSpec(kind="unix", path="/run/x.sock")
    assert ListenSpec.parse("unix:///run/x.sock").path == "/run/x.sock"
    assert ListenSpec.parse("tcp:0.0.0.0:8080") == ListenSpec(kind="tcp", host="0.0.0.0", port=8080)
    assert ListenSpec.parse("tcp:[::]:9000") == ListenSpec(kind="tcp", host="::", port=9000)
    for bad in ("unix:relative.sock", "tcp:host", "tcp:host:99999", "udp:1"):
        with pytest.raises(ConfigError):
            ListenSpec.parse(bad)


def test_load_config_defaults_and_errors() -> None:
    cfg = load_config({"SANDBOXCP_SESSION_ID": "sess_x", "SANDBOXCP_CALLBACK_URL": "http://cp:8000"})
    assert cfg.listen == ListenSpec(kind="tcp", host="0.0.0.0", port=8080)
    assert cfg.workspace == "/workspace"
    assert cfg.heartbeat_s == 5.0
    assert cfg.retry_base_s == 1.0
    assert (cfg.node_bin, cfg.bash_bin) == ("node", "bash")
    assert cfg.container_id is None
    with pytest.raises(ConfigError):
        load_config({"SANDBOXCP_CALLBACK_URL": "http://cp"})
    with pytest.raises(ConfigError):
        load_config(
            {"SANDBOXCP_SESSION_ID": "s", "SANDBOXCP_CALLBACK_URL": "http://cp", "SANDBOXCP_HEARTBEAT_S": "0"}
        )


def test_endpoints() -> None:
    assert Endpoint.parse("unix:///run/cp.sock") == Endpoint(scheme="unix", socket_path="/run/cp.sock")
    http = Endpoint.parse("http://cp:8000/prefix/")
    assert (http.host, http.port, http.prefix) == ("cp", 8000, "/prefix")
    with pytest.raises(ValueError):
        Endpoint.parse("ftp://cp")


def test_child_env_drops_reserved_prefixes() -> None:
    env = child_env(
        "/ws",
        {"SANDBOXCP_CALLBACK_TOKEN": "t", "AWS_SECRET_ACCESS_KEY": "k", "KEEP": "1", "HOME": "/root"},
    )
    assert env["HOME"] == "/ws"
    assert env["KEEP"] == "1"
    assert env["LANG"] == "C.UTF-8"
    assert "PATH" in env
    assert not [k for k in env if k.startswith(("SANDBOXCP_", "AWS_"))]


# -- callbacks ---------------------------------------------------------------------------------


def test_backoff_sequences() -> None:
    assert list(itertools.islice(result_backoff(1.0).delays(), 7)) == [1, 2, 4, 8, 10, 10, 10]
    assert result_backoff(1.0).budget_s == 15 * 60
    ready = Backoff(first_s=0.2, max_s=5.0, budget_s=60.0)
    assert list(itertools.islice(ready.delays(), 7)) == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


def test_callback_client_retries_5xx_and_stops_on_4xx() -> None:
    with FakeControlPlane() as cp:
        client = CallbackClient(cp.url, "tkn", threading.Event())
        eid = new_execution_id()
        cp.fail_results[eid] = 2
        delivery = client.execution_result(eid, {"status": "success"}, base_s=0.01)
        assert delivery.outcome is Outcome.DELIVERED
        assert [c.status for c in cp.calls_to(f"{eid}/result")] == [503, 503, 200]

        cp.ready_status = 409
        fast = Backoff(first_s=0.01, max_s=0.01, budget_s=5.0)
        rejected = client.post("/sessions/s/container_ready", {}, backoff=fast, timeout=2.0)
        assert (rejected.outcome, rejected.status) == (Outcome.REJECTED, 409)
        assert len(cp.calls_to("/container_ready")) == 1


def test_callback_client_gives_up_after_its_budget_and_on_stop() -> None:
    stop = threading.Event()
    client = CallbackClient("unix:///nonexistent/cp.sock", "tkn", stop)
    started = time.monotonic()
    gave_up = client.post("/x", {}, backoff=Backoff(0.05, 0.1, 0.3), timeout=1.0)
    assert gave_up.outcome is Outcome.GAVE_UP and gave_up.status is None
    assert time.monotonic() - started < 2
    stop.set()
    started = time.monotonic()
    assert client.post("/x", {}, backoff=Backoff(5, 5, 60), timeout=1.0).outcome is Outcome.GAVE_UP
    assert time.monotonic() - started < 1


# -- outcomes ----------------------------------------------------------------------------------


def _raw(exit_code: int | None, *, timed_out: bool = False, ret: bytes | None = None) -> ProcessResult:
    ret_buf = None
    if ret is not None:
        ret_buf = BoundedBuffer(16)
        ret_buf.feed(ret)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return ProcessResult(exit_code, timed_out, BoundedBuffer(8), BoundedBuffer(64), ret_buf, 0.25, usage)


def test_outcome_mapping() -> None:
    assert outcome_from(_raw(0, ret=b'{"a":1}'), 5).return_value == {"a": 1}
    timed_out = outcome_from(_raw(-9, timed_out=True), 5)
    assert (timed_out.status, timed_out.exit_code) == ("timeout", -1)
    assert timed_out.stderr == "Execution timeout after 5 seconds"
    killed = outcome_from(_raw(-int(signal.SIGKILL)), 5)
    assert (killed.status, killed.exit_code) == ("failed", 137)
    assert "SIGKILL" in killed.stderr
    too_big = outcome_from(_raw(0, ret=b"x" * 17), 5)
    assert too_big.status == "failed" and "return value too large" in too_big.stderr
    report = outcome_from(_raw(0), 5).to_report()
    assert report["execution_time"] == 0.25
    assert report["metrics"]["duration_ms"] == 250.0
    assert set(report) == {
        "status", "stdout", "stderr", "exit_code", "execution_time", "return_value",
        "metrics", "artifacts", "stdout_truncated", "stderr_truncated",
    }  # fmt: skip


def test_shrunk_report_fits() -> None:
    outcome = outcome_from(_raw(0, ret=b"1"), 5)
    outcome.stdout = "y" * (2 << 20)
    small = shrink_report(outcome)
    assert small["status"] == "failed"
    assert small["return_value"] is None
    assert len(small["stdout"]) == 256 * 1024 and small["stdout_truncated"]


def test_run_process_feeds_big_stdin_and_caps_the_return_pipe() -> None:
    # The child reads 3 MiB of stdin and writes 5 MiB to the return pipe: neither side may block.
    code = (
        "import os, sys\n"
        "data = sys.stdin.buffer.read()\n"
        "os.write(1, str(len(data)).encode())\n"
        "with os.fdopen(int(sys.argv[1]), 'wb') as f:\n"
        "    f.write(b'z' * (5 << 20))\n"
    )
    result = run_process(
        [sys.executable, "-c", code],
        env=dict(os.environ),
        cwd="/",
        stdin_data=b"s" * (3 << 20),
        timeout_s=20,
        return_pipe=True,
        registry=ChildRegistry(),
    )
    assert result.exit_code == 0 and not result.timed_out
    assert result.stdout.text() == str(3 << 20)
    assert result.ret is not None and result.ret.truncated and result.ret.total == 5 << 20
    assert result.rusage is not None
