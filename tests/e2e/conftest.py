"""End-to-end: the real local stack (`sandboxcp local`) in a subprocess, with real sandboxes on the runtime
the `--runtime` option names (default process):

- `process`: bubblewrap sandboxes (scripts/setup.sh installs bubblewrap; without it the tests fail);
- `docker`: hardened containers on the local engine (started, and the images built, by the scripts);
- `ecs`: the ECS stand-in (sandboxcp.local.ecs_standin): Fargate-like tasks as real containers, reached
  over HTTP at the address DescribeTasks reports; they call the internal API over HTTP by URL.

By default every e2e module runs once per runtime (its tests are parametrized by the module-scoped
`stack_runtime` fixture: `test_x[ecs]`); `--runtime ecs` (or `--runtime process,docker`) narrows that. A
module whose subject does not depend on the runtime (the HTTP protocol, say) names the runtimes it needs
with `pytest.mark.runtimes("process")`. Stacks started by other suites (`start_stack` without a runtime)
run on `process`. More runtimes are one entry in RUNTIMES each."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sandboxcp.local.child_stack import ChildStackFailed, start_child_stack

REPO = Path(__file__).resolve().parents[2]
# Each runtime the suite runs on, and what it needs on the machine first (scripts run before the stack).
RUNTIMES: dict[str, tuple[str, ...]] = {
    "process": (),
    "docker": ("start_dockerd.sh", "build_images.sh"),
    "ecs": ("start_dockerd.sh", "build_images.sh"),
    "eks": ("start_dockerd.sh", "build_images.sh"),  # the Kubernetes API stand-in: Pods on Docker
    "docker-remote": ("start_dockerd.sh", "build_images.sh"),  # the engine over TCP + TLS
}


def _runtime_list(text: str) -> list[str]:
    names = list(RUNTIMES) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(RUNTIMES))
    if unknown or not names:
        raise pytest.UsageError(f"--runtime: {text!r}; choose 'all' or among {', '.join(RUNTIMES)}")
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One module-scoped stack per selected runtime for every test that uses `stack_runtime`."""
    if "stack_runtime" not in metafunc.fixturenames:
        return
    selected = _runtime_list(str(metafunc.config.getoption("--runtime", default="all")))
    marker = metafunc.definition.get_closest_marker("runtimes")
    wanted = [r for r in selected if marker is None or r in marker.args]
    if not wanted:  # the module needs a runtime the run left out: it runs on the first it needs
        assert marker is not None
        wanted = [str(marker.args[0])]
    metafunc.parametrize("stack_runtime", wanted, indirect=True, scope="module")


@pytest.fixture(scope="module")
def stack_runtime(request: pytest.FixtureRequest) -> str:
    """The runtime of the module's stack (a parameter from `pytest_generate_tests`)."""
    return str(request.param)


def prepare_runtime(runtime: str) -> None:
    """What `runtime` needs before a stack can start it (both scripts are idempotent and quick when done)."""
    for script in RUNTIMES[runtime]:
        try:
            done = subprocess.run(
                ["bash", str(REPO / "scripts" / script)], capture_output=True, text=True, timeout=1200
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"scripts/{script} did not finish within 1200 s")
        if done.returncode != 0:
            pytest.fail(
                f"scripts/{script} failed (exit {done.returncode}):\n"
                f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )


@dataclass
class Stack:
    url: str
    admin_key: str
    state_dir: Path
    process: subprocess.Popen[str]
    log_path: Path | None = None  # the stack's stdout and stderr
    runtime: str = "process"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1",
            timeout=30,
            headers={"Authorization": f"Bearer {key or self.admin_key}"},
        )


def start_stack(tmp: Path, runtime: str = "process") -> Stack:
    """A local stack on `runtime`."""
    if runtime == "process" and shutil.which("bwrap") is None:
        pytest.fail("bubblewrap (bwrap) is not installed: run scripts/setup.sh (apt-get install bubblewrap)")
    prepare_runtime(runtime)
    key = "sk_e2e_admin_key_for_tests_only"
    # Tests fire requests back to back, faster than the default 100 per second and tenant: a test about
    # something else must not meet that quota (tests/functional/test_quotas.py holds it).
    env = {**os.environ, "SANDBOXCP_API_KEY": key, "QUOTA_MAX_REQUESTS_PER_SECOND": "5000"}
    log_path = tmp / "stack.log"
    try:
        proc, url = start_child_stack(runtime, tmp / "state", env, log_path)
    except ChildStackFailed as err:
        pytest.fail(str(err))
    return Stack(url, key, tmp / "state", proc, log_path, runtime)


def stop_stack(stack: Stack) -> str:
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGINT)
        try:
            stack.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stack.process.kill()
    return stack.output()


@pytest.fixture(scope="module")
def stack(stack_runtime: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The local stack of a module, on each selected runtime in turn."""
    s = start_stack(tmp_path_factory.mktemp(f"stack-{stack_runtime}"), runtime=stack_runtime)
    yield s
    stop_stack(s)


def executor_pids(session_id: str) -> list[int]:
    """Executor processes of one session (found through their environment, as any host tool would)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"sandbox_executor" in cmdline and f"SANDBOXCP_SESSION_ID={session_id}".encode() in environ:
            pids.append(int(entry.name))
    return pids


def callback_token_of(session_id: str) -> str:
    """The session's callback token, as only the host's root can get it: read from the memory of the
    session's (non-dumpable) executor processes. Sandbox code, which shares their uid but has no
    CAP_SYS_PTRACE, cannot (tests/security/test_executor_boundary.py)."""
    pattern = re.compile(rb"cb_" + re.escape(session_id.encode()) + rb"\.[A-Za-z0-9_-]{20,}")
    for pid in executor_pids(session_id):
        with (
            contextlib.suppress(OSError),
            open(f"/proc/{pid}/maps") as maps,
            open(f"/proc/{pid}/mem", "rb") as mem,
        ):
            for line in maps:
                fields = line.split()
                if "rw" not in fields[1] or (len(fields) > 5 and fields[5].startswith("/")):
                    continue  # the token lives in writable anonymous memory (heap, arenas)
                start, end = (int(x, 16) for x in fields[0].split("-"))
                with contextlib.suppress(OSError, ValueError, OverflowError):
                    mem.seek(start)
                    found = pattern.search(mem.read(end - start))
                    if found:
                        return found.group().decode()
    raise AssertionError(f"no callback token in the memory of the executors of {session_id}")


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    """An admin client of the module's stack."""
    with stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def session(api: httpx.Client) -> Iterator[str]:
    """A running python-basic session with a 1 h lifetime, shared by a module's tests."""
    sid = str(
        api.post("/sessions", json={"template_id": "python-basic", "timeout": 3600}).json()["session_id"]
    )
    assert wait_for(lambda: api.get(f"/sessions/{sid}").json()["status"] == "running", timeout=30)
    yield sid
    api.delete(f"/sessions/{sid}")
