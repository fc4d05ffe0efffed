"""The interactive features' new ways in (live output callbacks, code contexts, background processes),
attacked from inside real sandboxes on both local runtimes. Each attack goes through the public API:

- a sandbox cannot write live output into another session's execution or process, nor report artifacts
  for it (the internal callbacks need that session's callback token, which no user code can read);
- nothing in a sandbox reaches its executor's context and process routes without the executor key;
- another tenant's contexts and processes are invisible (404) and cannot be driven;
- a background process that daemonizes and ignores signals still ends with its session.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import wait_for
from tests.security.conftest import UNIX_POST, Tenants

pytestmark = pytest.mark.e2e

FORGE_OUTPUT = (
    UNIX_POST
    + r"""

def handler(e):
    chunk = {"seq": 1, "stream": "stdout", "data": "FORGED\n", "at": "2026-11-30T00:00:00Z"}
    log = {}
    for token in ("", "cb_" + e["victim_sid"] + ".guess", e["own_sid"]):
        auth = {"Authorization": "Bearer " + token}
        log["exec " + token] = post("/run/controlplane.sock", f"/internal/executions/{e['eid']}/output",
                                    {"chunks": [chunk]}, auth)
        log["proc " + token] = post("/run/controlplane.sock", f"/internal/processes/{e['pid']}/output",
                                    {"chunks": [chunk], "exit": {"exit_code": 0, "signal": None,
                                                                 "ended_at": "2026-11-30T00:00:00Z"}}, auth)
        forged = {"artifacts": [{"path": "FORGED.txt", "size": 1, "mime_type": "text/plain"}]}
        log["exec-artifacts " + token] = post("/run/controlplane.sock",
                                              f"/internal/executions/{e['eid']}/artifacts", forged, auth)
    for key in ("", "0" * 64):
        auth = {"Authorization": "Bearer " + key}
        log["ctx " + key] = post("/run/sandbox/executor.sock", "/contexts",
                                 {"context_id": "ctx-evil", "language": "python"}, auth)
        log["proc-start " + key] = post("/run/sandbox/executor.sock", "/processes",
                                        {"process_id": "proc-evil", "cmd": "id"}, auth)
    return log
"""
)


def _victim_stream(t: Tenants, eid: str) -> str:
    page = t.victim.get(f"/executions/{eid}/output", params={"after": 0}).json()
    return "".join(chunk["data"] for chunk in page["chunks"])


def test_a_sandbox_cannot_write_another_sessions_live_output(tenants: Tenants) -> None:
    t = tenants
    slow = "import time\ndef handler(e):\n    print('victim line', flush=True)\n    time.sleep(4)\n"
    eid = t.victim.post(
        f"/sessions/{t.victim_sid}/execute", json={"code": slow, "language": "python"}
    ).json()["execution_id"]
    proc = t.victim.post(f"/sessions/{t.victim_sid}/processes", json={"cmd": "echo victim; sleep 120"})
    assert proc.status_code == 201, proc.text
    pid = proc.json()["process_id"]
    event = {"victim_sid": t.victim_sid, "own_sid": t.attacker_sid, "eid": eid, "pid": pid}
    status, result = t.attack(FORGE_OUTPUT, event=event)
    assert status == "completed", result
    log = result["return_value"]
    assert all(v not in (200, 201, 202) for v in log.values()), log
    assert {log[k] for k in log if k.startswith(("exec", "proc "))} <= {401, 403}, log
    assert any(k.startswith("exec-artifacts") for k in log), log
    if t.runtime == "docker":  # the executor's socket is in the sandbox there, and refuses without the key
        assert {log[k] for k in log if k.startswith(("ctx", "proc-start"))} == {403}, log
    assert wait_for(lambda: "victim line" in _victim_stream(t, eid), timeout=20)
    assert "FORGED" not in _victim_stream(t, eid)
    assert wait_for(lambda: t.victim.get(f"/executions/{eid}/status").json()["status"] == "completed", 20)
    assert "FORGED" not in str(t.victim.get(f"/executions/{eid}/result").json()["artifacts"])
    page = t.victim.get(f"/sessions/{t.victim_sid}/processes/{pid}/output", params={"wait": 5}).json()
    assert "FORGED" not in str(page)
    assert t.victim.get(f"/sessions/{t.victim_sid}/processes/{pid}").json()["status"] == "running"
    t.victim.post(f"/sessions/{t.victim_sid}/processes/{pid}/signal", json={"signal": "SIGKILL"})


def test_another_tenants_contexts_and_processes_are_invisible(tenants: Tenants) -> None:
    t = tenants
    cid = t.victim.post(f"/sessions/{t.victim_sid}/contexts", json={"language": "python"}).json()[
        "context_id"
    ]
    seeded = t.victim.post(
        f"/sessions/{t.victim_sid}/execute-sync",
        json={"code": "secret = 'victim-state'", "language": "python", "context_id": cid},
    )
    assert seeded.status_code == 200, seeded.text
    pid = t.victim.post(f"/sessions/{t.victim_sid}/processes", json={"cmd": "sleep 60"}).json()["process_id"]
    a, own = t.attacker, t.attacker_sid
    attempts = [
        a.get(f"/sessions/{t.victim_sid}/contexts/{cid}"),
        a.post(f"/sessions/{t.victim_sid}/contexts/{cid}/restart"),
        a.delete(f"/sessions/{t.victim_sid}/contexts/{cid}"),
        a.get(f"/sessions/{own}/contexts/{cid}"),
        a.post(f"/sessions/{own}/execute", json={"code": "secret", "language": "python", "context_id": cid}),
        a.get(f"/sessions/{t.victim_sid}/processes/{pid}"),
        a.get(f"/sessions/{own}/processes/{pid}"),
        a.post(f"/sessions/{own}/processes/{pid}/stdin", json={"data": "x"}),
        a.post(f"/sessions/{t.victim_sid}/processes/{pid}/signal", json={"signal": "SIGKILL"}),
        a.get(f"/sessions/{t.victim_sid}/processes/{pid}/output"),
    ]
    assert [r.status_code for r in attempts] == [404] * len(attempts), [r.text for r in attempts]
    for r in attempts:
        assert set(r.json()) >= {"error_code", "description", "error_detail", "solution", "request_id"}
    still = t.victim.post(
        f"/sessions/{t.victim_sid}/execute-sync",
        json={"code": "secret", "language": "python", "context_id": cid},
    )
    assert still.json()["return_value"] == "'victim-state'", still.text
    assert t.victim.get(f"/sessions/{t.victim_sid}/processes/{pid}").json()["status"] == "running"


# Leaves its group and session, ignores the signals a polite shutdown sends, detaches from every pipe.
DAEMON = (
    "setsid bash -c 'trap \"\" TERM HUP INT; exec -a {marker} sleep 600' </dev/null >/dev/null 2>&1 & "
    "sleep 600"
)


def test_a_daemonized_process_ignoring_signals_ends_with_its_session(tenants: Tenants) -> None:
    t = tenants
    created = t.attacker.post("/sessions", json={"template_id": "python-basic", "timeout": 600})
    sid = created.json()["session_id"]
    assert wait_for(lambda: t.attacker.get(f"/sessions/{sid}").json()["status"] == "running", timeout=60)
    marker = f"escapee-{secrets.token_hex(4)}"
    started = t.attacker.post(f"/sessions/{sid}/processes", json={"cmd": DAEMON.format(marker=marker)})
    assert started.status_code == 201, started.text
    assert wait_for(lambda: _host_has(marker), timeout=15), "the daemon never started"
    assert t.attacker.delete(f"/sessions/{sid}").status_code in (200, 202, 204)
    deadline = time.monotonic() + 30
    while _host_has(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _host_has(marker), "a process of the ended session is still running on the host"


def _host_has(marker: str) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
                if state not in (b"Z", b"X"):
                    return True
        except OSError:
            continue
    return False


ASK_LISTINGS = (
    UNIX_POST
    + r"""

def handler(e):
    log = {}
    asks = {  # the whole listing, the bare listing, and GETs of named paths (one outside the prefix)
        "all": {}, "bare": {"urls": False},
        "paths": {"paths": ["secret.txt", "../" + e["victim_sid"] + "/secret.txt"]},
    }
    for sid in (e["victim_sid"], e["own_sid"]):
        for token in ("", "cb_" + e["victim_sid"] + ".guess", "cb_" + sid + ".guess"):
            auth = {"Authorization": "Bearer " + token}
            url = f"/internal/sessions/{sid}/workspace-urls"
            for name, ask in asks.items():
                log[f"{sid} {token} {name}"] = post("/run/controlplane.sock", url, ask, auth)
    for key in ("", "0" * 64):  # the executor's own /execute, asked to answer with a result (wait_ms)
        execution = {"execution_id": "exec_20261130_evil0001", "code": "print(1)", "language": "python",
                     "wait_ms": 1000}
        log["execute " + key] = post("/run/sandbox/executor.sock", "/execute", execution,
                                     {"Authorization": "Bearer " + key})
    return log
"""
)


def test_a_sandbox_gets_no_workspace_listing_and_no_execute_answer(tenants: Tenants) -> None:
    """The listing an executor asks for, and the presigned GETs of the paths it names, need the session's
    callback token, which user code does not have (promise 3): refused before any body is read; the
    executor's /execute, which may answer with a result, needs the executor key."""
    t = tenants
    up = t.victim.post(
        f"/sessions/{t.victim_sid}/files/upload",
        files={"file": ("f", b"secret")},
        data={"path": "secret.txt"},
    )
    assert up.status_code == 200, up.text
    event = {"victim_sid": t.victim_sid, "own_sid": t.attacker_sid}
    status, result = t.attack(ASK_LISTINGS, event=event)
    assert status == "completed", result
    log = result["return_value"]
    assert {v for k, v in log.items() if not k.startswith("execute")} <= {401, 403}, log
    if t.runtime == "docker":  # the executor's socket is in the sandbox there, and refuses without the key
        assert {v for k, v in log.items() if k.startswith("execute")} == {403}, log
    else:
        assert all(v not in (200, 202) for k, v in log.items() if k.startswith("execute")), log


BEAT = (
    UNIX_POST
    + r"""

def handler(e):
    log = {}
    for execution_id in (e["victim_execution"], "exec_20261201_guessed1"):
        for token in ("", "cb_" + e["victim_sid"] + ".guess", "cb_" + e["own_sid"] + ".guess"):
            url = f"/internal/executions/{execution_id}/heartbeat"
            auth = {"Authorization": "Bearer " + token}
            log[execution_id + " " + token] = post("/run/controlplane.sock", url, {}, auth)
    return log
"""
)


def test_a_sandbox_cannot_beat_for_another_execution_to_keep_its_session_alive(tenants: Tenants) -> None:
    """A heartbeat writes the execution and its session (it keeps the session from the idle reaper): from
    inside a sandbox, without the callback token user code never has (promise 3), every beat is refused,
    for another tenant's execution as for a guessed one, and the victim's execution is unchanged."""
    t = tenants
    ran = t.victim.post(
        f"/sessions/{t.victim_sid}/execute-sync",
        json={"code": "def handler(e):\n    return 1", "language": "python"},
    )
    assert ran.status_code == 200, ran.text
    victim_execution = ran.json()["execution_id"]
    event = {"victim_execution": victim_execution, "victim_sid": t.victim_sid, "own_sid": t.attacker_sid}
    status, result = t.attack(BEAT, event=event)
    assert status == "completed", result
    assert set(result["return_value"].values()) <= {401, 403}, result["return_value"]
    assert t.victim.get(f"/executions/{victim_execution}").json()["status"] == "completed"


CLAIM_FEATURES = (
    UNIX_POST
    + r"""

def handler(e):
    log = {}
    reports = {  # a feature that would change the victim's plans, an unknown one, too many
        "presign": {"container_id": "evil", "features": ["workspace-presign-on-demand"]},
        "unknown": {"container_id": "evil", "features": ["root-shell"]},
        "flood": {"container_id": "evil", "features": ["x" * 64] * 17},
    }
    for sid in (e["victim_sid"], e["own_sid"]):
        for token in ("", "cb_" + e["victim_sid"] + ".guess", "cb_" + sid + ".guess"):
            auth = {"Authorization": "Bearer " + token}
            for name, report in reports.items():
                url = f"/internal/sessions/{sid}/container_ready"
                log[f"{sid} {token} {name}"] = post("/run/controlplane.sock", url, report, auth)
    return log
"""
)


def test_a_sandbox_cannot_announce_executor_features_for_any_session(tenants: Tenants) -> None:
    """container_ready's `features` decide whether a session's plans carry presigned GETs. From inside a
    sandbox, without the callback token user code never has (promise 3), every report is refused, for
    the victim's session as for its own, and the victim's runs still get their workspace files."""
    t = tenants
    status, result = t.attack(CLAIM_FEATURES, event={"victim_sid": t.victim_sid, "own_sid": t.attacker_sid})
    assert status == "completed", result
    assert set(result["return_value"].values()) <= {401, 403}, result["return_value"]
    up = t.victim.post(
        f"/sessions/{t.victim_sid}/files/upload", files={"file": ("f", b"after")}, data={"path": "after.txt"}
    )
    assert up.status_code == 200, up.text
    reader = "def handler(e):\n    return open('/workspace/after.txt').read()"
    ran = t.victim.post(f"/sessions/{t.victim_sid}/execute-sync", json={"code": reader, "language": "python"})
    assert ran.status_code == 200 and ran.json()["return_value"] == "after", ran.text
