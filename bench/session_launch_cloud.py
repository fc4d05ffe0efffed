"""Session launch on a cloud runtime's stand-in (default `--runtime ecs`: the ECS stand-in, real containers
behind moto's ECS API), beside a bare `docker run` of the same image to its first HTTP answer, in the same
run; `--compare-docker` adds the docker runtime's figures, measured the same way in the same run.

- session (cold): `POST /api/v1/sessions` on a local stack started with `--runtime ecs`, then
  `GET /sessions/{id}` every 5 ms until `running`: API, DynamoDB, the launch state machine, RunTask (the
  stand-in creates and starts the task's container, its volumes and network), DescribeTasks until RUNNING,
  the bind over HTTP at the task's address, the executor's container_ready over HTTP;
- session (warm): the same create on a stack with a warm pool: the create request claims a pre-started,
  unbound task and binds it inline (`running` in the create response);
- bare: `docker run -d` of the same image as uid 1000 with a read-only root, no capabilities and the
  executor listening on TCP on a bridge network, until `GET /health` at the container's address answers.

Each figure is the median of N launches after one warm-up launch of each kind, interleaved with the bare
runs. Goals (issue #10): cold <= 1.5x bare, warm <= 1.1x bare.

    python3 bench/session_launch_cloud.py [--runtime ecs] [--runs 10] [--template T] [--compare-docker]

Starts the engine and builds the images first (scripts/start_dockerd.sh, scripts/build_images.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "python"))

from sandboxcp.local.aws import free_port  # noqa: E402
from sandboxcp.local.ecs_standin import TASK_LABEL  # noqa: E402

POLL_S = 0.005
API_KEY = "sk_bench_admin_key_not_secret"
GOALS = {"cold": 1.5, "warm": 1.1}


def _script(name: str) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / name)], check=True, stdout=subprocess.DEVNULL)


class LocalStack:
    """`sandboxcp local --runtime <runtime>` in a subprocess, with an admin client."""

    def __init__(self, runtime: str, state_dir: Path, warm_pool: str) -> None:
        self.runtime = runtime
        port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandboxcp.cli",
                "local",
                "--port",
                str(port),
                "--runtime",
                runtime,
                "--state-dir",
                str(state_dir),
            ],
            env={**os.environ, "SANDBOXCP_API_KEY": API_KEY, "SANDBOX_WARM_POOL": warm_pool},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the {runtime} stack exited early")
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the {runtime} stack did not answer /api/v1/health within 60 s")
            time.sleep(0.2)
        self.api = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
        )

    def warm_sandboxes(self) -> int:
        label = f"label={TASK_LABEL}" if self.runtime == "ecs" else "name=sandbox-pool_"
        return len(
            subprocess.run(
                ["docker", "ps", "-q", "--filter", label], capture_output=True, text=True
            ).stdout.split()
        )

    def wait_for_warm_pool(self, size: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.warm_sandboxes() < size:
            if time.monotonic() > deadline:
                raise SystemExit(f"the warm pool did not reach {size} sandboxes within {timeout:.0f} s")
            time.sleep(0.5)
        time.sleep(1.0)  # their executors finish booting

    def launch_seconds(self, template: str) -> float:
        started = time.perf_counter()
        created = self.api.post("/sessions", json={"template_id": template})
        created.raise_for_status()
        sid = created.json()["session_id"]
        status = created.json()["status"]
        while status != "running":
            if status != "creating":
                raise SystemExit(f"session {sid} ended {status} instead of running")
            if time.perf_counter() - started > 60:
                raise SystemExit(f"session {sid} not running after 60 s")
            time.sleep(POLL_S)
            status = self.api.get(f"/sessions/{sid}").json()["status"]
        elapsed = time.perf_counter() - started
        self.api.delete(f"/sessions/{sid}")
        return elapsed

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


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
    stack = LocalStack(runtime, work / f"{runtime}-cold", warm_pool="none")
    try:
        stack.launch_seconds(template)  # warm-up: lazy imports, clients, the task definition check
        bare_run_seconds(image, 0)
        cold: tuple[list[float], list[float]] = ([], [])
        for i in range(1, runs + 1):
            cold[0].append(stack.launch_seconds(template))
            cold[1].append(bare_run_seconds(image, i))
        out["cold"] = cold
    finally:
        stack.stop()
    size = runs + 1
    pooled = LocalStack(runtime, work / f"{runtime}-warm", warm_pool=f"{template}={size}:{size}")
    try:
        pooled.wait_for_warm_pool(size)
        warm: tuple[list[float], list[float]] = ([], [])
        for i in range(runs):
            warm[0].append(pooled.launch_seconds(template))
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
    parser.add_argument("--runtime", default="ecs", choices=["ecs"])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--template", default="python-basic")
    parser.add_argument("--compare-docker", action="store_true", help="also measure the docker runtime")
    args = parser.parse_args()
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
