"""Submit-to-result round trip of `def handler(e): return 1` on the local stack (process runtime, real
bubblewrap sandbox), beside a plain `python3 -c` run of the same code inside the same sandbox, measured
in the same run; plus the latency of the submission call itself.

    python3 bench/execution_roundtrip.py [--runs 200]

Noisy machines: read the medians and the ratio, not single figures.
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

from tests.e2e.conftest import start_stack, stop_stack

CODE = "def handler(e):\n    return 1"
BASELINE = (
    "import json, subprocess, sys, time\n"
    "def handler(event):\n"
    "    out = []\n"
    "    for _ in range(event['runs']):\n"
    "        t = time.perf_counter()\n"
    "        code = 'def handler(e):\\n    return 1\\nhandler({})'\n"
    "        subprocess.run([sys.executable, '-c', code], check=True)\n"
    "        out.append((time.perf_counter() - t) * 1000)\n"
    "    return out\n"
)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def wait_terminal(api: httpx.Client, eid: str) -> None:
    while api.get(f"/executions/{eid}/status").json()["status"] not in (
        "completed",
        "failed",
        "timeout",
        "crashed",
    ):
        time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp))
        try:
            with stack.client() as api:
                sid = api.post("/sessions", json={"template_id": "python-basic", "timeout": 3600}).json()[
                    "session_id"
                ]
                while api.get(f"/sessions/{sid}").json()["status"] != "running":
                    time.sleep(0.05)
                round_trips, submits = [], []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    resp = api.post(f"/sessions/{sid}/execute", json={"code": CODE, "language": "python"})
                    submits.append((time.perf_counter() - t0) * 1000)
                    wait_terminal(api, resp.json()["execution_id"])
                    round_trips.append((time.perf_counter() - t0) * 1000)
                base = api.post(
                    f"/sessions/{sid}/execute",
                    json={
                        "code": BASELINE,
                        "language": "python",
                        "timeout": 600,
                        "event": {"runs": args.runs},
                    },
                ).json()["execution_id"]
                wait_terminal(api, base)
                baseline = api.get(f"/executions/{base}/result").json()["return_value"]
                api.delete(f"/sessions/{sid}")
        finally:
            stop_stack(stack)
    print(f"{args.runs} runs each, same session, same sandbox\n")
    print(f"{'':38} {'median ms':>10} {'p95 ms':>10}")
    rows = [
        ("submit -> result (API round trip)", round_trips),
        ("plain `python3 -c` in the sandbox", baseline),
        ("submission call (POST /execute)", submits),
    ]
    for name, values in rows:
        print(f"{name:38} {statistics.median(values):10.1f} {pct(values, 95):10.1f}")
    ratio = statistics.median(round_trips) / statistics.median(baseline)
    print(f"\nround trip / plain run (medians): {ratio:.2f}")
    print(
        json.dumps(
            {
                "round_trip_median_ms": statistics.median(round_trips),
                "baseline_median_ms": statistics.median(baseline),
                "submit_p95_ms": pct(submits, 95),
            }
        )
    )


if __name__ == "__main__":
    main()
