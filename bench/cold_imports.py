"""Cold import time of every Lambda function module, beside `import boto3`, measured in the same run.

Each figure is the median of N fresh interpreters (`python3 -c 'import <module>'`, wall time of the
import only), so it approximates the import part of a Lambda cold start. The machines are noisy: read
the ratio columns, not the milliseconds. Every module's sample is paired with an `import boto3` taken
just before it, N times round all modules, so a change of load during the run weighs on the baseline and
the module alike; "paired x" is the median of those N ratios.

The environment is local mode's (tracing and metrics disabled, as outside Lambda). The import leaves to the
first request what it does not need to load (sandboxcp.observability, "Cold start"): for the cold start a
request waits on, see bench/cold_first_call.py; with SnapStart it is all paid at publish time
(docs/deploy.md, "SnapStart").

    python3 bench/cold_imports.py [--runs 7] [--root OTHER_CHECKOUT]
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
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the checkout whose functions/ and layers/ are imported"
    )
    args = parser.parse_args()
    root: Path = args.root.resolve()
    # Bytecode is written (a Lambda package ships it compiled): PYTHONDONTWRITEBYTECODE, set to anything at
    # all, would have every run compile the modules without a cache.
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        **local_settings_env("/tmp/sandboxcp-bench", "process"),
        "PYTHONPATH": os.pathsep.join([str(root / "functions"), str(root / "layers" / "python")]),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    modules = ["boto3", *all_modules()]
    # Warm the bytecode cache once so every run measures imports, not compilation.
    for module in modules:
        import_seconds(module, env)
    # Each module's sample is taken right after a sample of `import boto3`: the machine's speed drifts by a
    # third from one minute to the next, and a pair (about half a second) sees one speed. The paired ratio
    # (median over runs of module / its boto3) is the figure held to the goal; the ratio of the medians,
    # which drift moves, is printed beside it.
    samples: dict[str, list[float]] = {m: [] for m in modules}
    ratios: dict[str, list[float]] = {m: [] for m in modules[1:]}
    for _ in range(args.runs):
        for module in modules[1:]:
            base = import_seconds("boto3", env)
            took = import_seconds(module, env)
            samples["boto3"].append(base * 1000)
            samples[module].append(took * 1000)
            ratios[module].append(took / base)
    median_ms = {m: statistics.median(v) for m, v in samples.items()}
    paired = {m: statistics.median(v) for m, v in ratios.items()}

    baseline = median_ms.pop("boto3")
    print(f"{args.runs} runs; each module's import right after an `import boto3` (median {baseline:.0f} ms)")
    print(f"modules from {root}\n")
    print(f"{'function module':40} {'import ms':>10} {'x boto3':>8} {'paired x':>9}")
    rows = sorted(((paired[m], ms, m) for m, ms in median_ms.items()), reverse=True)
    for ratio, ms, module in rows:
        print(f"{module:40} {ms:10.0f} {ms / baseline:8.2f} {ratio:9.2f}")
    middle = statistics.median(r[1] for r in rows)
    middle_ratio = statistics.median(r[0] for r in rows)
    print(f"\n{'median of all functions':40} {middle:10.0f} {middle / baseline:8.2f} {middle_ratio:9.2f}")
    worst = max(rows, key=lambda r: r[1])
    for label, (ratio, ms, module) in (("worst by ms", worst), ("worst paired", rows[0]), ("best", rows[-1])):
        print(f"{label + ': ' + module:40} {ms:10.0f} {ms / baseline:8.2f} {ratio:9.2f}")
    over = [m for r, _, m in rows if r > 1.5]
    listed = f": {', '.join(over)}" if over else ""
    print(f"\nmodules over 1.5x boto3 (paired): {len(over)} of {len(rows)}{listed}")


if __name__ == "__main__":
    main()
