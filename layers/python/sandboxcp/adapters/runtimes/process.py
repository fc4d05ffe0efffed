"""The `process` runtime: one executor process per session, isolated with bubblewrap.

The sandbox gets: user namespace mapped to uid/gid 1000, every capability dropped, new pid/net/ipc/uts/
cgroup namespaces (no network unless the template allows it), a read-only view of /usr and the Python
prefix, a tmpfs /tmp, a private /workspace, and one directory (/run/sandbox) holding its own executor
socket. The control plane is reached through a unix socket bound into the sandbox, so no network is
needed for callbacks; the only credential inside is the session's own callback token.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.ports import SandboxHandle, SandboxSpec, SandboxState

SANDBOX_UID = 1000
_CP_SOCKET_IN_SANDBOX = "/run/controlplane.sock"
_EXECUTOR_MOUNT = "/opt/sandbox-executor"


def _executor_source_dir() -> Path:
    import sandbox_executor

    return Path(sandbox_executor.__file__).resolve().parent.parent


def _python_binary() -> tuple[str, str | None]:
    """The interpreter to run inside, and the prefix to bind read-only when it lives outside /usr."""
    prefix = os.path.realpath(sys.base_prefix)
    binary = os.path.join(prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")
    if not os.path.exists(binary):
        binary = os.path.realpath(sys.executable)
    return binary, (None if prefix.startswith("/usr") else prefix)


class ProcessRuntime:
    name = "process"
    _instances: ClassVar[dict[tuple[str, str], ProcessRuntime]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, state_dir: str, callback_base_url: str) -> None:
        self.state_dir = Path(state_dir)
        self.callback_base_url = callback_base_url
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        # bwrap --die-with-parent ties the sandbox to the *thread* that spawned it (PR_SET_PDEATHSIG), so
        # every sandbox is spawned from this one long-lived thread rather than from a request thread.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-spawner")

    @classmethod
    def shared(cls, state_dir: str, callback_base_url: str) -> ProcessRuntime:
        """One runtime per state dir per process: it owns the child processes it started."""
        with cls._lock:
            key = (state_dir, callback_base_url)
            if key not in cls._instances:
                cls._instances[key] = cls(state_dir, callback_base_url)
            return cls._instances[key]

    # -- paths -------------------------------------------------------------------------------------
    def _session_dir(self, session_id: str) -> Path:
        return self.state_dir / "sessions" / session_id

    def log_path(self, container_id: str) -> Path:
        return self._session_dir(_session_of(container_id)) / "executor.log"

    # -- Runtime interface ---------------------------------------------------------------------------
    def start(self, spec: SandboxSpec) -> SandboxHandle:
        if shutil.which("bwrap") is None:
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed on this host")
        container_id = f"proc-{spec.session_id}"
        sdir = self._session_dir(spec.session_id)
        for sub in ("run", "workspace", "etc"):
            (sdir / sub).mkdir(parents=True, exist_ok=True)
        # No chown: bwrap maps the launching user to uid 1000 inside, so the launcher's own directories are
        # the sandbox user's; a host uid 1000 would be unmapped ("nobody") in there.
        (sdir / "etc" / "passwd").write_text("sandbox:x:1000:1000:sandbox:/workspace:/bin/sh\n")
        (sdir / "etc" / "group").write_text("sandbox:x:1000:\n")
        argv = self._bwrap_argv(spec, sdir)
        env = self._sandbox_env(spec, container_id)
        log = open(sdir / "executor.log", "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            proc = self._spawner.submit(
                subprocess.Popen,
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            ).result()
        finally:
            log.close()
        self._procs[container_id] = proc
        (sdir / "pid").write_text(str(proc.pid))
        return SandboxHandle(
            container_id=container_id, node="local", executor_url=f"unix://{sdir / 'run' / 'executor.sock'}"
        )

    def destroy(self, container_id: str) -> None:
        proc = self._procs.pop(container_id, None)
        pid = proc.pid if proc else self._pid_from_file(container_id)
        if pid is not None:
            _kill_group(pid, proc)
        shutil.rmtree(self._session_dir(_session_of(container_id)) / "run", ignore_errors=True)

    def state(self, container_id: str) -> SandboxState:
        proc = self._procs.get(container_id)
        if proc is not None:
            return "running" if proc.poll() is None else "exited"
        pid = self._pid_from_file(container_id)
        if pid is None:
            return "missing"
        return "running" if _alive(pid) else "exited"

    def destroy_all(self) -> None:
        for container_id in list(self._procs):
            self.destroy(container_id)

    # -- helpers -------------------------------------------------------------------------------------
    def _pid_from_file(self, container_id: str) -> int | None:
        try:
            return int((self._session_dir(_session_of(container_id)) / "pid").read_text())
        except (OSError, ValueError):
            return None

    def _bwrap_argv(self, spec: SandboxSpec, sdir: Path) -> list[str]:
        python, prefix = _python_binary()
        argv = [
            "bwrap",
            "--unshare-all",
            *(["--share-net"] if spec.network_enabled else []),
            "--die-with-parent",
            "--new-session",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--cap-drop",
            "ALL",
            "--hostname",
            "sandbox",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--ro-bind-try",
            "/etc/ld.so.cache",
            "/etc/ld.so.cache",
            "--ro-bind-try",
            "/etc/alternatives",
            "/etc/alternatives",
            "--ro-bind-try",
            "/etc/localtime",
            "/etc/localtime",
            "--ro-bind",
            str(sdir / "etc" / "passwd"),
            "/etc/passwd",
            "--ro-bind",
            str(sdir / "etc" / "group"),
            "/etc/group",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            str(64 * 1024 * 1024),
            "--tmpfs",
            "/tmp",
            "--ro-bind",
            str(_executor_source_dir()),
            _EXECUTOR_MOUNT,
            "--bind",
            str(sdir / "workspace"),
            "/workspace",
            "--bind",
            str(sdir / "run"),
            "/run/sandbox",
        ]
        if prefix:
            argv += ["--ro-bind", prefix, prefix]
        if self.callback_base_url.startswith("unix://"):
            argv += ["--bind", self.callback_base_url.removeprefix("unix://"), _CP_SOCKET_IN_SANDBOX]
        argv += ["--chdir", "/workspace", "--", python, "-m", "sandbox_executor"]
        return argv

    def _sandbox_env(self, spec: SandboxSpec, container_id: str) -> dict[str, str]:
        # Passed through the environment, never on the command line (argv is world-readable in /proc).
        callback = self.callback_base_url
        if callback.startswith("unix://"):
            callback = f"unix://{_CP_SOCKET_IN_SANDBOX}"
        return {
            **spec.env,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/workspace",
            "LANG": "C.UTF-8",
            "PYTHONPATH": _EXECUTOR_MOUNT,
            "PYTHONDONTWRITEBYTECODE": "1",
            "SANDBOXCP_LISTEN": "unix:/run/sandbox/executor.sock",
            "SANDBOXCP_CALLBACK_URL": callback,
            "SANDBOXCP_CONTAINER_ID": container_id,
            "SANDBOXCP_WORKSPACE": "/workspace",
        }


def _session_of(container_id: str) -> str:
    return container_id.removeprefix("proc-")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


def _kill_group(pid: int, proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the sandbox's process group (the executor reports container_exited), then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    return
            elif not _alive(pid):
                return
            time.sleep(0.02)
