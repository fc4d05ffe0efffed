"""Attack: code in a sandbox drops `<module>.py` files into /workspace, the executor's working directory,
under the names of standard-library modules, then kills the executor's agent so that the supervisor starts
a new one, which imports what it needs. Were the working directory on the executor's sys.path (`python -m`
puts it first), the new agent, or any import the executor makes on first use, would run the attacker's
file next to the callback token. Each planted module records whether the process importing it is an
executor process (`python -m sandbox_executor`) and then hands over the real module, so nothing else breaks.
Promise 9 in docs/security.md; on both local runtimes (process: bubblewrap, docker)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import wait_for
from tests.security.conftest import Tenants

pytestmark = pytest.mark.e2e

# Modules an executor may import on first use (the planted module itself needs ctypes, importlib, os, sys).
SHADOWED = (
    "shutil", "selectors", "tempfile", "json", "subprocess", "signal", "mimetypes", "secrets",
    "hashlib", "base64", "uuid", "glob", "fnmatch", "queue", "email", "http", "urllib", "ssl",
    "socketserver", "html", "textwrap", "traceback", "inspect", "dataclasses", "typing", "copy",
    "heapq", "bisect", "random", "datetime", "calendar", "locale", "platform", "resource", "pwd", "grp",
    "fcntl", "select", "string", "contextlib", "functools", "threading", "concurrent", "zlib",
    "binascii", "hmac", "logging", "argparse", "shlex", "gzip", "zipfile", "tarfile", "csv", "decimal",
    "statistics", "weakref", "ast", "tokenize", "linecache", "warnings", "pkgutil", "runpy",
    "sysconfig", "stat", "errno",
)

PLANT = r'''
import os, sys
SHADOW = """
import importlib.machinery, importlib.util, os, sys
# The executor's own processes (supervisor, agent, and what they fork before an exec) run
# `python -m sandbox_executor`; user code, the fork server and kernels run other command lines.
with open("/proc/self/cmdline", "rb") as _cmd:
    _executor = int(b"sandbox_executor" in _cmd.read().split(b"\\0"))
with open("/workspace/.shadow-log", "a") as _log:
    _log.write(f"{__name__} {os.getpid()} {_executor}\\n")
_spec = (  # the real module: built in (Debian's python has many), frozen, or on the path past /workspace
    importlib.machinery.BuiltinImporter.find_spec(__name__)
    or importlib.machinery.FrozenImporter.find_spec(__name__)
    or importlib.machinery.PathFinder.find_spec(
        __name__, [p for p in sys.path if p not in ("", os.getcwd(), "/workspace")]
    )
)
_real = importlib.util.module_from_spec(_spec)
sys.modules[__name__] = _real
_spec.loader.exec_module(_real)
"""

def handler(event):
    for name in event["names"]:
        with open(f"/workspace/{name}.py", "w") as f:
            f.write(SHADOW)
    # The probe works: a Python of the sandbox's own, started in /workspace, imports a planted module.
    import subprocess
    subprocess.run([sys.executable, "-c", "import shutil"], cwd="/workspace", check=True)
    killed = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "sandbox-agent":
                    os.kill(int(pid), 9)
                    killed.append(int(pid))
        except (OSError, ValueError):
            pass
    return killed
'''

def test_modules_planted_in_the_workspace_never_run_in_the_executor(tenants: Tenants) -> None:
    status, result = tenants.attack(PLANT, event={"names": list(SHADOWED)})
    # The agent that ran the code was killed by it: the result may be lost with it (crashed, then retried).
    assert status in ("completed", "crashed", "failed"), result
    api, sid = tenants.attacker, tenants.attacker_sid
    # A new agent comes up (the supervisor forks it) and runs code again while the planted files are there:
    # a shell run (no Python of the sandbox's own reads them) builds what the executor loads on first use.
    again: list[tuple[str, dict]] = []  # type: ignore[type-arg]

    def shell(script: str) -> tuple[str, dict]:  # type: ignore[type-arg]
        again.append(tenants.attack(script, language="shell"))
        return again[-1]

    assert wait_for(lambda: shell("echo up")[0] == "completed", timeout=90), again[-3:]
    status, result = shell("cat /workspace/.shadow-log")
    assert status == "completed", result
    lines = [line.split() for line in result["stdout"].splitlines() if line.strip()]
    assert lines, "no planted module was imported at all: the probe did not run"
    imported_by_executor = [line for line in lines if line[2] == "1"]
    assert not imported_by_executor, imported_by_executor
    names = " ".join(f"/workspace/{n}.py" for n in SHADOWED)
    assert shell(f"rm -f {names} /workspace/.shadow-log")[0] == "completed"
    # With the files gone, the code-running paths (a context's cell, a background process) still work.
    context = api.post(f"/sessions/{sid}/contexts", json={"language": "python"})
    assert context.status_code == 201, context.text
    cell_body = {"code": "x = 41\nx + 1", "language": "python", "context_id": context.json()["context_id"]}
    cell = api.post(f"/sessions/{sid}/execute-sync", json=cell_body)
    assert cell.status_code == 200 and cell.json()["status"] == "success", cell.text
