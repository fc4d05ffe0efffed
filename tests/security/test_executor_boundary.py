"""The executor's side of the trust boundary, attacked from inside real sandboxes on both local runtimes.

Hostile code runs as the executor's uid, leaves background processes behind and races the file system.
Each test performs the attack through the public API and asserts that it fails and that the victim
(another tenant's session) is unchanged:
- the executor's socket cannot be swapped, replaced or taken over (the race ran 10 of 25 submits into the
  victim's sandbox before the fix);
- a leftover process cannot forge results, nor submit to the executor itself;
- the callback token is nowhere user code can read (environments, command lines, memory, fds, files);
- the executor's log cannot be written by user code;
- no nested user namespaces, no keyctl/bpf/mount/ptrace;
- /workspace has a real disk limit.
"""

from __future__ import annotations

import glob
import re
import time
from typing import Any

import pytest

from tests.e2e.conftest import callback_token_of
from tests.integration.conftest import run_code
from tests.security.conftest import UNIX_POST, Tenants

pytestmark = pytest.mark.e2e

# Detach a background process that outlives the execution (new session, stdio on /dev/null).
BACKGROUND = """
import os
def background(source, **names):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            try:
                exec(source, {"__name__": "background", **names})
            finally:
                os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
"""


def _marker(t: Tenants) -> None:
    """Each session's /workspace says whose it is, so a run that lands in the wrong sandbox shows."""
    for client, sid, name in ((t.attacker, t.attacker_sid, "attacker"), (t.victim, t.victim_sid, "victim")):
        code = f"def handler(e):\n    open('/workspace/whoami', 'w').write({name!r})\n    return 'ok'\n"
        assert run_code(client, sid, code)[0] == "completed"


def _victim_executions(t: Tenants) -> int:
    return len(t.victim.get(f"/sessions/{t.victim_sid}/executions").json()["executions"])


def _victim_socket(t: Tenants) -> str:
    """Where the control plane reaches the victim's executor (a host path): the attacker's best guess."""
    pattern = "*/{}.sock" if t.runtime == "process" else "*/{}/executor.sock"
    found = glob.glob("/run/sandboxcp/" + pattern.format(t.victim_sid))
    assert found, "the victim's executor socket is not where the runtime keeps it"
    return found[0]


SWAPPER = """
import os, socket, time, json
paths = ["/run/sandbox/executor.sock", "/run/sandbox/.binding", victim]
stats = {"attempts": 0, "succeeded": []}
deadline = time.time() + 30
while time.time() < deadline and not os.path.exists("/tmp/stop-swapper"):
    for p in paths[:2] + [os.path.join("/run/sandbox", "x")]:
        for op in ("rename", "symlink", "unlink", "bind"):
            stats["attempts"] += 1
            try:
                if op == "rename":
                    os.rename(p, p + ".real")
                elif op == "symlink":
                    os.symlink(victim, p)
                elif op == "unlink":
                    os.unlink(p)
                else:
                    s = socket.socket(socket.AF_UNIX)
                    s.bind(p)
                    s.listen(8)
                stats["succeeded"].append(op + " " + p)
            except OSError:
                pass
    time.sleep(0.001)
    with open("/tmp/swapper.json.tmp", "w") as f:
        json.dump(stats, f)
    os.replace("/tmp/swapper.json.tmp", "/tmp/swapper.json")
"""


def test_a_swapper_cannot_redirect_executions_into_another_sandbox(tenants: Tenants) -> None:
    _marker(tenants)
    before = _victim_executions(tenants)
    start = BACKGROUND + f"def handler(e):\n    background({SWAPPER!r}, victim={_victim_socket(tenants)!r})\n"
    assert tenants.attack(start)[0] == "completed"
    whoami = "def handler(e):\n    return open('/workspace/whoami').read()\n"
    answers = [tenants.attack(whoami) for _ in range(25)]
    assert [(status, r.get("return_value")) for status, r in answers] == [("completed", "attacker")] * 25
    stop = (
        "import json, os, time\n"
        "def handler(e):\n"
        "    open('/tmp/stop-swapper', 'w').close()\n"
        "    time.sleep(0.2)\n"
        "    return json.load(open('/tmp/swapper.json'))\n"
    )
    status, result = tenants.attack(stop)
    assert status == "completed", result
    stats = result["return_value"]
    assert stats["attempts"] > 1000 and stats["succeeded"] == [], stats
    assert _victim_executions(tenants) == before
    victim = run_code(tenants.victim, tenants.victim_sid, whoami)
    assert victim[0] == "completed" and victim[1]["return_value"] == "victim"


FORGER = UNIX_POST + """
import os, time

seen, log = set(), []
deadline = time.time() + 60
while time.time() < deadline and not os.path.exists("/tmp/stop-forger"):
    try:
        targets = open("/tmp/targets").read().split()
    except OSError:
        targets = []
    for eid in targets:
        if eid in seen:
            continue
        seen.add(eid)
        forged = {"status": "success", "stdout": "FORGED", "stderr": "", "return_value": "FORGED",
                  "exit_code": 0, "duration_ms": 1}
        for token in ("", "cb_" + sid + ".guess", sid):
            log.append(post("/run/controlplane.sock", f"/internal/executions/{eid}/result", forged,
                            {"Authorization": "Bearer " + token, "Idempotency-Key": eid}))
        # Straight to the executor: run our code under the victim execution's id.
        run = {"execution_id": eid, "code": "def handler(e):\\n    return 'FORGED'", "language": "python"}
        for key in ("", "0" * 64):
            auth = {"Authorization": "Bearer " + key}
            log.append(post("/run/sandbox/executor.sock", "/execute", run, auth))
        # Take the executor's address: listen where the control plane connects.
        try:
            s = socket.socket(socket.AF_UNIX)
            s.bind("/run/sandbox/executor.sock")
            log.append("bound")
        except OSError as exc:
            log.append(type(exc).__name__)
    with open("/tmp/forger.tmp", "w") as f:
        json.dump(log, f)
    os.replace("/tmp/forger.tmp", "/tmp/forger.json")
    time.sleep(0.01)
"""


def test_a_leftover_process_can_neither_forge_results_nor_take_over_the_executor(tenants: Tenants) -> None:
    start = BACKGROUND + f"def handler(e):\n    background({FORGER!r}, sid={tenants.attacker_sid!r})\n"
    assert tenants.attack(start)[0] == "completed"
    genuine = (
        "import time\n"
        "def handler(e):\n"
        "    with open('/tmp/targets', 'a') as f:\n"
        "        f.write(e['eid'] + ' ')\n"
        "    time.sleep(0.5)  # the forger races this run's own result\n"
        "    print('genuine')\n"
        "    return 'genuine'\n"
    )
    try:
        for _ in range(5):
            # The execution id is only known once submitted: tell the run its own id through a file first.
            submitted = tenants.attacker.post(
                f"/sessions/{tenants.attacker_sid}/execute", json={"code": "x = 1", "language": "python"}
            )
            assert submitted.status_code == 200, submitted.text
            eid = submitted.json()["execution_id"]
            status, result = tenants.attack(genuine, event={"eid": eid})
            assert status == "completed", result
            assert result["return_value"] == "genuine" and result["stdout"] == "genuine\n", result
            first = tenants.attacker.get(f"/executions/{eid}/result").json()
            assert "FORGED" not in str(first), first
    finally:  # the forger must not outlive this test, whatever happened (later tests probe every process)
        tenants.attack("def handler(e):\n    open('/tmp/stop-forger', 'w').close()\n")
    stop = (
        "import json, time\n"
        "def handler(e):\n"
        "    open('/tmp/stop-forger', 'w').close()\n"
        "    time.sleep(0.1)\n"
        "    return json.load(open('/tmp/forger.json'))\n"
    )
    status, result = tenants.attack(stop)
    log = result["return_value"]
    assert status == "completed" and log, result
    assert "bound" not in log and 200 not in log and 202 not in log, log
    assert 401 in log  # the control plane refused every guessed token
    if tenants.runtime == "docker":
        assert 403 in log  # the executor's socket is reachable there, but refuses without the executor key


TOKEN_HUNT = r"""
import os, re, sys
PATTERN = re.compile(rb"cb_sess_[a-z0-9]{16}\.[A-Za-z0-9_-]{20,}")
me = os.getpid()

def scan(data, where, found):
    for m in PATTERN.finditer(data):
        found.append((where, m.group().decode()))

def handler(event):
    found, readable_memory = [], []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == me:
            continue
        for name in ("environ", "cmdline"):
            try:
                scan(open(f"/proc/{pid}/{name}", "rb").read(), f"/proc/{pid}/{name}", found)
            except OSError:
                pass
        try:
            with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb") as mem:
                for line in maps:
                    a, b = (int(x, 16) for x in line.split()[0].split("-"))
                    try:
                        mem.seek(a)
                        scan(mem.read(min(b - a, 1 << 24)), f"/proc/{pid}/mem", found)
                        readable_memory.append(pid)
                    except (OSError, ValueError, OverflowError):
                        pass
        except OSError:
            pass
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:  # non-blocking: a pipe another process holds must not hang the hunt
                    f = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
                    try:
                        scan(os.read(f, 1 << 20), f"/proc/{pid}/fd/{fd}", found)
                    finally:
                        os.close(f)
                except OSError:
                    pass
        except OSError:
            pass
    # The interpreter's own installation is a read-only bind of public files (under /root on hosts whose
    # Python is pyenv's): walking its thousands of files costs seconds and cannot hold a launch's token.
    interpreter = os.path.realpath(sys.base_prefix)
    for top in ("/run", "/tmp", "/workspace", "/etc", "/opt", "/dev/shm", "/var", "/home", "/root"):
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(root, d)) != interpreter]
            for f in files:
                try:
                    scan(open(os.path.join(root, f), "rb").read(1 << 22), os.path.join(root, f), found)
                except OSError:
                    pass
    scan("\0".join(f"{k}={v}" for k, v in os.environ.items()).encode(), "own environment", found)
    return {"found": found, "readable_memory": sorted(set(readable_memory))}
"""


def test_user_code_cannot_read_the_callback_token(tenants: Tenants) -> None:
    token = callback_token_of(tenants.attacker_sid)  # root on the host can; the sandbox must not
    status, result = tenants.attack(TOKEN_HUNT)
    assert status == "completed", result
    hunt = result["return_value"]
    assert hunt["found"] == [], hunt["found"]
    assert token not in str(result)
    # The executor's processes (PID 1, the supervisor, and its agent) are not readable at all.
    assert "1" not in hunt["readable_memory"], hunt


LOG_PLANT = r"""
import os
def handler(event):
    me, opened = os.getpid(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == me:
            continue
        for fd in ("0", "1", "2"):
            path = f"/proc/{pid}/fd/{fd}"
            try:
                if os.readlink(path) == "/dev/null":  # a detached process's stdio: nothing to plant into
                    continue
            except OSError:
                continue
            for flags in (os.O_WRONLY | os.O_APPEND, os.O_WRONLY | os.O_TRUNC):
                try:
                    f = os.open(path, flags)
                    os.write(f, b"2026-01-01T00:00:00.000Z sandbox-executor PLANTED-LINE\n")
                    os.close(f)
                    opened.append(path)
                except OSError:
                    pass
    return opened
"""


def test_user_code_cannot_write_the_executor_log(tenants: Tenants) -> None:
    status, result = tenants.attack(LOG_PLANT)
    assert status == "completed" and result["return_value"] == [], result
    container = tenants.attacker.get(f"/sessions/{tenants.attacker_sid}").json()["container_id"]
    with tenants.stack.client() as admin:  # container logs are an operator's view
        logs = admin.get(f"/containers/{container}/logs", params={"tail": 1000})
    assert logs.status_code == 200, logs.text
    text = logs.text
    assert "execution_finished" in text  # the executor's own lines are there
    assert "PLANTED-LINE" not in text


SYSCALLS = r"""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def attempt(call, *args):
    rc = call(*args)
    return "ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
def handler(event):
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    out = {
        "unshare_user": attempt(libc.unshare, 0x10000000),
        "unshare_mount": attempt(libc.unshare, 0x00020000),
        "mount_tmpfs": attempt(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None),
        "keyctl": attempt(syscall, 250, 0, -3, 0),            # KEYCTL_GET_KEYRING_ID, session keyring
        "bpf": attempt(syscall, 321, 0, None, 0),              # BPF_MAP_CREATE with no attributes
        "ptrace_pid1": attempt(libc.ptrace, 16, 1, None, None),  # PTRACE_ATTACH to the supervisor
    }
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) not in (1, os.getpid()) and open(f"/proc/{pid}/comm").read().strip() == "sandbox-agent":
            out["ptrace_agent"] = attempt(libc.ptrace, 16, int(pid), None, None)
    return out
"""


def test_no_nested_user_namespace_and_no_dangerous_syscalls(tenants: Tenants) -> None:
    status, result = tenants.attack(SYSCALLS)
    assert status == "completed", result
    outcomes: dict[str, Any] = result["return_value"]
    assert "ptrace_agent" in outcomes, outcomes
    assert all(v in ("EPERM", "EACCES", "ENOSYS") for v in outcomes.values()), outcomes


FILL = r"""
import os
def handler(event):
    written, error = 0, None
    chunk = b"x" * (1 << 20)
    try:
        with open("/workspace/filler", "wb") as f:
            for _ in range(1300):
                f.write(chunk)
                written += 1
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        error = exc.errno
    os.unlink("/workspace/filler")
    return {"written_mb": written, "errno": error}
"""


def test_the_workspace_has_a_disk_limit(tenants: Tenants) -> None:
    """A session with disk 1Gi (python-basic's default) cannot write 1.3 GB: ENOSPC, not the host's disk,
    and the sandbox survives it (no OOM kill of the executor)."""
    started = time.monotonic()
    status, result = tenants.attack(FILL, timeout=180)
    assert status == "completed", result
    filled = result["return_value"]
    assert filled["errno"] == 28 and 900 <= filled["written_mb"] <= 1024, filled  # ENOSPC at ~1 GiB
    after = tenants.attack("def handler(e):\n    return 6 * 7\n")
    assert after[0] == "completed" and after[1]["return_value"] == 42
    assert time.monotonic() - started < 180


def test_the_executor_refuses_a_second_binding(tenants: Tenants) -> None:
    """Bound once by the control plane; code inside (docker: it can reach the socket) cannot rebind it to
    a token of its choosing."""
    code = r"""
import http.client, json, socket
class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect("/run/sandbox/executor.sock")
def handler(e):
    try:
        c = Unix("sandbox", timeout=5)
        c.request("POST", "/bind", json.dumps({"session_id": e["sid"], "callback_token": "cb_mine"}),
                  {"Content-Type": "application/json"})
        return c.getresponse().status
    except OSError as exc:
        return type(exc).__name__
"""
    status, result = tenants.attack(code, event={"sid": tenants.attacker_sid})
    assert status == "completed", result
    expected = 409 if tenants.runtime == "docker" else "FileNotFoundError"  # process: no socket inside at all
    assert result["return_value"] == expected
    assert re.fullmatch(r"cb_sess_[a-z0-9]{16}\..+", callback_token_of(tenants.attacker_sid))
    # Still bound with the control plane's token: a later run's result is accepted.
    after = tenants.attack("def handler(e):\n    return 6 * 7\n")
    assert after[0] == "completed" and after[1]["return_value"] == 42
