"""Round trips of trivial code through the local stack (real sandboxes), side by side with baselines
measured in the same run:

* `execute-sync` of `def handler(e): return 1`, and `execute` + polling of the same;
* a cell `x += 1` in an existing code context (`execute-sync` with `context_id`);
* baseline: a plain `python3 -c` of the same code, run inside the same sandbox;
* peer: llm-sandbox's `session.run("print(1)")` on the same image family (docker runtime only;
  `pip install "llm-sandbox[docker]"`);
* live output: how long after the code prints a line the client sees it (long poll), while the
  code then sleeps 5 s.

    python3 bench/execution_roundtrip.py [--runtime docker|process] [--runs 100]

Noisy machines: read the medians and the ratios, not single figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.conftest import start_stack, stop_stack

CODE = "def handler(e):\n    return 1"
BASELINE = (
    "import subprocess, sys, time\n"
    "def handler(event):\n"
    "    out = []\n"
    "    for _ in range(event['runs']):\n"
    "        t = time.perf_counter()\n"
    "        code = 'def handler(e):\\n    return 1\\nhandler({})'\n"
    "        subprocess.run([sys.executable, '-c', code], check=True)\n"
    "        out.append((time.perf_counter() - t) * 1000)\n"
    "    return out\n"
)
STREAMED = "import time\ndef handler(e):\n    print(time.time(), flush=True)\n    time.sleep(5)\n"
PEER_IMAGE = "sandboxcp/llm-sandbox-peer:latest"
TERMINAL = ("completed", "failed", "timeout", "crashed")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def wait_terminal(api: httpx.Client, eid: str) -> None:
    while api.get(f"/executions/{eid}/status").json()["status"] not in TERMINAL:
        time.sleep(0.005)


def execute_sync(api: httpx.Client, sid: str, code: str, **fields: object) -> dict:  # type: ignore[type-arg]
    resp = api.post(f"/sessions/{sid}/execute-sync", json={"code": code, "language": "python", **fields})
    body = resp.json()
    assert resp.status_code == 200 and body["status"] == "success", body
    return dict(body)


def new_running_session(api: httpx.Client) -> str:
    """A python-basic session, once it runs."""
    created = api.post("/sessions", json={"template_id": "python-basic", "timeout": 3600})
    sid = str(created.json()["session_id"])
    while api.get(f"/sessions/{sid}").json()["status"] != "running":
        time.sleep(0.05)
    return sid


def first_chunk_delay_ms(api: httpx.Client, sid: str) -> float:
    eid = api.post(f"/sessions/{sid}/execute", json={"code": STREAMED, "language": "python"}).json()[
        "execution_id"
    ]
    while True:
        page = api.get(f"/executions/{eid}/output", params={"after": 0, "wait": 20}).json()
        if page["chunks"]:
            seen = time.time()
            printed = float(page["chunks"][0]["data"].split()[0])
            wait_terminal(api, eid)
            return (seen - printed) * 1000


def peer_runs(runs: int) -> list[float] | None:
    try:
        from llm_sandbox import SandboxSession  # type: ignore[import-not-found]
    except ImportError:
        print('llm-sandbox is not installed (pip install "llm-sandbox[docker]"): peer column skipped')
        return None
    dockerfile = 'FROM sandboxcp/python-basic:latest\nENTRYPOINT []\nCMD ["sleep", "infinity"]\n'
    subprocess.run(["docker", "build", "-q", "-t", PEER_IMAGE, "-"], input=dockerfile.encode(), check=True)
    with SandboxSession(lang="python", image=PEER_IMAGE, skip_environment_setup=True) as peer:
        peer.run("print(1)")
        return timed(lambda: peer.run("print(1)"), runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--runtime", default="docker", choices=("docker", "process"))
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp), runtime=args.runtime)
        try:
            with stack.client() as api:
                sid = new_running_session(api)
                execute_sync(api, sid, CODE)  # warm: the fork server starts on first use
                rows["execute-sync round trip (handler)"] = timed(
                    lambda: execute_sync(api, sid, CODE), args.runs
                )

                def execute_and_poll() -> None:
                    resp = api.post(f"/sessions/{sid}/execute", json={"code": CODE, "language": "python"})
                    wait_terminal(api, resp.json()["execution_id"])

                rows["execute + polling round trip"] = timed(execute_and_poll, args.runs)
                cid = api.post(f"/sessions/{sid}/contexts", json={"language": "python"}).json()["context_id"]
                execute_sync(api, sid, "x = 0", context_id=cid)
                rows["context cell `x += 1` (execute-sync)"] = timed(
                    lambda: execute_sync(api, sid, "x += 1", context_id=cid), args.runs
                )
                baseline = execute_sync(api, sid, BASELINE, timeout=600, event={"runs": args.runs})
                rows["plain `python3 -c` in the sandbox"] = baseline["return_value"]
                rows["first live chunk after its print"] = [first_chunk_delay_ms(api, sid) for _ in range(5)]
                api.delete(f"/sessions/{sid}")
        finally:
            stop_stack(stack)
    if args.runtime == "docker" and (peer := peer_runs(args.runs)) is not None:
        rows['llm-sandbox session.run("print(1)")'] = peer
    print(f"{args.runs} runs each ({args.runtime} runtime), one session, one sandbox\n")
    print(f"{'':42} {'median ms':>10} {'p95 ms':>10}")
    for name, values in rows.items():
        print(f"{name:42} {statistics.median(values):10.1f} {pct(values, 95):10.1f}")
    median = {name: statistics.median(values) for name, values in rows.items()}
    plain = median["plain `python3 -c` in the sandbox"]
    sync = median["execute-sync round trip (handler)"]
    ratios = {
        "execute-sync / python3 -c (goal <= 1.0)": sync / plain,
        "context cell / python3 -c (goal <= 0.5)": median["context cell `x += 1` (execute-sync)"] / plain,
    }
    peer_name = 'llm-sandbox session.run("print(1)")'
    if peer_name in median:
        ratios["execute-sync / llm-sandbox (goal <= 0.5)"] = sync / median[peer_name]
    print()
    for name, value in ratios.items():
        print(f"{name:42} {value:10.2f}")
    first_chunk = median["first live chunk after its print"]
    print(f"{'first live chunk, median ms (goal <= 200)':42} {first_chunk:10.1f}")
    print(json.dumps({"medians_ms": median, "ratios": ratios}))


if __name__ == "__main__":
    main()
