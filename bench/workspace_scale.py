"""Does the workspace's size drive an execution's cost? (issue #14) Through the local stack, real
sandboxes, one run:

* submit latency (`POST /execute` until 202) and `execute-sync` round trip of a trivial handler in a
  session whose workspace is empty and in one holding 1,000 small files (goal: <= 1.2x the empty
  figures). The two sessions take turns, sample by sample: the machine's speed drifts within a run and
  the stack's tables grow with it, and a pair sees one speed and one stack. "paired x" is the median of
  the pairs' ratios, the figure held to the goal; the ratio of the medians is printed beside it;
* the sync cost of a run that writes 1,000 small files to /workspace (each is uploaded and reported as an
  artifact), against the same code writing them to /tmp, which is not synced (goal: <= 2 s more; medians
  of --writes runs of each).

    python3 bench/workspace_scale.py [--runtime process|docker] [--runs 30] [--files 1000] [--writes 5]

Noisy machines: read the medians and the ratios, not single figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.execution_roundtrip import CODE, execute_sync, new_running_session, pct, timed
from tests.e2e.conftest import start_stack, stop_stack

WRITE_FILES = (
    "import os\n"
    "def handler(event):\n"
    "    os.makedirs(event['dir'], exist_ok=True)\n"
    "    for n in range(event['files']):\n"
    "        with open(os.path.join(event['dir'], f'f{n:04}.txt'), 'w') as f:\n"
    "            f.write('x' * 100)\n"
)


def submit_ms(api: httpx.Client, sid: str) -> float:
    t0 = time.perf_counter()
    resp = api.post(f"/sessions/{sid}/execute", json={"code": CODE, "language": "python"})
    took = (time.perf_counter() - t0) * 1000
    eid = resp.json()["execution_id"]
    while api.get(f"/executions/{eid}/status").json()["status"] in ("pending", "running"):
        time.sleep(0.005)
    return took


def execute_sync_ms(api: httpx.Client, sid: str) -> float:
    return timed(lambda: execute_sync(api, sid, CODE), 1)[0]


def write_ms(api: httpx.Client, sid: str, directory: str, files: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    body = execute_sync(api, sid, WRITE_FILES, timeout=300, event={"dir": directory, "files": files})
    return (time.perf_counter() - t0) * 1000, len(body.get("artifacts") or [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--writes", type=int, default=5, help="samples of the write of --files files")
    parser.add_argument("--runtime", default="process", choices=("docker", "process"))
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp), runtime=args.runtime)
        try:
            with stack.client() as api:
                empty_sid, full_sid = new_running_session(api), new_running_session(api)
                for sid in (empty_sid, full_sid):
                    execute_sync(api, sid, CODE)  # warm
                # Alternated; each synced run rewrites the same 1,000 files (every one changed: each is
                # uploaded again). One sample of a 2-3 s run is at the mercy of a noisy neighbour, so the
                # median of --writes.
                unsynced_ms, synced_ms = [], []
                for _ in range(args.writes):
                    unsynced_ms.append(write_ms(api, full_sid, "/tmp/many", args.files)[0])
                    synced, artifacts = write_ms(api, full_sid, "many", args.files)
                    assert artifacts == args.files, f"{artifacts} of {args.files} files reported"
                    synced_ms.append(synced)
                rows[f"write {args.files} files to /tmp (not synced)"] = unsynced_ms
                rows[f"write {args.files} files to /workspace (synced)"] = synced_ms
                listed = api.get(f"/sessions/{full_sid}/files").json()
                assert listed["total"] >= args.files, listed["total"]  # the listing's first 1,000
                # A file through the API: the next run fetches the listing once (a new revision).
                resp = api.post(
                    f"/sessions/{full_sid}/files/upload",
                    files={"file": ("f", b"new")},
                    data={"path": "new.txt"},
                )
                assert resp.status_code == 200, resp.text
                t0 = time.perf_counter()
                execute_sync(api, full_sid, "def handler(e):\n    return open('new.txt').read()")
                rows[f"first run after an API upload ({args.files} files listed)"] = [
                    (time.perf_counter() - t0) * 1000
                ]
                n = args.files
                for label, measure in (("submit", submit_ms), ("execute-sync", execute_sync_ms)):
                    empty, full = (
                        rows.setdefault(f"{label}, empty workspace", []),
                        rows.setdefault(f"{label}, {n} files", []),
                    )
                    for _ in range(args.runs):
                        empty.append(measure(api, empty_sid))
                        full.append(measure(api, full_sid))
                for sid in (empty_sid, full_sid):
                    api.delete(f"/sessions/{sid}")
        finally:
            stop_stack(stack)
    print(f"{args.runs} runs each ({args.runtime} runtime), two sessions taking turns\n")
    print(f"{'':52} {'median ms':>10} {'p95 ms':>10}")
    for name, values in rows.items():
        print(f"{name:52} {statistics.median(values):10.1f} {pct(values, 95):10.1f}")
    median = {name: statistics.median(values) for name, values in rows.items()}
    n = args.files
    empty_submit, empty_sync = median["submit, empty workspace"], median["execute-sync, empty workspace"]
    ratios = {}
    for label, empty_median in (("submit", empty_submit), ("execute-sync", empty_sync)):
        pairs = zip(rows[f"{label}, {n} files"], rows[f"{label}, empty workspace"], strict=True)
        paired = statistics.median(full / empty for full, empty in pairs)
        ratios[f"{label} {n} files / empty, paired x (goal <= 1.2)"] = paired
        ratios[f"{label} {n} files / empty, ratio of medians"] = median[f"{label}, {n} files"] / empty_median
    synced, unsynced = (
        median[f"write {n} files to /workspace (synced)"],
        median[f"write {n} files to /tmp (not synced)"],
    )
    sync_cost_s = (synced - unsynced) / 1000
    print()
    for name, value in ratios.items():
        print(f"{name:52} {value:10.2f}")
    print(f"{f'sync cost of writing {n} files, s (goal <= 2)':52} {sync_cost_s:10.2f}")
    print(json.dumps({"medians_ms": median, "ratios": ratios, "sync_cost_s": sync_cost_s}))


if __name__ == "__main__":
    main()
