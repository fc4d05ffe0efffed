"""sandbox_executor building blocks, in process: validation, capture, config, callbacks, outcomes."""

from __future__ import annotations

import errno
import itertools
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from sandbox_executor import advertise, artifacts
from sandbox_executor.advertise import advertised_url
from sandbox_executor.artifacts import list_artifacts, run_clock_ns
from sandbox_executor.callbacks import Backoff, CallbackClient, Delivery, Outcome, result_backoff
from sandbox_executor.capture import BoundedBuffer
from sandbox_executor.config import Config, ConfigError, ListenSpec, load_config
from sandbox_executor.http_client import Endpoint
from sandbox_executor.process import ChildRegistry, ProcessResult, run_process
from sandbox_executor.runner import child_env, outcome_from, shrink_report
from sandbox_executor.validation import ValidationError, parse_execute_request
from sandbox_executor.worker import Heartbeats
from tests.unit.executor_helpers import FakeControlPlane, FakeTaskMetadata, new_execution_id

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
    # The control plane's limit (sandbox_executor.contract.MAX_CODE_BYTES: 100 KiB), not the 1 MiB the
    # executor's own contract would allow.
    parse_execute_request(_req(code="x" * (100 * 1024)))
    with pytest.raises(ValidationError, match="code"):
        parse_execute_request(_req(code="é" * (50 * 1024 + 1)))
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


# -- heartbeats --------------------------------------------------------------------------------


class _SlowBeats:
    """Stands in for CallbackClient.heartbeat: each beat takes ``delay`` s; records concurrency."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.beats: list[tuple[str, float]] = []
        self.in_flight: dict[str, int] = {}
        self.peak = 0
        self.peak_per_id = 0

    def heartbeat(self, execution_id: str, timeout: float) -> Delivery:
        with self.lock:
            self.beats.append((execution_id, time.monotonic()))
            self.in_flight[execution_id] = self.in_flight.get(execution_id, 0) + 1
            self.peak = max(self.peak, sum(self.in_flight.values()))
            self.peak_per_id = max(self.peak_per_id, self.in_flight[execution_id])
        time.sleep(self.delay)
        with self.lock:
            self.in_flight[execution_id] -= 1
        return Delivery(Outcome.DELIVERED, 200)

    def count(self, execution_id: str) -> int:
        with self.lock:
            return sum(1 for eid, _ in self.beats if eid == execution_id)


def test_heartbeats_for_every_held_execution_with_bounded_concurrency() -> None:
    fake = _SlowBeats(delay=0.1)
    stop = threading.Event()
    beats = Heartbeats(fake, interval=0.1, stop=stop, senders=3)  # type: ignore[arg-type]
    beats.start()
    try:
        ids = [f"exec_20250106_{i:08d}" for i in range(6)]
        for eid in ids:
            beats.hold(eid)
        time.sleep(0.7)
        assert all(fake.count(eid) >= 2 for eid in ids), fake.beats
        assert fake.peak <= 3  # never more than `senders` posts at once
        assert fake.peak_per_id == 1  # a slow beat is skipped, not piled up
        beats.release(ids[0])
        time.sleep(0.16)  # a beat already handed out may still go
        released = fake.count(ids[0])
        time.sleep(0.3)
        assert fake.count(ids[0]) == released
        assert beats.held() == ids[1:]
    finally:
        stop.set()


def test_first_heartbeat_comes_one_interval_after_hold_then_every_interval() -> None:
    fake = _SlowBeats(delay=0.0)
    stop = threading.Event()
    beats = Heartbeats(fake, interval=0.2, stop=stop)  # type: ignore[arg-type]
    beats.start()
    try:
        held_at = time.monotonic()
        beats.hold("exec_20250106_aaaaaaaa")
        deadline = time.monotonic() + 10
        while len(fake.beats) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        times = [at - held_at for _, at in fake.beats[:3]]
        assert len(times) == 3, times
        # Not at the hold but an interval after it, then on a fixed cadence: beat k is due k + 1
        # intervals after the hold. Lower bounds only: a loaded machine may send a beat late (and the
        # next one then comes sooner, to keep the cadence), never early.
        assert all(at >= 0.2 * (k + 1) for k, at in enumerate(times)), times
    finally:
        stop.set()


# -- artifacts ---------------------------------------------------------------------------------


def test_list_artifacts_filters_sorts_and_bounds(tmp_path: Path) -> None:
    old = tmp_path / "old.txt"
    old.write_text("x")
    os.utime(old, (time.time() - 10, time.time() - 10))
    since = run_clock_ns()
    for rel in ("z.txt", "a/b/c.bin", "a/.hidden", ".git/config", "a/.venv/lib/x.py", "n/.d/e"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("y")
    os.symlink(tmp_path / "z.txt", tmp_path / "link")
    os.symlink(tmp_path / "a", tmp_path / "dirlink")
    os.mkfifo(tmp_path / "fifo")
    assert list_artifacts(str(tmp_path), since) == ["a/.hidden", "a/b/c.bin", "z.txt"]
    assert list_artifacts(str(tmp_path), since, limit=2) == ["a/.hidden", "a/b/c.bin"]
    assert list_artifacts(str(tmp_path / "missing"), since) == []


def test_list_artifacts_caps_at_a_thousand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert artifacts.MAX_ARTIFACTS == 1000
    monkeypatch.setattr(artifacts, "MAX_ARTIFACTS", 20)
    since = run_clock_ns()
    for i in range(25):
        (tmp_path / f"f{i:02d}").write_bytes(b"")
    listed = list_artifacts(str(tmp_path), since)
    assert listed == [f"f{i:02d}" for i in range(20)]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_artifact_walk_holds_one_directory_open_and_closes_it_when_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wide tree cannot run the executor out of descriptors, and a walk cut short (MAX_SCANNED) or
    abandoned by its caller leaves none open. The workspace itself may be a symlink."""
    workspace = tmp_path / "real"
    since = run_clock_ns()
    for i in range(200):
        (workspace / f"d{i:03d}" / "sub").mkdir(parents=True)
        (workspace / f"d{i:03d}" / "sub" / "f").write_text("y")
    (tmp_path / "ws").symlink_to(workspace)
    before = _open_fds()
    peak = 0
    for _path, _st in artifacts._regular_files(str(tmp_path / "ws"), skip_dot_dirs=True):
        peak = max(peak, _open_fds() - before)
    assert peak <= 3  # the workspace's, the directory read, scandir's own copy of it
    assert _open_fds() == before
    assert len(list_artifacts(str(tmp_path / "ws"), since)) == 200
    walk = artifacts._regular_files(str(workspace), skip_dot_dirs=True)
    next(walk)
    walk.close()  # abandoned by its caller
    assert _open_fds() == before
    monkeypatch.setattr(artifacts, "MAX_SCANNED", 50)
    assert len(list_artifacts(str(workspace), since)) < 50  # cut
    assert _open_fds() == before


# -- advertised executor URL -------------------------------------------------------------------


def _cfg(listen: str = "tcp:0.0.0.0:8080", **env: str) -> Config:
    return load_config(
        {
            "SANDBOXCP_SESSION_ID": "s",
            "SANDBOXCP_CALLBACK_URL": "http://cp",
            "SANDBOXCP_LISTEN": listen,
            **env,
        }
    )


def _task(*ips: str) -> dict[str, object]:
    networks = [{"NetworkMode": "awsvpc", "IPv4Addresses": list(ips)}] if ips else []
    return {"Cluster": "c", "Containers": [{"Name": "sandbox", "Networks": networks}]}


def test_advertised_url_sources_in_order() -> None:
    with FakeTaskMetadata(_task("10.1.2.3", "10.1.2.4")) as meta:
        ecs = {"ECS_CONTAINER_METADATA_URI_V4": meta.url}
        assert advertised_url(_cfg(**ecs), 8080) == "http://10.1.2.3:8080"
        assert meta.requests == ["/v4/task-abc/task"]
        pod = {"POD_IP": "10.9.8.7", **ecs}
        assert advertised_url(_cfg(**pod), 8081) == "http://10.9.8.7:8081"
        assert advertised_url(_cfg(POD_IP="fd00::5"), 8080) == "http://[fd00::5]:8080"
        explicit = {"SANDBOXCP_ADVERTISE_URL": "https://sbx.example:443", **pod}
        assert advertised_url(_cfg(**explicit), 8080) == "https://sbx.example:443"
        # A unix socket is reached through the mount, never a URL; nor is a listener without a port.
        assert advertised_url(_cfg("unix:/run/x.sock", **explicit), None) is None
        assert advertised_url(_cfg(), 8080) is None
        assert len(meta.requests) == 1


def test_advertised_url_without_a_usable_ecs_answer_is_omitted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(advertise, "ECS_RETRY_S", 0.05)
    with FakeTaskMetadata(_task()) as meta:  # no address: a well-formed answer, not retried
        assert advertised_url(_cfg(ECS_CONTAINER_METADATA_URI_V4=meta.url), 8080) is None
        assert len(meta.requests) == 1
        meta.status = 500  # retried a few times, then given up on
        started = time.monotonic()
        assert advertised_url(_cfg(ECS_CONTAINER_METADATA_URI_V4=meta.url), 8080) is None
        assert len(meta.requests) == 4
        assert time.monotonic() - started < 1
    bad = _cfg(ECS_CONTAINER_METADATA_URI_V4="unix:///nonexistent/metadata.sock")
    stop = threading.Event()
    stop.set()  # shutting down: no retry wait
    assert advertised_url(bad, 8080, stop) is None


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


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_the_listening_socket_takes_a_burst_of_connections_before_any_is_accepted(
    kind: str, tmp_path: Path
) -> None:
    """A unix socket refuses a connect beyond its backlog at once (EAGAIN): a burst of execute-syncs to an
    executor busy elsewhere must queue, not fail as "unreachable" (socketserver's default backlog is 5)."""
    import socket

    from sandbox_executor.server import open_listener

    spec = (
        ListenSpec("unix", path=str(tmp_path / "e.sock"))
        if kind == "unix"
        else ListenSpec("tcp", "127.0.0.1")
    )
    listener = open_listener(spec)  # nobody accepts: every connect waits in the backlog
    clients = []
    try:
        for _ in range(32):
            c = socket.socket(listener.family, socket.SOCK_STREAM)
            c.setblocking(False)  # as a client with a timeout connects: EAGAIN is not waited for
            clients.append(c)
            err = c.connect_ex(listener.getsockname())
            assert err in (0, errno.EINPROGRESS), os.strerror(err)
    finally:
        for c in clients:
            c.close()
        listener.close()
