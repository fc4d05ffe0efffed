"""Cold import time of every Lambda function module, beside `import boto3`, measured in the same run.

Each figure is the median of N fresh interpreters (`python3 -c 'import <module>'`, wall time of the
import only), so it approximates the import part of a Lambda cold start. The machines are noisy: read
the ratio column, not the milliseconds.

    python3 bench/cold_imports.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "python"))

from sandboxcp.local.aws import local_settings_env  # noqa: E402
from sandboxcp.routes import all_modules  # noqa: E402

_PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def import_seconds(module: str, env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    env = {
        **os.environ,
        **local_settings_env("/tmp/sandboxcp-bench", "process"),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT / "layers" / "python")]),
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONDONTWRITEBYTECODE": "0",
    }
    # Warm the bytecode cache once so every run measures imports, not compilation.
    for module in ["boto3", *all_modules()]:
        import_seconds(module, env)

    def median_ms(module: str) -> float:
        return statistics.median(import_seconds(module, env) for _ in range(args.runs)) * 1000

    baseline = median_ms("boto3")
    print(f"median of {args.runs} fresh interpreters; baseline `import boto3` = {baseline:.0f} ms\n")
    print(f"{'function module':32} {'import ms':>10} {'x boto3':>8}")
    rows = sorted(((median_ms(m), m) for m in all_modules()), reverse=True)
    for ms, module in rows:
        print(f"{module:32} {ms:10.0f} {ms / baseline:8.2f}")
    print(
        f"\n{'median of all functions':32} {statistics.median(r[0] for r in rows):10.0f} "
        f"{statistics.median(r[0] for r in rows) / baseline:8.2f}"
    )


if __name__ == "__main__":
    main()
