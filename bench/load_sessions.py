"""Many live sessions on one machine (issue #14): a real local stack on the process runtime (bubblewrap
sandboxes, moto for AWS) holds N idle sessions, then takes concurrent submits across them.

    python3 bench/load_sessions.py [--sessions 1000] [--create-concurrency 8] [--submits 100]

Printed, each beside its goal:

* create -> running: from `POST /sessions` to the first `GET` that says `running` (p50/p95), sessions
  created with bounded concurrency (progress on stderr);
* submit: `POST /sessions/{id}/execute` of a trivial python handler, `--submits` at once on as many
  sessions (p50/p95 of the 202, and of submit -> completed);
* the session reaper's cost per cycle at N live sessions: DynamoDB calls and items read, and runtime
  calls. Counted inside the stack's own process: the bench starts `sandboxcp local` through a small
  wrapper (PROBE below) that counts every botocore API call (`BaseClient._make_api_call`, which boto3's
  and pynamodb's clients both go through) and every call of a runtime method, made on the reaper's tick
  thread, and prints one line per reaper cycle. Nothing in the product is changed for it;
* memory of an idle session, two ways: (1) PSS (/proc/<pid>/smaps_rollup) summed over every process of
  a sandbox (bwrap, supervisor, agent, fork server once there is one: the launcher's pid and all its
  descendants), with USS (private pages only: what one more session adds) beside it; (2) the drop of
  the machine's MemAvailable from before the first session to N live idle sessions, divided by N
  (it includes the kernel's share: namespaces, the workspace's loop device and ext4 mount, page tables,
  and the stack process's own growth, shown too). Measured before any submit (sessions that never ran
  code) and again after (those that ran one execution: their fork server is up).

The machine it was written for has 2 cores and 24 GB; 1,000 sessions take minutes to create.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.conftest import Stack  # noqa: E402

CODE = "def handler(e):\n    return 1"
TERMINAL = ("completed", "failed", "timeout", "crashed")
PROBE_TAG = "BENCH-PROBE "
GOAL_REAPER_ITEMS, GOAL_REAPER_RUNTIME_CALLS, GOAL_IDLE_MB = 1000, 10, 12.0

# Runs in the stack's process, before `sandboxcp local` starts: counts, per reaper cycle (the local
# ticker's `tick-schedule_reap_sessions` thread), the AWS calls with the items they returned, and the
# runtime's method calls, and prints them as one line after each cycle.
PROBE = r"""
import collections, json, sys, threading, time
import botocore.client
from sandboxcp.local.functions import LocalFunctions
from sandboxcp.adapters.runtimes.process import ProcessRuntime

_tls = threading.local()

def _counts():
    c = getattr(_tls, "c", None)
    if c is None:
        c = _tls.c = {"aws": collections.Counter(), "items": 0, "scanned": 0,
                      "runtime": collections.Counter(), "ids_asked": 0}
    return c

_api = botocore.client.BaseClient._make_api_call
def _make_api_call(self, operation, params):
    out = _api(self, operation, params)
    c = _counts()
    c["aws"][f"{self.meta.service_model.service_name}.{operation}"] += 1
    if isinstance(out, dict):
        n = len(out.get("Items") or [])
        n += 1 if out.get("Item") else 0
        responses = out.get("Responses")
        if isinstance(responses, dict):
            n += sum(len(v) for v in responses.values())
        elif isinstance(responses, list):
            n += sum(1 for r in responses if r.get("Item"))
        c["items"] += n
        c["scanned"] += int(out.get("ScannedCount", n if "Items" not in out else len(out["Items"])))
    return out
botocore.client.BaseClient._make_api_call = _make_api_call

def _counting(name):
    real = getattr(ProcessRuntime, name)
    def method(self, *args, **kwargs):
        c = _counts()
        depth = getattr(_tls, "depth", 0)
        if depth == 0:  # a call from outside the runtime (states() asking state() per id is one call)
            c["runtime"][name] += 1
            if name == "states" and args:
                c["ids_asked"] += len(args[0])
        _tls.depth = depth + 1
        try:
            return real(self, *args, **kwargs)
        finally:
            _tls.depth = depth
    return method
for _name in ("start", "destroy", "state", "states", "executor_url", "logs", "list_managed", "usage", "ping"):
    setattr(ProcessRuntime, _name, _counting(_name))

_invoke = LocalFunctions.invoke
def _invoke_counted(self, module, event):
    if module != "schedule_reap_sessions":
        return _invoke(self, module, event)
    _tls.c = None
    t0 = time.perf_counter()
    try:
        return _invoke(self, module, event)
    finally:
        c = _counts()
        line = {"ms": round((time.perf_counter() - t0) * 1000, 1), "aws_calls": dict(c["aws"]),
                "items_read": c["items"], "items_scanned": c["scanned"],
                "runtime_calls": dict(c["runtime"]), "sandboxes_asked": c["ids_asked"]}
        print("BENCH-PROBE " + json.dumps(line), file=sys.stderr, flush=True)
LocalFunctions.invoke = _invoke_counted

from sandboxcp.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def note(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def start_stack(tmp: Path, sessions: int) -> Stack:
    """`sandboxcp local --runtime process` through PROBE, with quotas and node capacity for `sessions`."""
    key = "sk_bench_admin_key_for_load_only"
    env = {
        **os.environ,
        "SANDBOXCP_API_KEY": key,
        "QUOTA_MAX_REQUESTS_PER_SECOND": "10000",
        "QUOTA_MAX_SESSIONS": str(sessions + 100),
        "QUOTA_MAX_INFLIGHT_EXECUTIONS": str(sessions + 100),
        "QUOTA_MAX_CPU": str(float(sessions * 4 + 100)),
        "QUOTA_MAX_MEMORY_MB": str(sessions * 8192 + 100_000),
        "SESSION_CREATING_TIMEOUT_S": "600",  # creation is slow on 2 cores: never reaped for that here
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "layers" / "python"), str(REPO / "executor"), str(REPO / "infra")]
            + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
    }
    log_path = tmp / "stack.log"
    state_dir = tmp / "state"
    from sandboxcp.local.child_stack import ChildStackFailed, start_child_stack

    try:
        proc, url = start_child_stack(
            "process", state_dir, env, log_path, timeout_s=90, python=(sys.executable, "-c", PROBE)
        )
    except ChildStackFailed as err:
        raise SystemExit(str(err)) from err
    return Stack(url, key, state_dir, proc, log_path, "process")


def stop_stack(stack: Stack) -> None:
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGINT)
        try:
            stack.process.wait(timeout=900)  # it stops every sandbox that is left, one by one
        except subprocess.TimeoutExpired:
            stack.process.kill()
            stack.process.wait()
    from sandboxcp.adapters.runtimes import disk

    disk.remove_all_under(stack.state_dir)  # a killed stack's workspaces stay mounted otherwise


# -- memory ------------------------------------------------------------------------------------------------
def mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def settled_mem_available_kb() -> int:
    """MemAvailable once it stops moving much (median of a few reads a second apart)."""
    reads = []
    for _ in range(5):
        reads.append(mem_available_kb())
        time.sleep(1)
    return int(statistics.median(reads))


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            out[int(stat.rpartition(")")[2].split()[1])].append(int(entry))
    return out


def _tree(root: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [root], [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            found.append(pid)
            todo.append(pid)
    return found


def _rollup(pid: int) -> dict[str, int]:
    """kB fields of /proc/<pid>/smaps_rollup (Rss, Pss, Private_*...), {} if gone."""
    out = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    for line in text.splitlines()[1:]:
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0])
    return out


def _label(pid: int) -> str:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    if comm.startswith("python") and b"sandbox_executor" in cmdline:
        return "supervisor"
    if comm.startswith("python") and any(b"forkserver" in a.lower() or b"SCM_RIGHTS" in a for a in cmdline):
        return "fork server"
    return comm


def sandbox_memory(state_dir: Path, session_ids: Iterable[str]) -> dict[str, object]:
    """Per sandbox: PSS, USS and RSS (kB) summed over the launcher's pid and all its descendants, and
    the same per kind of process."""
    children = _children()
    per_session: list[dict[str, int]] = []
    by_kind: dict[str, list[int]] = collections.defaultdict(list)
    procs_per_session: list[int] = []
    for sid in session_ids:
        try:
            root = int((state_dir / "sessions" / sid / "pid").read_text())
        except (OSError, ValueError):
            continue
        total = {"pss": 0, "uss": 0, "rss": 0}
        pids = _tree(root, children)
        for pid in pids:
            r = _rollup(pid)
            if not r:
                continue
            uss = r.get("Private_Clean", 0) + r.get("Private_Dirty", 0)
            total["pss"] += r.get("Pss", 0)
            total["uss"] += uss
            total["rss"] += r.get("Rss", 0)
            by_kind[_label(pid)].append(r.get("Pss", 0))
        per_session.append(total)
        procs_per_session.append(len(pids))
    return {"sessions": per_session, "by_kind": by_kind, "procs": procs_per_session}


def stack_rss_kb(stack: Stack) -> int:
    return _rollup(stack.process.pid).get("Rss", 0)


# -- API ---------------------------------------------------------------------------------------------------
THROTTLED = collections.Counter()  # 429 answers per kind of call (the tenant's requests-per-second quota)


def call(api: httpx.Client, method: str, url: str, kind: str, **kwargs: object) -> httpx.Response:
    """One API call, retried after Retry-After while the answer is 429 (as a client should)."""
    for _ in range(60):
        resp = api.request(method, url, **kwargs)  # type: ignore[arg-type]
        if resp.status_code != 429:
            return resp
        THROTTLED[kind] += 1
        if THROTTLED[kind] == 1:  # why, once per kind
            note(f"first 429 ({kind}): {resp.text[:300]}")
        time.sleep(float(resp.headers.get("Retry-After", "1")))
    return resp


MIN_AVAILABLE_KB = 2 * 1024 * 1024  # no more sessions below this much MemAvailable (the OOM killer is near)


def create_running(api: httpx.Client) -> tuple[str, float]:
    if mem_available_kb() < MIN_AVAILABLE_KB:
        raise RuntimeError("MemAvailable below 2 GB: not creating more sessions")
    t0 = time.perf_counter()
    resp = call(api, "POST", "/sessions", "create", json={"template_id": "python-basic", "timeout": 3600})
    if resp.status_code != 201:
        raise RuntimeError(f"create: {resp.status_code} {resp.text[:300]}")
    sid = str(resp.json()["session_id"])
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        session = call(api, "GET", f"/sessions/{sid}", "poll").json()
        status = session["status"]
        if status == "running":
            return sid, (time.perf_counter() - t0) * 1000
        if status not in ("creating",):
            raise RuntimeError(f"session {sid} went {status}: {session.get('error_message')}")
        time.sleep(0.25)
    raise RuntimeError(f"session {sid} not running after 600 s")


def run_pool(fn: Callable[[int], object], count: int, workers: int, what: str) -> list[object]:
    out: list[object] = []
    errors: list[str] = []
    lock = threading.Lock()
    t0 = time.monotonic()

    def one(i: int) -> None:
        try:
            value = fn(i)
        except Exception as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
            return
        with lock:
            out.append(value)
            done = len(out)
        if done % max(1, count // 20) == 0 or done == count:
            rate = done / max(1e-9, time.monotonic() - t0)
            note(f"{what}: {done}/{count} ({rate:.1f}/s, {len(errors)} errors)")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(count)))
    for e in errors[:5]:
        note(f"{what} error: {e}")
    return out


def reaper_cycles(stack: Stack) -> list[dict[str, object]]:
    out = []
    for line in stack.output().splitlines():
        if line.startswith(PROBE_TAG):
            out.append(json.loads(line[len(PROBE_TAG) :]))
    return out


def wait_for_reaper_cycle(stack: Stack, after: int, timeout: float = 120) -> dict[str, object]:
    """The first reaper cycle to finish after `after` cycles were seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cycles = reaper_cycles(stack)
        if len(cycles) > after:
            return cycles[after]
        time.sleep(0.5)
    raise RuntimeError("no reaper cycle within the timeout")


# -- report ------------------------------------------------------------------------------------------------
def row(name: str, value: str, goal: str = "", ok: bool | None = None) -> None:
    verdict = "" if ok is None else ("  ok" if ok else "  ABOVE GOAL")
    print(f"{name:52} {value:>22}   {goal}{verdict}")


def memory_rows(
    title: str, mem: dict[str, object], drop_kb: int | None, n: int, stack_growth_kb: int
) -> None:
    sessions: list[dict[str, int]] = mem["sessions"]  # type: ignore[assignment]
    by_kind: dict[str, list[int]] = mem["by_kind"]  # type: ignore[assignment]
    procs: list[int] = mem["procs"]  # type: ignore[assignment]
    pss = [s["pss"] / 1024 for s in sessions]
    uss = [s["uss"] / 1024 for s in sessions]
    rss = [s["rss"] / 1024 for s in sessions]
    each = statistics.median(procs) if procs else 0
    print(f"\n{title} ({len(sessions)} sandboxes, {each:.0f} processes each)")
    if pss:
        med = statistics.median(pss)
        row(
            "  PSS per sandbox, median (max) MB",
            f"{med:.1f} ({max(pss):.1f})",
            f"goal <= {GOAL_IDLE_MB}",
            med <= GOAL_IDLE_MB,
        )
        row("  USS per sandbox (private pages), median MB", f"{statistics.median(uss):.1f}")
        row("  RSS per sandbox (shared counted fully), median MB", f"{statistics.median(rss):.1f}")
        for kind, values in sorted(by_kind.items()):
            row(f"    PSS of {kind}, median MB", f"{statistics.median(values) / 1024:.2f}")
    if drop_kb is not None and n:
        per = drop_kb / 1024 / n
        row("  MemAvailable drop / N, MB", f"{per:.1f}", f"goal <= {GOAL_IDLE_MB}", per <= GOAL_IDLE_MB)
        row("    of which the stack process's RSS growth / N, MB", f"{stack_growth_kb / 1024 / n:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--create-concurrency", type=int, default=8)
    parser.add_argument("--submits", type=int, default=100)
    parser.add_argument("--settle-s", type=float, default=15.0, help="idle time before measuring memory")
    args = parser.parse_args()
    n = args.sessions
    submits = min(args.submits, n)
    with tempfile.TemporaryDirectory(prefix="load-sessions-") as tmp:
        note(f"starting the stack (process runtime), state in {tmp}")
        stack = start_stack(Path(tmp), n)
        sids: list[str] = []
        try:
            with stack.client() as api:
                api.timeout = httpx.Timeout(120)
                time.sleep(3)
                mem0 = settled_mem_available_kb()
                stack0 = stack_rss_kb(stack)
                created = run_pool(
                    lambda _: create_running(api), n, args.create_concurrency, "sessions running"
                )
                sids = [str(sid) for sid, _ in created]  # type: ignore[misc]
                if not sids:
                    raise SystemExit("no session became running: see the errors above")
                create_ms = [float(ms) for _, ms in created]  # type: ignore[misc]
                note(f"{len(sids)} sessions running; idle {args.settle_s:.0f} s before measuring")
                time.sleep(args.settle_s)
                mem1 = settled_mem_available_kb()
                stack1 = stack_rss_kb(stack)
                idle = sandbox_memory(stack.state_dir, sids)
                note("waiting for a reaper cycle over every live session")
                cycle = wait_for_reaper_cycle(stack, len(reaper_cycles(stack)))

                targets = sids[:submits]
                barrier = threading.Barrier(len(targets)) if targets else None

                def submit(i: int) -> tuple[float, float, str]:
                    assert barrier is not None
                    barrier.wait()
                    t0 = time.perf_counter()
                    body = {"code": CODE, "language": "python"}
                    resp = call(api, "POST", f"/sessions/{targets[i]}/execute", "submit", json=body)
                    submit_ms = (time.perf_counter() - t0) * 1000
                    if resp.status_code not in (200, 201, 202):
                        raise RuntimeError(f"submit: {resp.status_code} {resp.text[:300]}")
                    eid = resp.json()["execution_id"]
                    # Polled gently: 100 pollers at 50 per second each would take the 2 cores from the stack.
                    status_url = f"/executions/{eid}/status"
                    while (status := call(api, "GET", status_url, "poll").json()["status"]) not in TERMINAL:
                        time.sleep(0.25)
                    if status != "completed":  # what went wrong, for the summary's reader
                        result = call(api, "GET", f"/executions/{eid}/result", "poll").json()
                        why = {k: result.get(k) for k in ("error_code", "error_message", "stderr")}
                        note(f"{eid} {status}: {json.dumps(why)[:600]}")
                    return submit_ms, (time.perf_counter() - t0) * 1000, status

                done = run_pool(submit, len(targets), max(1, len(targets)), "submits done")
                submit_ms = [float(s) for s, _, _ in done]  # type: ignore[misc]
                complete_ms = [float(c) for _, c, _ in done]  # type: ignore[misc]
                statuses = collections.Counter(str(st) for _, _, st in done)  # type: ignore[misc]
                time.sleep(args.settle_s)
                after = sandbox_memory(stack.state_dir, targets)

                note("terminating the sessions")
                run_pool(lambda i: api.delete(f"/sessions/{sids[i]}"), len(sids), 16, "sessions terminated")
        finally:
            note("stopping the stack")
            stop_stack(stack)
            if stack.log_path is not None:  # the state dir goes; its log is what explains a failure
                kept = Path(tempfile.gettempdir()) / "load_sessions_stack.log"
                shutil.copyfile(stack.log_path, kept)
                note(f"the stack's log: {kept}")

    print(f"\n{n} sessions asked, {len(sids)} running (process runtime, {os.cpu_count()} cores)\n")
    row("create -> running p50 / p95 ms", f"{statistics.median(create_ms):.0f} / {pct(create_ms, 95):.0f}")
    row(
        f"submit ({len(submit_ms)} concurrent) p50 / p95 ms",
        f"{statistics.median(submit_ms):.0f} / {pct(submit_ms, 95):.0f}" if submit_ms else "-",
    )
    row(
        "submit -> completed p50 / p95 ms",
        f"{statistics.median(complete_ms):.0f} / {pct(complete_ms, 95):.0f}" if complete_ms else "-",
    )
    row("  execution statuses", json.dumps(dict(statuses)))
    row("  429 answers retried (submit, status polls)", json.dumps(dict(THROTTLED)))
    aws_calls: dict[str, int] = cycle["aws_calls"]  # type: ignore[assignment]
    runtime_calls: dict[str, int] = cycle["runtime_calls"]  # type: ignore[assignment]
    print(f"\nsession reaper, one cycle at {len(sids)} live sessions ({cycle['ms']} ms)")
    items = int(cycle["items_read"])  # type: ignore[call-overload]
    row("  items read", str(items), f"goal <= {GOAL_REAPER_ITEMS}", items <= GOAL_REAPER_ITEMS)
    row("  AWS calls", f"{sum(aws_calls.values())} {json.dumps(aws_calls)}")
    calls = sum(runtime_calls.values())
    row(
        "  runtime calls",
        f"{calls} {json.dumps(runtime_calls)}",
        f"goal <= {GOAL_REAPER_RUNTIME_CALLS}",
        calls <= GOAL_REAPER_RUNTIME_CALLS,
    )
    row("  sandboxes asked about", str(cycle["sandboxes_asked"]))
    memory_rows("idle sessions, never ran code", idle, mem0 - mem1, len(sids), stack1 - stack0)
    memory_rows("idle sessions after one execution each", after, None, len(targets), 0)
    print(
        json.dumps(
            {
                "sessions": len(sids),
                "create_ms": {"p50": statistics.median(create_ms), "p95": pct(create_ms, 95)},
                "submit_ms": {
                    "p50": statistics.median(submit_ms) if submit_ms else None,
                    "p95": pct(submit_ms, 95),
                },
                "reaper_cycle": cycle,
                "idle_pss_mb": statistics.median(s["pss"] for s in idle["sessions"]) / 1024,  # type: ignore[attr-defined]
                "mem_available_drop_mb_per_session": (mem0 - mem1) / 1024 / max(1, len(sids)),
            }
        )
    )


if __name__ == "__main__":
    main()
