"""Session launch on the docker runtime, beside a bare `docker run` of the same image, in the same run.

- session: `POST /api/v1/sessions` on a local stack started with `--runtime docker`, then
  `GET /sessions/{id}?wait=20` until `running`, as the SDK waits (`--poll-ms N`: a plain GET every N ms
  instead, as a client of a server without `wait` would) (the whole path: API, DynamoDB, the launch state
  machine, the runtime's create + start, the executor's container_ready callback);
- bare: `docker run -d` of the same image with the same hardening flags (uid 1000, read-only root, no
  capabilities, no-new-privileges, init, pids/memory/CPU limits, no network, 64 MiB /tmp), the executor
  listening on a unix socket in a bound host dir (and /workspace bound as the runtime does), until its
  first HTTP answer from `/health`.

- warm: the same create on a stack with a warm pool (SANDBOX_WARM_POOL): the create request claims and binds
  a pre-started container inline and answers `running` (no polling, no workflow).

Each figure is the median of N launches after one warm-up launch of each kind, beside the bare run measured
in the same run. Goals (issue #14): warm <= 0.3x bare, cold <= 1.4x bare.

    python3 bench/session_launch_docker.py [--runs 10] [--template python-basic]

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "python"))

from sandboxcp.local.child_stack import ChildStackFailed, start_child_stack  # noqa: E402
from sandboxcp.local.ecs_standin import TASK_LABEL  # noqa: E402
from sandboxcp.local.kube_standin import PID_LABEL  # noqa: E402

# How often the bare run's client tries /health, and (with --poll-ms) the bench reads the session while it
# starts. Each read is an authorized API call that the local stack serves in the same Python process as the
# launch: at 5 ms the reads take most of that process's CPU and slow the launch they measure. By default the
# bench waits on the session instead (`?wait=`: one request, answered when it leaves `creating`).
POLL_S = 0.005
SESSION_POLL_S: float | None = None  # None: wait on the server
API_KEY = "sk_bench_admin_key_not_secret"


def _script(name: str) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / name)], check=True, stdout=subprocess.DEVNULL)


class LocalStack:
    """`sandboxcp local --runtime <runtime>` in a subprocess, with an admin client (also used by
    bench/session_launch_cloud.py)."""

    def __init__(self, state_dir: Path, env: dict[str, str] | None = None, runtime: str = "docker") -> None:
        self.runtime = runtime
        env = {**os.environ, "SANDBOXCP_API_KEY": API_KEY, **(env or {})}
        try:
            self.proc, self.url = start_child_stack(
                runtime, state_dir, env, state_dir.parent / f"{state_dir.name}.log", cwd=ROOT
            )
        except ChildStackFailed as err:
            raise SystemExit(str(err)) from err
        self.api = httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
        )

    def warm_sandboxes(self) -> int:
        """Warm sandboxes running now: ECS stand-in tasks carry its label, the EKS stand-in labels the Pods of
        this stack's process, the docker runtime (local or remote engine) names them."""
        label = {
            "ecs": f"label={TASK_LABEL}",
            "eks": f"label={PID_LABEL}={self.proc.pid}",
        }.get(self.runtime, "name=sandbox-pool_")
        return len(
            subprocess.run(
                ["docker", "ps", "-q", "--filter", label], capture_output=True, text=True
            ).stdout.split()
        )

    def wait_for_warm_pool(self, size: int, timeout: float = 120) -> None:
        """Until `size` warm sandboxes run (the refill job fires every 10 s)."""
        deadline = time.monotonic() + timeout
        while self.warm_sandboxes() < size:
            if time.monotonic() > deadline:
                raise SystemExit(f"the warm pool did not reach {size} sandboxes within {timeout:.0f} s")
            time.sleep(0.5)
        time.sleep(1.0)  # let their executors finish booting

    def launch_seconds(self, template: str) -> tuple[float, dict[str, float]]:
        """Create -> running, and where the time went (from the session's and the engine's timestamps)."""
        started = time.perf_counter()
        created = self.api.post("/sessions", json={"template_id": template})
        created.raise_for_status()
        sid = created.json()["session_id"]
        if created.json()["status"] == "running":  # an inline warm claim: running in the create response
            elapsed = time.perf_counter() - started
            self.api.delete(f"/sessions/{sid}")
            return elapsed, {}
        while True:
            waiting = {"wait": 20} if SESSION_POLL_S is None else None
            session = self.api.get(f"/sessions/{sid}", params=waiting).json()
            status = session["status"]
            if status == "running":
                elapsed = time.perf_counter() - started
                break
            if status != "creating":
                raise SystemExit(f"session {sid} ended {status} instead of running")
            if time.perf_counter() - started > 60:
                raise SystemExit(f"session {sid} not running after 60 s")
            if SESSION_POLL_S is not None:
                time.sleep(SESSION_POLL_S)
        phases = _phases(session, elapsed) if self.runtime == "docker" else {}  # engine ids: docker only
        self.api.delete(f"/sessions/{sid}")
        return elapsed, phases

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _ts(text: str) -> float:
    """An RFC 3339 timestamp (the engine's have nanoseconds) as epoch seconds."""
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp() + float(f"0.{frac or 0}")


def _phases(session: dict[str, Any], elapsed: float) -> dict[str, float]:
    out = subprocess.run(["docker", "inspect", session["container_id"]], capture_output=True, text=True)
    info = json.loads(out.stdout)[0]
    created, ready = _ts(session["created_at"]), _ts(session["updated_at"])
    engine_created, engine_started = _ts(info["Created"]), _ts(info["State"]["StartedAt"])
    return {
        "control plane until create": engine_created - created,
        "engine create + start": engine_started - engine_created,
        "executor boot + ready callback": ready - engine_started,
        "until the client sees it": elapsed - (ready - created),
    }


def bare_run_seconds(image: str, work: Path, n: int) -> float:
    """`docker run` with the runtime's hardening until the executor answers /health on its socket."""
    run_dir, workspace = work / f"bare-{n}" / "run", work / f"bare-{n}" / "workspace"
    for d in (run_dir, workspace):
        d.mkdir(parents=True)
        os.chown(d, 1000, 1000)
    name = f"sandboxcp-bench-{os.getpid()}-{n}"
    argv = [
        "docker",
        "run",
        "-d",
        "--name",
        name,
        "--label",
        "sandboxcp.bench=true",
        "--user",
        "1000:1000",
        "--read-only",
        "--tmpfs",
        "/tmp:rw,nosuid,nodev,size=64m,mode=1777",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--pids-limit",
        "128",
        "--memory",
        "512m",
        "--memory-swap",
        "512m",
        "--cpus",
        "1",
        "--network",
        "none",
        "--ipc",
        "private",
        "-v",
        f"{run_dir}:/run/sandbox",
        "-v",
        f"{workspace}:/workspace",
        "-e",
        f"SANDBOXCP_SESSION_ID=sess_bench{n:012d}",
        "-e",
        "SANDBOXCP_CALLBACK_URL=unix:///run/controlplane.sock",  # absent: readiness is not measured here
        "-e",
        "SANDBOXCP_LISTEN=unix:/run/sandbox/executor.sock",
        image,
    ]
    sock = run_dir / "executor.sock"
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), timeout=2) as client:
            while True:
                if sock.exists():
                    try:
                        if client.get("http://executor/health").status_code == 200:
                            return time.perf_counter() - started
                    except httpx.HTTPError:
                        pass
                if time.perf_counter() - started > 60:
                    raise SystemExit(f"{name}: no answer from /health within 60 s")
                time.sleep(POLL_S)
    finally:
        subprocess.run(["docker", "rm", "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    global SESSION_POLL_S
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--template", default="python-basic")
    parser.add_argument("--no-warm", action="store_true", help="skip the warm-pool measurement")
    parser.add_argument(
        "--poll-ms", type=float, help="read the session every N ms while it starts (default: wait on it)"
    )
    args = parser.parse_args()
    SESSION_POLL_S = None if args.poll_ms is None else args.poll_ms / 1000
    image = f"sandboxcp/{args.template}:latest"
    _script("start_dockerd.sh")
    _script("build_images.sh")
    work = Path(tempfile.mkdtemp(prefix="sandboxcp-bench-"))
    stack = LocalStack(work / "state", env={"SANDBOX_WARM_POOL": "none"})
    try:
        stack.launch_seconds(args.template)  # warm-up: first launch pays for lazy imports and clients
        bare_run_seconds(image, work, 0)
        sessions: list[float] = []
        bare: list[float] = []
        phases: dict[str, list[float]] = {}
        for i in range(1, args.runs + 1):  # interleaved, so drift on a noisy machine hits both alike
            elapsed, parts = stack.launch_seconds(args.template)
            sessions.append(elapsed)
            for name, seconds in parts.items():
                phases.setdefault(name, []).append(seconds)
            bare.append(bare_run_seconds(image, work, i))
    finally:
        stack.stop()
    warm: list[float] = []
    warm_bare: list[float] = []
    if not args.no_warm:
        # The same launches with a warm pool of pre-started, unbound executors (SANDBOX_WARM_POOL, a fixed
        # size: floor = ceiling), each claimed inline by the create request; bare runs interleaved again.
        size = args.runs + 1
        pooled = LocalStack(work / "state-warm", env={"SANDBOX_WARM_POOL": f"{args.template}={size}:{size}"})
        try:
            pooled.wait_for_warm_pool(size)
            for i in range(args.runs):
                warm.append(pooled.launch_seconds(args.template)[0])
                warm_bare.append(bare_run_seconds(image, work, 100 + i))
        finally:
            pooled.stop()
    shutil.rmtree(work, ignore_errors=True)
    s_med, b_med = statistics.median(sessions), statistics.median(bare)
    ratio = s_med / b_med
    print(f"image {image}, {args.runs} runs each (after one warm-up)")
    print(f"{'':34}{'median':>9}{'min':>9}{'max':>9}")
    for label, xs in (("session create -> running", sessions), ("bare docker run -> /health", bare)):
        print(
            f"{label:34}{statistics.median(xs) * 1000:8.0f}ms{min(xs) * 1000:8.0f}ms{max(xs) * 1000:8.0f}ms"
        )
    print(f"ratio cold session / bare: {ratio:.2f} (goal <= 1.4: {'met' if ratio <= 1.4 else 'missed'})")
    if warm:
        w_med, wb_med = statistics.median(warm), statistics.median(warm_bare)
        for label, xs in (
            ("session create -> running (warm)", warm),
            ("bare docker run (same phase)", warm_bare),
        ):
            print(
                f"{label:34}{statistics.median(xs) * 1000:8.0f}ms{min(xs) * 1000:8.0f}ms"
                f"{max(xs) * 1000:8.0f}ms"
            )
        verdict = "met" if w_med / wb_med <= 0.3 else "missed"
        print(f"ratio warm session / bare: {w_med / wb_med:.2f} (goal <= 0.3: {verdict}; inline claim)")
    print("cold session launch, median of each phase:")
    for name, xs in phases.items():
        print(f"  {name:32}{statistics.median(xs) * 1000:8.0f}ms")


if __name__ == "__main__":
    main()
