"""Interactive execution end to end, on every runtime of the e2e suite (tests/e2e/conftest.py): code
contexts with state and rich outputs, live output while a run goes on, background processes, and the bad
input of each. Everything goes through the public API of a real local stack into
real sandboxes."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Stack, wait_for
from tests.security.conftest import tenant_key

pytestmark = pytest.mark.e2e
TERMINAL = {"completed", "failed", "timeout", "crashed"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


def new_session(api: httpx.Client, template: str = "python-basic") -> str:
    resp = api.post("/sessions", json={"template_id": template, "timeout": 1800})
    assert resp.status_code in (200, 201, 202), resp.text
    sid = str(resp.json()["session_id"])
    assert wait_for(lambda: api.get(f"/sessions/{sid}").json()["status"] == "running", timeout=60)
    return sid


@pytest.fixture(scope="module")
def session(api: httpx.Client) -> Iterator[str]:
    sid = new_session(api)
    yield sid
    api.delete(f"/sessions/{sid}")


def new_context(api: httpx.Client, sid: str, language: str = "python") -> str:
    resp = api.post(f"/sessions/{sid}/contexts", json={"language": language})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["context_id"])


def run(api: httpx.Client, sid: str, code: str, wait: float = 60, **fields: object) -> dict:  # type: ignore[type-arg]
    body = {"code": code, "language": "python", "timeout": 30, **fields}
    resp = api.post(f"/sessions/{sid}/execute", json=body)
    assert resp.status_code == 200, resp.text
    eid = resp.json()["execution_id"]
    assert wait_for(lambda: api.get(f"/executions/{eid}/status").json()["status"] in TERMINAL, timeout=wait)
    return dict(api.get(f"/executions/{eid}").json())


# -- contexts -----------------------------------------------------------------------------------


def test_variables_persist_across_executions_in_a_context(api: httpx.Client, session: str) -> None:
    cid = new_context(api, session)
    assert run(api, session, "import json\ntotal = 20", context_id=cid)["status"] == "completed"
    out = run(api, session, "total += 1\njson.dumps({'total': total})", context_id=cid)
    assert out["status"] == "completed", out
    assert out["context_id"] == cid
    assert out["result"]["return_value"] == "'{\"total\": 21}'"
    assert out["result"]["outputs"] == [{"type": "result", "data": {"text/plain": "'{\"total\": 21}'"}}]
    # A handler-style execution in the same session still runs in a fresh interpreter.
    plain = run(api, session, "def handler(e):\n    return 'total' in globals()")
    assert plain["result"]["return_value"] is False


def test_javascript_context(api: httpx.Client, session: str) -> None:
    missing = api.post(f"/sessions/{session}/contexts", json={"language": "javascript"})
    if missing.status_code != 201:  # python-basic's image has no Node.js (the process runtime's host has)
        assert missing.status_code == 400 and "nodejs-basic" in missing.json()["error_detail"], missing.text
    sid = new_session(api, "nodejs-basic")
    try:
        cid = new_context(api, sid, "javascript")
        assert run(api, sid, "let n = 40", language="javascript", context_id=cid)["status"] == "completed"
        out = run(api, sid, "n + 2", language="javascript", context_id=cid)
        assert out["result"]["return_value"] == "42"
    finally:
        api.delete(f"/sessions/{sid}")


def test_matplotlib_plot_returns_a_png_output_and_an_artifact(api: httpx.Client) -> None:
    sid = new_session(api, "python-datascience")
    try:
        cid = new_context(api, sid)
        code = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.title('squares')\nplt.show()"
        out = run(api, sid, code, context_id=cid)
        assert out["status"] == "completed", out
        pngs = [o["data"]["image/png"] for o in out["result"]["outputs"] if "image/png" in o["data"]]
        assert len(pngs) == 1 and base64.b64decode(pngs[0]).startswith(PNG_MAGIC)
        artifact = f"outputs/{out['id']}/output-1.png"
        assert artifact in [a["path"] for a in out["result"]["artifacts"]]
        stored = api.get(f"/sessions/{sid}/files/{artifact}")
        assert stored.status_code == 200 and stored.content.startswith(PNG_MAGIC)
        fig = run(api, sid, "fig, ax = plt.subplots()\nax.bar([1, 2], [3, 4])\nfig", context_id=cid)
        result = [o for o in fig["result"]["outputs"] if o["type"] == "result"]
        assert result and "image/png" in result[0]["data"]
    finally:
        api.delete(f"/sessions/{sid}")


def test_a_crashing_context_recovers_after_restart(api: httpx.Client, session: str) -> None:
    cid = new_context(api, session)
    run(api, session, "before = 1", context_id=cid)
    crashed = run(api, session, "import os\nos._exit(7)", context_id=cid)
    assert crashed["status"] == "crashed", crashed
    assert "exit code 7" in crashed["result"]["stderr"] and "Restart context" in crashed["result"]["stderr"]
    assert api.get(f"/sessions/{session}/contexts/{cid}").json()["status"] == "dead"
    refused = run(api, session, "before", context_id=cid)
    assert refused["status"] == "failed"
    restarted = api.post(f"/sessions/{session}/contexts/{cid}/restart")
    assert restarted.status_code == 200, restarted.text
    out = run(api, session, "after = 2\nafter", context_id=cid)
    assert out["status"] == "completed" and out["result"]["return_value"] == "2"


def test_a_timeout_interrupts_the_cell_and_keeps_the_context(api: httpx.Client, session: str) -> None:
    cid = new_context(api, session)
    run(api, session, "kept = 'yes'", context_id=cid)
    out = run(api, session, "import time\nwhile True:\n    time.sleep(0.1)", context_id=cid, timeout=2)
    assert out["status"] == "timeout"
    assert run(api, session, "kept", context_id=cid)["result"]["return_value"] == "'yes'"


# -- live output --------------------------------------------------------------------------------


def test_a_ten_second_jobs_output_arrives_in_pieces_while_it_runs(api: httpx.Client, session: str) -> None:
    code = "import time\ndef handler(e):\n    for i in range(10):\n"
    code += "        print('tick', i, flush=True)\n        time.sleep(1)\n"
    resp = api.post(f"/sessions/{session}/execute", json={"code": code, "language": "python", "timeout": 60})
    eid = resp.json()["execution_id"]
    after, seen, arrivals = 0, [], []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        page = api.get(f"/executions/{eid}/output", params={"after": after, "wait": 5}).json()
        if page["chunks"]:
            status = api.get(f"/executions/{eid}/status").json()["status"]
            arrivals.append(status)
            seen += page["chunks"]
            after = page["next_after"]
        if page["complete"]:
            break
    assert [c["seq"] for c in seen] == list(range(1, len(seen) + 1))
    text = "".join(c["data"] for c in seen if c["stream"] == "stdout")
    assert text == "".join(f"tick {i}\n" for i in range(10))
    assert sum(1 for status in arrivals if status not in TERMINAL) >= 3, arrivals
    assert api.get(f"/executions/{eid}").json()["result"]["stdout"] == text


# -- background processes -----------------------------------------------------------------------

SERVER_CHECK = (
    "import urllib.request, time\n"
    "def handler(e):\n"
    "    for _ in range(100):\n"
    "        try:\n"
    "            url = f'http://127.0.0.1:{e[\"port\"]}/hello.txt'\n"
    "            return urllib.request.urlopen(url, timeout=2).read().decode()\n"
    "        except OSError:\n"
    "            time.sleep(0.1)\n"
)


def start_process(api: httpx.Client, sid: str, cmd: str) -> dict:  # type: ignore[type-arg]
    resp = api.post(f"/sessions/{sid}/processes", json={"cmd": cmd})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def process_status(api: httpx.Client, sid: str, pid: str) -> str:
    return str(api.get(f"/sessions/{sid}/processes/{pid}").json()["status"])


def test_a_background_server_answers_a_later_execution_and_can_be_killed(
    api: httpx.Client, session: str
) -> None:
    port = 20000 + secrets.randbelow(20000)
    run(api, session, "echo served > hello.txt", language="shell")
    proc = start_process(api, session, f"exec python3 -m http.server {port} --bind 127.0.0.1")
    out = run(api, session, SERVER_CHECK, event={"port": port})
    assert out["result"]["return_value"] == "served\n", out
    log = api.get(f"/sessions/{session}/processes/{proc['process_id']}/output", params={"wait": 5}).json()
    assert "GET /hello.txt" in "".join(c["data"] for c in log["chunks"])
    killed = api.post(
        f"/sessions/{session}/processes/{proc['process_id']}/signal", json={"signal": "SIGKILL"}
    )
    assert killed.status_code == 200, killed.text
    assert wait_for(lambda: process_status(api, session, proc["process_id"]) != "running", timeout=15)
    late = api.post(f"/sessions/{session}/processes/{proc['process_id']}/stdin", json={"data": "x"})
    assert late.status_code == 409 and late.json()["error_code"]


def test_processes_die_with_their_session(api: httpx.Client) -> None:
    sid = new_session(api)
    marker = 3000 + secrets.randbelow(5000)
    start_process(api, sid, f"sleep {marker}.5")
    assert wait_for(lambda: _host_has(f"sleep\x00{marker}.5"), timeout=10)
    assert api.delete(f"/sessions/{sid}").status_code in (200, 202, 204)
    assert wait_for(lambda: not _host_has(f"sleep\x00{marker}.5"), timeout=30)


def _host_has(argv: str) -> bool:
    """A live process with that command line on this host (sandboxes' processes are all visible here)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if argv.encode() in (entry / "cmdline").read_bytes():
                    stat = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
                    if stat[0] not in (b"Z", b"X"):
                        return True
            except OSError:
                continue
    return False


# -- bad input ----------------------------------------------------------------------------------


def test_bad_input_gets_the_contract_error_body(api: httpx.Client, stack: Stack, session: str) -> None:
    unknown = api.post(
        f"/sessions/{session}/execute",
        json={"code": "1", "language": "python", "context_id": "ctx-nothere00"},
    )
    assert unknown.status_code == 404
    assert set(unknown.json()) >= {"error_code", "description", "error_detail", "solution", "request_id"}
    cid = new_context(api, session)
    with stack.client(tenant_key(stack, "t-other")) as other:
        other_sid = new_session(other)
        try:
            assert other.get(f"/sessions/{session}/contexts/{cid}").status_code == 404
            foreign = other.post(
                f"/sessions/{other_sid}/execute", json={"code": "1", "language": "python", "context_id": cid}
            )
            assert foreign.status_code == 404, foreign.text
        finally:
            other.delete(f"/sessions/{other_sid}")
    sid = new_session(api)
    try:
        for _ in range(16):
            start_process(api, sid, "sleep 600")
        over = api.post(f"/sessions/{sid}/processes", json={"cmd": "sleep 600"})
        assert over.status_code == 429 and over.headers.get("Retry-After")
        assert set(over.json()) >= {"error_code", "description", "error_detail", "solution", "request_id"}
        done = start_process(api, session, "true")
        assert wait_for(lambda: process_status(api, session, done["process_id"]) != "running", timeout=15)
        late = api.post(f"/sessions/{session}/processes/{done['process_id']}/stdin", json={"data": "x"})
        assert late.status_code == 409
        assert set(late.json()) >= {"error_code", "description", "error_detail", "solution", "request_id"}
    finally:
        api.delete(f"/sessions/{sid}")
