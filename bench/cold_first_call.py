"""A cold start's Python part beyond the import: `import <module>`, then the first call of its handler on its
sample event (events/<module>.json), then a second (warm) call, each in a fresh interpreter, beside
`import boto3`. AWS is a moto server on loopback, provisioned and seeded by this script (an API key for
the authorizer, a running session for the reads), so the calls do real DynamoDB/S3 requests.

bench/cold_imports.py measures the import alone; a module that imports less at import time pays the rest on
its first call: read the `import + 1st call` column for the cold start a request actually waits on (without
SnapStart; with it, init is in the snapshot: see docs/deploy.md, "SnapStart").

    python3 bench/cold_first_call.py [--runs 5] [--root CHECKOUT ...] [module ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "python"))

from sandboxcp.local.aws import aws_environment, local_settings_env  # noqa: E402

DEFAULT_MODULES = ("authorizer_api_key", "sessions_get", "health")
SAMPLE_KEY = "sk_sample"  # the bearer token of the sample events
TENANT = "tenant-a"  # the tenant of the sample events' authorizer context
SAMPLE_SESSION = "sess_0000000000000001"

_PROBE = """
import json, sys, time
from types import SimpleNamespace
event = json.load(open(sys.argv[1]))
context = SimpleNamespace(function_name="bench", function_version="$LATEST", memory_limit_in_mb=512,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:bench", aws_request_id="bench-1")
t0 = time.perf_counter()
import {module} as m
t1 = time.perf_counter()
first = m.handler(event, context)
t2 = time.perf_counter()
m.handler(event, context)
t3 = time.perf_counter()
assert not isinstance(first, dict) or first.get("statusCode", 200) < 500 or "{module}" == "health", first
print(json.dumps([t1 - t0, t2 - t1, t3 - t2]))
"""


def seed(env: dict[str, str]) -> None:
    """Tables, bucket and state machine; the sample API key; a running session of the sample tenant."""
    os.environ.update(env)
    from datetime import UTC, datetime

    from sandboxcp.domain.models import Session
    from sandboxcp.domain.resources import ResourceLimit
    from sandboxcp.domain.states import SessionStatus
    from sandboxcp.local.aws import provision
    from sandboxcp.services.auth import ensure_api_key
    from sandboxcp.services.deps import get_deps

    deps = get_deps()
    provision(deps.settings)
    ensure_api_key(deps, SAMPLE_KEY, TENANT, admin=False)
    now = datetime.now(UTC)
    deps.sessions.create(
        Session(
            session_id=SAMPLE_SESSION,
            tenant_id=TENANT,
            template_id="python-basic",
            status=SessionStatus.CREATING,
            runtime_type="process",
            workspace_path=f"s3://b/workspace/{SAMPLE_SESSION}/",
            resources=ResourceLimit(),
            timeout=300,
            created_at=now,
            updated_at=now,
            last_activity_at=now,
        )
    )
    deps.sessions.update_fields(
        SAMPLE_SESSION,
        {"container_id": "proc-bench", "executor_url": "unix:///tmp/bench.sock", "task_token": "t"},
        only_if=[SessionStatus.CREATING],
    )
    deps.sessions.transition(SAMPLE_SESSION, SessionStatus.RUNNING, now=now)


def timings(root: Path, module: str, env: dict[str, str]) -> list[float]:
    env = {**env, "PYTHONPATH": os.pathsep.join([str(root / "functions"), str(root / "layers" / "python")])}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.replace("{module}", module), str(ROOT / "events" / f"{module}.json")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    values: list[float] = json.loads(out.stdout.strip().splitlines()[-1])
    return values


def boto3_seconds(env: dict[str, str]) -> float:
    probe = "import time; t = time.perf_counter(); import boto3; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--root",
        type=Path,
        action="append",
        help="a checkout whose functions/ and layers/ run (repeat to compare checkouts: their runs "
        "alternate, so load changes weigh on each alike); default this one",
    )
    parser.add_argument("modules", nargs="*", default=list(DEFAULT_MODULES))
    args = parser.parse_args()
    roots: list[Path] = [r.resolve() for r in args.root or [ROOT]]

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    try:
        env = {  # bytecode is written (as bench/cold_imports.py says why)
            **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            **local_settings_env("/tmp/sandboxcp-bench", "process"),
            **aws_environment(f"http://127.0.0.1:{port}"),
        }
        seed(env)
        for root in roots:  # warm the bytecode caches
            for module in args.modules:
                timings(root, module, env)
        baselines: list[float] = []
        samples: dict[tuple[Path, str], list[list[float]]] = {(r, m): [] for r in roots for m in args.modules}
        for _ in range(args.runs):
            baselines.append(boto3_seconds(env))
            for module in args.modules:
                for root in roots:
                    samples[(root, module)].append(timings(root, module, env))
        baseline = statistics.median(baselines) * 1000
        print(f"median of {args.runs} fresh interpreters; `import boto3` = {baseline:.0f} ms\n")
        header = ("function module", "import", "1st call", "import+1st", "x boto3", "2nd call")
        print(f"{header[0]:24} {header[1]:>8} {header[2]:>9} {header[3]:>11} {header[4]:>8} {header[5]:>9}")
        for root in roots:
            if len(roots) > 1:
                print(f"-- {root}")
            for module in args.modules:
                runs = samples[(root, module)]
                imp, first, second = (statistics.median(r[i] for r in runs) * 1000 for i in range(3))
                total = statistics.median(r[0] + r[1] for r in runs) * 1000
                print(
                    f"{module:24} {imp:8.0f} {first:9.0f} {total:11.0f} {total / baseline:8.2f} {second:9.1f}"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
