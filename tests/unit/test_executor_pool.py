"""sandbox_executor warm-pool mode: an agent started without a session (SANDBOXCP_POOL_ID) waits,
unbound, for ``POST /bind``; then announces itself and serves the bound session, also after the
supervisor restarts it (the binding is kept in memory shared by the supervisor and its agents, in no
file). A cold executor started with only its session id waits for a binding to that session."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from sandbox_executor.config import ConfigError, load_config
from sandbox_executor.http_client import request
from sandbox_executor.identity import Binding, BindingCell, parse_bind_request
from sandbox_executor.validation import ValidationError
from tests.unit.executor_helpers import SESSION_ID, TOKEN, ExecutorProcess, FakeControlPlane, alive

POOL_ID = "pool_0123456789abcdef"
POOL_TOKEN = "ptok-" + "b0und" * 5
OTHER_SESSION = "sess_ffffffffffffffff"
ENV_CODE = (
    "import os\n"
    "def handler(event):\n"
    "    return {'X': os.environ.get('X'), 'HOME': os.environ.get('HOME'),\n"
    "            'secret': [k for k, v in os.environ.items() if " + repr(POOL_TOKEN) + " in v],\n"
    "            'sandboxcp': [k for k in os.environ if k.startswith('SANDBOXCP_')]}\n"
)


def _bind_body(**overrides: Any) -> dict[str, Any]:
    return {"session_id": SESSION_ID, "callback_token": POOL_TOKEN, "env": {"X": "from-bind"}, **overrides}


def _wait_listening(ex: ExecutorProcess, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            health = ex.get("/health")
            if health.status == 200:
                return dict(health.json())
        except OSError:
            pass
        assert time.monotonic() < deadline, "the pooled agent never listened"
        time.sleep(0.02)


def test_pooled_agent_binds_runs_and_comes_back_bound_after_a_restart() -> None:
    with FakeControlPlane() as cp:
        ex = ExecutorProcess(cp, pool_id=POOL_ID)
        try:
            health = _wait_listening(ex)
            assert health["status"] == "healthy"
            assert health["bound"] is False and health["pool_id"] == POOL_ID
            unbound = ex.post({"execution_id": "exec_20250106_aaaaaaaa", "code": "x", "language": "python"})
            assert unbound.status == 409 and unbound.json()["error_code"] == "Executor.NotBound"
            time.sleep(0.3)
            assert cp.snapshot() == []  # no container_ready (nor anything else) while unbound

            bound = ex.bind(_bind_body())
            assert bound.status == 200 and bound.json() == {"status": "bound", "session_id": SESSION_ID}
            ex.wait_ready()
            (ready,) = cp.calls_to("/container_ready")
            assert ready.path == f"/cp/internal/sessions/{SESSION_ID}/container_ready"
            assert ready.headers["authorization"] == f"Bearer {POOL_TOKEN}"
            assert ready.json["container_id"] == "ctr-test"
            assert ex.get("/health").json()["bound"] is True

            assert sorted(os.listdir(ex.dir)) == ["executor.log", "executor.sock", "workspace"]  # no file

            eid = ex.submit(ENV_CODE)
            result = ex.cp.result(eid)
            assert result["return_value"] == {
                "X": "from-bind",
                "HOME": str(ex.workspace),
                "secret": [],
                "sandboxcp": [],
            }
            (posted,) = [c for c in cp.calls_to("/result") if f"/{eid}/" in c.path]
            assert posted.headers["authorization"] == f"Bearer {POOL_TOKEN}"
            assert posted.headers["idempotency-key"] == eid

            again = ex.bind(_bind_body())
            assert again.status == 200 and again.json()["session_id"] == SESSION_ID
            retoken = ex.bind(_bind_body(callback_token="cb_chosen_by_user_code"))
            assert retoken.status == 409 and retoken.json()["error_code"] == "Executor.AlreadyBound"
            ex.token = POOL_TOKEN  # the refused bind changed nothing
            other = ex.bind(_bind_body(session_id=OTHER_SESSION))
            assert other.status == 409 and other.json()["error_code"] == "Executor.AlreadyBound"
            time.sleep(0.2)
            assert len(cp.calls_to("/container_ready")) == 1

            first = ex.agent_pid()
            os.kill(first, signal.SIGKILL)
            ex.agent_pid(other_than=first)
            ex.wait_ready(count=2)
            assert not alive(first)
            second_ready = cp.calls_to("/container_ready")[1]
            assert second_ready.path == f"/cp/internal/sessions/{SESSION_ID}/container_ready"
            assert second_ready.headers["authorization"] == f"Bearer {POOL_TOKEN}"
            health = ex.get("/health").json()
            assert health["bound"] is True and health["pool_id"] == POOL_ID
            assert ex.run(ENV_CODE)["return_value"]["X"] == "from-bind"
            assert ex.bind(_bind_body(session_id=OTHER_SESSION)).status == 409
        finally:
            log = ex.log_text()
            assert ex.terminate() == 0
        assert POOL_TOKEN not in log, "the callback token leaked into the executor's log"
        (exited,) = cp.calls_to("/container_exited")
        assert exited.headers["authorization"] == f"Bearer {POOL_TOKEN}"


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"callback_token": "t"},
        _bind_body(session_id="sess_short"),
        _bind_body(session_id="sess_ABCDEF0123456789"),
        _bind_body(callback_token=""),
        _bind_body(callback_token=7),
        _bind_body(env=["X=1"]),
        _bind_body(env={"1X": "v"}),
        _bind_body(env={"A-B": "v"}),
        _bind_body(env={"SANDBOXCP_SESSION_ID": "v"}),
        _bind_body(env={"AWS_SECRET_ACCESS_KEY": "v"}),
        _bind_body(env={"X": 1}),
        _bind_body(env={"X": "a\0b"}),
    ],
)
def test_bad_bind_bodies_are_refused(body: Any) -> None:
    with pytest.raises(ValidationError):
        parse_bind_request(body)


def test_bad_bind_requests_get_400_and_leave_the_agent_unbound() -> None:
    with FakeControlPlane() as cp:
        ex = ExecutorProcess(cp, module="sandbox_executor.app", pool_id=POOL_ID)
        try:
            _wait_listening(ex)
            for body in ({"session_id": SESSION_ID}, _bind_body(env={"AWS_REGION": "x"})):
                resp = ex.bind(body)
                assert resp.status == 400 and resp.json()["error_code"] == "Executor.ValidationError"
            raw = request(
                ex.endpoint, "POST", "/bind", body=b"{not json", headers={"Content-Type": "application/json"}
            )
            assert raw.status == 400 and "not valid JSON" in raw.json()["error_detail"]
            assert ex.get("/health").json()["bound"] is False
            assert sorted(os.listdir(ex.dir)) == ["executor.log", "executor.sock", "workspace"]
            assert cp.snapshot() == []
        finally:
            assert ex.terminate() == 0
        assert cp.snapshot() == []  # never bound: no container_exited either


def test_bind_on_an_agent_started_for_its_session_is_a_conflict() -> None:
    with FakeControlPlane() as cp:
        ex = ExecutorProcess(cp, module="sandbox_executor.app")
        try:
            ex.wait_ready()
            health = ex.get("/health").json()
            assert health["bound"] is True and "pool_id" not in health
            for session in (SESSION_ID, OTHER_SESSION):
                resp = ex.bind(_bind_body(session_id=session))
                assert resp.status == 409 and resp.json()["error_code"] == "Executor.AlreadyBound"
            assert len(cp.calls_to("/container_ready")) == 1
            assert cp.calls_to("/container_ready")[0].headers["authorization"] == f"Bearer {TOKEN}"
        finally:
            assert ex.terminate() == 0


def test_pool_config() -> None:
    base = {"SANDBOXCP_CALLBACK_URL": "http://cp"}
    cfg = load_config({**base, "SANDBOXCP_POOL_ID": POOL_ID})
    assert (cfg.pool_id, cfg.session_id, cfg.callback_token) == (POOL_ID, "", "")
    assert load_config({**base, "SANDBOXCP_SESSION_ID": "s"}).pool_id is None
    with pytest.raises(ConfigError, match="SANDBOXCP_SESSION_ID is required"):
        load_config(base)
    with pytest.raises(ConfigError, match="SANDBOXCP_POOL_ID"):
        load_config({**base, "SANDBOXCP_POOL_ID": "pool_x"})
    assert load_config({**base, "SANDBOXCP_POOL_ID": POOL_ID, "SANDBOXCP_LISTEN": "fd:3"}).listen.fd == 3
    for bad in ("fd:2", "fd:x", "fd:"):
        with pytest.raises(ConfigError, match="SANDBOXCP_LISTEN"):
            load_config({**base, "SANDBOXCP_POOL_ID": POOL_ID, "SANDBOXCP_LISTEN": bad})


def test_binding_cell_is_shared_with_forked_children_and_holds_no_file() -> None:
    cell = BindingCell()
    assert cell.load() is None
    binding = Binding(SESSION_ID, POOL_TOKEN, {"X": "1"})
    pid = os.fork()
    if pid == 0:  # a child saves, as an agent does on POST /bind
        cell.save(binding)
        os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert cell.load() == binding
    with open(f"/proc/{os.getpid()}/maps") as f:
        assert ".binding" not in f.read()  # the cell is an anonymous mapping, not a file


def test_cold_agent_waits_for_a_binding_to_its_own_session() -> None:
    """Started with only SANDBOXCP_SESSION_ID (no token in its environment), the agent waits for the
    control plane's POST /bind of that session; a binding to another session is refused."""
    with FakeControlPlane() as cp:
        ex = ExecutorProcess(cp, SANDBOXCP_CALLBACK_TOKEN="")
        try:
            assert _wait_listening(ex)["bound"] is False
            other = ex.bind(_bind_body(session_id=OTHER_SESSION))
            assert other.status == 409 and other.json()["error_code"] == "Executor.AlreadyBound"
            assert ex.bind(_bind_body()).status == 200
            ex.wait_ready()
            assert cp.calls_to("/container_ready")[0].headers["authorization"] == f"Bearer {POOL_TOKEN}"
            assert ex.run(ENV_CODE)["return_value"]["secret"] == []
        finally:
            assert ex.terminate() == 0
