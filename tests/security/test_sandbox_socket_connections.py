"""Attack: code in a sandbox opens many connections to the control plane's socket and stalls them (a request
line, never the end of the headers), while another tenant's runs call back and upload files through the same
server. The local servers reuse connection threads (sandboxcp/local/serving.py): a reused thread must neither
be held back by the stalled connections (one thread per connection in flight, no bound) nor carry anything of
one request into the next. docs/security.md, promise 6."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.security.conftest import Tenants

pytestmark = pytest.mark.e2e

STALLED = 64
STALL = (
    "import socket, time\n"
    "def handler(e):\n"
    "    held = []\n"
    f"    for _ in range({STALLED}):\n"
    "        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
    "        s.connect('/run/controlplane.sock')\n"
    "        s.sendall(b'POST /internal/sessions/x/heartbeat HTTP/1.1\\r\\nHost: x\\r\\n')\n"
    "        held.append(s)\n"
    "    print('stalled', len(held), flush=True)\n"
    "    time.sleep(20)\n"
    "    return len(held)\n"
)
WRITE = "def handler(e):\n    open(f\"v{e['i']}.txt\", 'w').write(str(e['i']))\n    return e['i']\n"


def test_stalled_connections_from_a_sandbox_hold_up_no_other_tenants_callbacks_or_uploads(
    tenants: Tenants,
) -> None:
    attacker = tenants.attacker
    submitted = attacker.post(
        f"/sessions/{tenants.attacker_sid}/execute", json={"code": STALL, "language": "python"}
    )
    assert submitted.status_code == 200, submitted.text
    eid = submitted.json()["execution_id"]
    _until_printed(attacker, eid, f"stalled {STALLED}")  # every connection is open and stalled
    victim, sid = tenants.victim, tenants.victim_sid
    answers = []
    for i in range(6):  # each run: a callback for its result and an upload of its file, beside the stall
        ran = victim.post(
            f"/sessions/{sid}/execute-sync",
            json={"code": WRITE, "language": "python", "event": {"i": i}},
            timeout=30,
        )
        body = ran.json()
        answers.append(
            (ran.status_code, body.get("return_value"), [a["path"] for a in body.get("artifacts") or []])
        )
    # Answered while the connections still stall: not queued behind them.
    assert attacker.get(f"/executions/{eid}/status").json()["status"] == "running"
    assert answers == [(200, i, [f"v{i}.txt"]) for i in range(6)], (answers, tenants.stack.output()[-4000:])
    for i in range(6):  # stored as the victim's, with the victim's bytes
        got = victim.get(f"/sessions/{sid}/files/v{i}.txt")
        assert (got.status_code, got.content) == (200, str(i).encode())


def _until_printed(api: httpx.Client, eid: str, text: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        page = api.get(f"/executions/{eid}/output", params={"after": 0, "wait": 5}).json()
        if text in "".join(chunk.get("data", "") for chunk in page.get("chunks", [])):
            return
    raise AssertionError(f"{text!r} never printed")
