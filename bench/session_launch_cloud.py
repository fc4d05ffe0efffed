"""Session launch on a cloud runtime's stand-in (default `--runtime ecs`: the ECS stand-in, real containers
behind moto's ECS API; `eks`: the Kubernetes API stand-in's Pods; `docker-remote`: the docker runtime on an
engine reached over TCP+TLS), beside a bare `docker run` of the same image to its first HTTP answer, in the
same run; `--compare-docker` adds the docker runtime's figures, measured the same way in the same run.

- session (cold): `POST /api/v1/sessions` on a local stack started with `--runtime ecs`, then
  `GET /sessions/{id}?wait=20` until `running`, as the SDK waits (`--poll-ms N`: a plain GET every N ms):
  API, DynamoDB, the launch state machine, RunTask (the stand-in creates and starts the task's container,
  its volumes and network), DescribeTasks until RUNNING, the bind over HTTP at the task's address, the
  executor's container_ready over HTTP;
- session (warm): the same create on a stack with a warm pool: the create request claims a pre-started,
  unbound task and binds it inline (`running` in the create response);
- bare: `docker run -d` of the same image as uid 1000 with a read-only root, no capabilities and the
  executor listening on TCP on a bridge network, until `GET /health` at the container's address answers.

Each figure is the median of N launches after one warm-up launch of each kind, interleaved with the bare
runs. Goals (issue #10): cold <= 1.5x bare, warm <= 1.1x bare.

    python3 bench/session_launch_cloud.py [--runtime ecs|eks|docker-remote] [--runs 10] [--template T] \
        [--compare-docker]

Starts the engine and builds the images first (scripts/start_dockerd.sh, scripts/build_images.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "python"))

sys.path.insert(0, str(ROOT / "bench"))

import session_launch_docker  # noqa: E402
from session_launch_docker import POLL_S, LocalStack, _script  # noqa: E402

GOALS = {"cold": 1.5, "warm": 1.1}


def bare_run_seconds(image: str, n: int) -> float:
    """`docker run` (uid 1000, read-only root, no capabilities, TCP listener on the bridge network) until the
    executor answers `GET /health` at the container's address."""
    name = f"sandboxcp-bench-{os.getpid()}-{n}"
    argv = ["docker", "run", "-d", "--name", name, "--user", "1000:1000", "--read-only", "--cap-drop", "ALL"]
    argv += ["--tmpfs", "/tmp:rw,size=64m,mode=1777", "--tmpfs", "/workspace:rw,size=64m,uid=1000,gid=1000"]
    argv += ["--memory", "512m", "--cpus", "1", "--network", "bridge"]
    argv += ["-e", f"SANDBOXCP_SESSION_ID=sess_bench{n:012d}", "-e", "SANDBOXCP_LISTEN=tcp:0.0.0.0:8080"]
    argv += ["-e", "SANDBOXCP_CALLBACK_URL=http://127.0.0.1:9", image]  # unbound: no callback is made
    started = time.perf_counter()
    try:
        container = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()
        inspected = subprocess.run(
            ["docker", "inspect", container], check=True, capture_output=True, text=True
        )
        ip = json.loads(inspected.stdout)[0]["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        with httpx.Client(timeout=2) as client:
            while True:
                try:
                    if client.get(f"http://{ip}:8080/health").status_code == 200:
                        return time.perf_counter() - started
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - started > 60:
                    raise SystemExit(f"{name}: no answer from /health within 60 s")
                time.sleep(POLL_S)
    finally:
        subprocess.run(
            ["docker", "rm", "-f", "-v", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )


def measure(runtime: str, template: str, runs: int, work: Path) -> dict[str, tuple[list[float], list[float]]]:
    """{"cold"|"warm": (session seconds, bare seconds)}, each list `runs` long, interleaved."""
    image = f"sandboxcp/{template}:latest"
    out: dict[str, tuple[list[float], list[float]]] = {}
    stack = LocalStack(work / f"{runtime}-cold", {"SANDBOX_WARM_POOL": "none"}, runtime)
    try:
        stack.launch_seconds(template)  # warm-up: lazy imports, clients, the task definition check
        bare_run_seconds(image, 0)
        cold: tuple[list[float], list[float]] = ([], [])
        for i in range(1, runs + 1):
            cold[0].append(stack.launch_seconds(template)[0])
            cold[1].append(bare_run_seconds(image, i))
        out["cold"] = cold
    finally:
        stack.stop()
    size = runs + 1
    pooled = LocalStack(work / f"{runtime}-warm", {"SANDBOX_WARM_POOL": f"{template}={size}:{size}"}, runtime)
    try:
        pooled.wait_for_warm_pool(size)
        warm: tuple[list[float], list[float]] = ([], [])
        for i in range(runs):
            warm[0].append(pooled.launch_seconds(template)[0])
            warm[1].append(bare_run_seconds(image, 100 + i))
        out["warm"] = warm
    finally:
        pooled.stop()
    return out


def report(runtime: str, figures: dict[str, tuple[list[float], list[float]]]) -> None:
    print(f"runtime {runtime}")
    print(f"  {'':36}{'median':>9}{'min':>9}{'max':>9}")
    for kind, (sessions, bare) in figures.items():
        for label, xs in (
            (f"session create -> running ({kind})", sessions),
            ("bare docker run -> /health", bare),
        ):
            med, low, high = (f(xs) * 1000 for f in (statistics.median, min, max))
            print(f"  {label:36}{med:8.0f}ms{low:8.0f}ms{high:8.0f}ms")
        ratio = statistics.median(sessions) / statistics.median(bare)
        goal = GOALS[kind]
        verdict = "met" if ratio <= goal else "missed"
        print(f"  ratio {kind} session / bare: {ratio:.2f} (goal <= {goal}: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default="ecs", choices=["ecs", "eks", "docker-remote"])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--template", default="python-basic")
    parser.add_argument("--compare-docker", action="store_true", help="also measure the docker runtime")
    parser.add_argument(
        "--poll-ms", type=float, help="read the session every N ms while it starts (default: wait on it)"
    )
    args = parser.parse_args()
    session_launch_docker.SESSION_POLL_S = None if args.poll_ms is None else args.poll_ms / 1000
    _script("start_dockerd.sh")
    _script("build_images.sh")
    work = Path(tempfile.mkdtemp(prefix="sandboxcp-bench-"))
    try:
        results = {args.runtime: measure(args.runtime, args.template, args.runs, work)}
        if args.compare_docker:
            results["docker"] = measure("docker", args.template, args.runs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"image sandboxcp/{args.template}:latest, {args.runs} runs each (after one warm-up)")
    for runtime, figures in results.items():
        report(runtime, figures)


if __name__ == "__main__":
    main()
