"""Workspace disks made ahead of launches (runtimes/spare_disks.py) never carry one session's files into
another's: hostile code leaves files (a plain one, a setuid one, a hidden directory, a symlink out) in its
workspace, and every later session, cold launches taking the spares included, starts with an empty
workspace of its own size that nothing else mounts."""

from __future__ import annotations

from tests.e2e.conftest import Stack
from tests.integration.conftest import create_running_session, run_code
from tests.security.conftest import tenant_key

LEAVE_AND_LOOK = r"""
import os, stat
def handler(e):
    found = sorted(os.listdir("/workspace"))
    st = os.statvfs("/workspace")
    with open("/workspace/left-by-" + e["sid"], "w") as f:
        f.write("secret of " + e["sid"])
    os.chmod("/workspace/left-by-" + e["sid"], 0o4755)
    os.makedirs("/workspace/.hidden/deep", exist_ok=True)
    try:
        os.symlink("/etc", "/workspace/out")
    except OSError:
        pass
    return {"found": found, "size_mb": st.f_frsize * st.f_blocks // (1 << 20)}
"""


def test_no_later_session_sees_what_an_earlier_one_left(runtime_stack: Stack) -> None:
    with runtime_stack.client(tenant_key(runtime_stack, "t3-leaver")) as api:
        seen = []
        for _ in range(4):  # the first launch asks for spares; the next ones take them
            sid = create_running_session(api, timeout=60)
            status, result = run_code(api, sid, LEAVE_AND_LOOK, event={"sid": sid})
            assert status == "completed", result
            seen.append(result["return_value"])
            assert api.delete(f"/sessions/{sid}").status_code == 200
    for look in seen:
        assert look["found"] == [], seen  # nothing of any earlier session (nor lost+found)
        assert 900 <= look["size_mb"] <= 1024, seen  # the template's 1 GiB disk, not the host's
