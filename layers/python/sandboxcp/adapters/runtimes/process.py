"""The `process` runtime: one executor process per session, isolated with bubblewrap.

The sandbox gets: user namespace mapped to uid/gid 1000, every capability dropped, new pid/net/ipc/uts/
cgroup namespaces (no network unless the template allows it), a read-only root with a read-only view of
/usr and the Python prefix, a tmpfs /tmp (and /dev/shm), and a private /workspace: an ext4 image of the
session's disk size (disk.py), so a session cannot fill the host's disk. The control plane is reached
through a unix socket bound into the sandbox, so no network is needed for callbacks.

The trust boundary (docs/security.md): the executor's listening socket is made *here*, in the session's
host directory (never mounted into the sandbox), and handed to the executor as an inherited file
descriptor, so no path the control plane connects to lies where sandbox code can write. The executor
is PID 1 of the sandbox (`--as-pid-1`: no bubblewrap init holding our log file or environment), makes
itself non-dumpable, and gets its callback token over that socket after start (the launch binds it).

Limits (pids, memory without swap, CPU) come from a per-sandbox cgroup created under the launcher's own
(cgroup v1, or v2 when the launcher sits at the root). rlimits cannot do this job: RLIMIT_NPROC is never
enforced for processes whose real uid is root outside the user namespace - and the sandbox's uid 1000
*is* the launching root outside - and RLIMIT_AS breaks runtimes that reserve address space (V8). Where
no cgroup can be made, the sandbox runs without these limits and a warning is logged.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from sandboxcp.adapters.runtimes import disk, seccomp, sockets, spare_disks
from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.log_lines import lines_since
from sandboxcp.domain.ports import ManagedSandbox, SandboxHandle, SandboxSpec, SandboxState
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.usage import ContainerUsage

log = logging.getLogger(__name__)

SANDBOX_UID = 1000
_CP_SOCKET_IN_SANDBOX = "/run/controlplane.sock"
_EXECUTOR_MOUNT = "/opt/sandbox-executor"


def _executor_source_dir() -> Path:
    import sandbox_executor

    return Path(sandbox_executor.__file__).resolve().parent.parent


@functools.cache
def _compile_executor() -> None:
    """Write the executor's bytecode next to its source, once per process. Sandboxes import it read-only
    and never write bytecode: without it every sandbox compiled each module it imports at every start
    (tens of ms of CPU, and about 1 MB more of each idle sandbox's memory). Timestamped like Python's
    own, so a changed source is still compiled afresh; a source dir we cannot write is left as it is."""
    import compileall

    with contextlib.suppress(OSError):
        compileall.compile_dir(str(_executor_source_dir() / "sandbox_executor"), quiet=2)


def _python_binary() -> tuple[str, str | None]:
    """The interpreter to run inside, and the prefix to bind read-only when it lives outside /usr."""
    prefix = os.path.realpath(sys.base_prefix)
    binary = os.path.join(prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")
    if not os.path.exists(binary):
        binary = os.path.realpath(sys.executable)
    return binary, (None if prefix.startswith("/usr") else prefix)


class ProcessRuntime:
    name = "process"
    default_node = "local"
    addresses_at_start = True  # the executor's socket (ports.Runtime)
    _instances: ClassVar[dict[tuple[str, str], ProcessRuntime]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, state_dir: str, callback_base_url: str) -> None:
        self.state_dir = Path(state_dir)
        self.callback_base_url = callback_base_url
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        # bwrap --die-with-parent ties the sandbox to the *thread* that spawned it (PR_SET_PDEATHSIG), so
        # every sandbox is spawned from this one long-lived thread rather than from a request thread.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-spawner")
        self._cgroups = SandboxCgroups()
        _compile_executor()

    @classmethod
    def shared(cls, state_dir: str, callback_base_url: str) -> ProcessRuntime:
        """One runtime per state dir per process: it owns the child processes it started."""
        with cls._lock:
            key = (state_dir, callback_base_url)
            if key not in cls._instances:
                cls._instances[key] = cls(state_dir, callback_base_url)
            return cls._instances[key]

    # -- paths -------------------------------------------------------------------------------------
    def _socket_path(self, session_id: str) -> Path:
        """The executor's socket: in a short root-only dir (sockets.py), never visible to sandboxes."""
        return sockets.socket_dir(self.state_dir) / f"{session_id}.sock"

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
        # Root outside is uid 1000 inside (bwrap's user namespace): the workspace is the sandbox's.
        size = spec.resources.disk_mb
        disk_ready = disk.available() and spare_disks.take(self.state_dir, sdir, size, (0, 0))
        (sdir / "etc").mkdir(parents=True, exist_ok=True)
        os.chmod(sdir, 0o700)
        # No chown: bwrap maps the launching user to uid 1000 inside, so the launcher's own directories are
        # the sandbox user's; a host uid 1000 would be unmapped ("nobody") in there.
        (sdir / "etc" / "passwd").write_text("sandbox:x:1000:1000:sandbox:/workspace:/bin/sh\n")
        (sdir / "etc" / "group").write_text("sandbox:x:1000:\n")
        workspace = sdir / disk.MOUNT_POINT if disk_ready else self._workspace(sdir, spec)
        try:
            filter_fd = seccomp.filter_fd()  # fails closed: no sandbox without the filter
        except SandboxUnavailable:
            disk.remove(sdir)
            raise
        try:
            listener = _listen(self._socket_path(spec.session_id))
        except OSError as exc:
            os.close(filter_fd)
            disk.remove(sdir)
            raise SandboxUnavailable(f"Cannot make the executor's socket: {exc}") from None
        argv = self._bwrap_argv(spec, sdir, filter_fd, workspace)
        procs = self._cgroups.create(spec.session_id, spec.resources)
        if procs:
            # Joins the cgroups, then becomes bwrap (same pid: --die-with-parent still holds). Fails closed.
            argv = ["/bin/sh", "-c", _JOIN_CGROUPS, "sandboxcp-cgroup", *procs, "--", *argv]
        env = self._sandbox_env(spec, container_id, listener.fileno())
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
                pass_fds=(listener.fileno(), filter_fd),
            ).result()
        except OSError as exc:
            disk.remove(sdir)
            self._cgroups.remove(spec.session_id)
            raise SandboxUnavailable(f"Cannot start the sandbox: {exc}") from None
        finally:
            log.close()
            listener.close()  # the sandbox holds it now
            os.close(filter_fd)
        self._procs[container_id] = proc
        (sdir / "pid").write_text(str(proc.pid))
        return SandboxHandle(
            container_id=container_id,
            node="local",
            executor_url=f"unix://{self._socket_path(spec.session_id)}",
        )

    def destroy(self, container_id: str) -> None:
        proc = self._procs.pop(container_id, None)
        pid = proc.pid if proc else self._pid_from_file(container_id)
        if pid is not None:
            _kill_group(pid, proc)
        with contextlib.suppress(FileNotFoundError):
            self._socket_path(_session_of(container_id)).unlink()
        disk.remove(self._session_dir(_session_of(container_id)))
        self._cgroups.remove(_session_of(container_id))

    def states(self, container_ids: Sequence[str]) -> dict[str, SandboxState]:
        """Local and cheap: one look per sandbox."""
        return {container_id: self.state(container_id) for container_id in container_ids}

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

    def executor_url(self, container_id: str) -> str | None:
        sock = self._socket_path(_session_of(container_id))
        return f"unix://{sock}" if sock.is_socket() else None

    def ping(self) -> bool:
        """The host can run sandboxes: bubblewrap is installed and the state directory is writable."""
        if shutil.which("bwrap") is None:
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return os.access(self.state_dir, os.W_OK)

    # -- operations: container logs and the orphan reaper's inventory (ops-api) ------------------------
    _LOG_BLOCK = 64 * 1024

    def logs(self, container_id: str, tail: int = 100, since: datetime | None = None) -> list[str]:
        """The last `tail` lines of the session's executor.log (the executor's own log lines and anything
        the sandbox wrote to stdout/stderr), read backwards from the end so a long log costs only its tail.
        With `since`, only lines stamped at or after it; an unstamped line (a traceback) goes with the
        stamped line before it."""
        if tail <= 0:
            return []
        try:
            f = open(self.log_path(container_id), "rb")  # noqa: SIM115 - closed below
        except OSError:
            return []
        with f:
            end = f.seek(0, os.SEEK_END)
            data, pos = b"", end
            # Stop once `tail` full lines are in; with `since` read further, up to 8 MB from the end.
            budget = end if since is None else min(end, 8 * 1024 * 1024)
            while pos > 0 and data.count(b"\n") <= tail and end - pos < budget:
                step = min(self._LOG_BLOCK, pos)
                pos -= step
                f.seek(pos)
                data = f.read(step) + data
        lines = data.decode("utf-8", errors="replace").splitlines()
        if pos > 0 and lines:
            lines = lines[1:]  # the first line read may be cut
        if since is not None:
            lines = lines_since(lines, since)
        return lines[-tail:]

    def list_managed(self) -> list[ManagedSandbox]:
        """Sandboxes this runtime started that are still alive (its own children, and live executors found
        through the pid files of the state directory, e.g. after a restart of the control plane)."""
        out: dict[str, ManagedSandbox] = {}
        for container_id, proc in list(self._procs.items()):
            state: SandboxState = "running" if proc.poll() is None else "exited"
            out[container_id] = ManagedSandbox(container_id, _session_of(container_id), state)
        sessions_dir = self.state_dir / "sessions"
        for pid_file in sessions_dir.glob("*/pid") if sessions_dir.is_dir() else ():
            container_id = f"proc-{pid_file.parent.name}"
            if container_id in out:
                continue
            pid = self._pid_from_file(container_id)
            if pid is not None and _alive(pid) and _runs_sandbox(pid, pid_file.parent):
                out[container_id] = ManagedSandbox(container_id, pid_file.parent.name, "running")
        return list(out.values())

    # -- usage (seed US5) ------------------------------------------------------------------------------
    def usage(self, container_ids: Iterable[str]) -> dict[str, ContainerUsage]:
        """CPU, memory and /workspace use of live sandboxes: the sandbox's cgroup where it has one (memory
        without page cache; its processes' CPU time from /proc), else the processes of its session;
        CPU sampled twice 100 ms apart for all of them together. Limits the runtime does not know (no
        cgroup) are left to the caller."""
        live = {c: pid for c in container_ids if (pid := self._live_pid(c)) is not None}
        if not live:
            return {}
        first = {c: _cpu_ticks(self._pids(c, pid)) for c, pid in live.items()}
        t0 = time.monotonic()
        time.sleep(0.1)
        hz = os.sysconf("SC_CLK_TCK")
        out: dict[str, ContainerUsage] = {}
        for c, pid in live.items():
            pids = self._pids(c, pid)
            elapsed = time.monotonic() - t0
            cores = max(0, _cpu_ticks(pids) - first[c]) / hz / elapsed
            memory, memory_limit = self._cgroups.memory(_session_of(c))
            if memory is None:
                memory = sum(_rss_bytes(p) for p in pids)
            mount = self._session_dir(_session_of(c)) / disk.MOUNT_POINT
            space = disk.space(str(mount) if os.path.ismount(mount) else f"/proc/{pid}/root/workspace")
            out[c] = ContainerUsage.of(
                cpu_cores_used=cores,
                cpu_limit=self._cgroups.cpu_limit(_session_of(c)) or 0.0,
                memory_bytes=memory,
                memory_limit_bytes=memory_limit or 0,
                disk_bytes=space[0] if space else None,
                disk_limit_bytes=space[1] if space else None,
            )
        return out

    def _live_pid(self, container_id: str) -> int | None:
        proc = self._procs.get(container_id)
        if proc is not None:
            return proc.pid if proc.poll() is None else None
        pid = self._pid_from_file(container_id)
        return pid if pid is not None and _alive(pid) else None

    def _pids(self, container_id: str, pid: int) -> list[int]:
        in_cgroup = self._cgroups.pids(_session_of(container_id))
        return in_cgroup if in_cgroup else _session_pids(pid)

    # -- helpers -------------------------------------------------------------------------------------
    def _pid_from_file(self, container_id: str) -> int | None:
        try:
            return int((self._session_dir(_session_of(container_id)) / "pid").read_text())
        except (OSError, ValueError):
            return None

    def _workspace(self, sdir: Path, spec: SandboxSpec) -> Path | None:
        """The session's disk-limited workspace (disk.py); None: a tmpfs of that size instead (no root or
        no loop devices: the limit then also counts against memory)."""
        if not disk.available():
            self._warn_tmpfs("loop-mounted workspaces need root, loop devices and mkfs.ext4")
            return None
        try:
            return disk.create(sdir, spec.resources.disk_mb, owner=(0, 0))
        except disk.DiskUnavailable as exc:
            raise SandboxUnavailable(f"Cannot make the session's workspace: {exc}") from None

    _tmpfs_warned = False

    @classmethod
    def _warn_tmpfs(cls, reason: str) -> None:
        if not cls._tmpfs_warned:
            cls._tmpfs_warned = True
            log.warning("workspaces are tmpfs (their size counts against memory): %s", reason)

    def _bwrap_argv(self, spec: SandboxSpec, sdir: Path, filter_fd: int, workspace: Path | None) -> list[str]:
        python, prefix = _python_binary()
        argv = [
            "bwrap",
            "--unshare-all",
            *(["--share-net"] if spec.network_enabled else []),
            "--unshare-user",  # explicit: --disable-userns needs it
            "--disable-userns",
            "--seccomp",
            str(filter_fd),
            "--as-pid-1",
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
            "/dev/shm",
            "--size",
            str(64 * 1024 * 1024),
            "--tmpfs",
            "/tmp",
            "--ro-bind",
            str(_executor_source_dir()),
            _EXECUTOR_MOUNT,
        ]
        if workspace is not None:
            argv += ["--bind", str(workspace), "/workspace"]
        else:
            argv += ["--size", str(spec.resources.disk_mb * 1024 * 1024), "--tmpfs", "/workspace"]
        if prefix:
            argv += ["--ro-bind", prefix, prefix]
        if self.callback_base_url.startswith("unix://"):
            argv += ["--bind", self.callback_base_url.removeprefix("unix://"), _CP_SOCKET_IN_SANDBOX]
        # Nothing outside /workspace, /tmp, /dev/shm and the socket dir is writable: the root tmpfs bwrap
        # builds, and the /dev it populates, would otherwise belong to the sandbox user.
        argv += ["--remount-ro", "/dev", "--remount-ro", "/"]
        argv += ["--chdir", "/workspace", "--", python, "-S", "-P", "-m", "sandbox_executor"]
        return argv

    def _sandbox_env(self, spec: SandboxSpec, container_id: str, listen_fd: int) -> dict[str, str]:
        # No callback token here: the launch hands it over the executor's socket after start.
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
            "SANDBOXCP_LISTEN": f"fd:{listen_fd}",
            "SANDBOXCP_CALLBACK_URL": callback,
            "SANDBOXCP_CONTAINER_ID": container_id,
            "SANDBOXCP_WORKSPACE": "/workspace",
        }


def _listen(path: Path) -> socket.socket:
    """The executor's listening socket, bound by the control plane (0600, root's: only we connect)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


def _runs_sandbox(pid: int, session_dir: Path) -> bool:
    """Whether `pid` is still this session's sandbox (its bwrap binds the session directory), not a
    process that reused the pid of one long gone: only then may the orphan reaper kill its group."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f"{session_dir}/".encode() in f.read()
    except OSError:
        return False


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


_JOIN_CGROUPS = (
    'while [ "$1" != -- ]; do echo $$ > "$1" || { echo "cannot join cgroup $1" >&2; exit 125; }; shift; done;'
    ' shift; exec "$@"'
)
_CGROUP_PARENT = "sandboxcp"


class SandboxCgroups:
    """One cgroup per sandbox for its pids, memory (no swap) and CPU limits, nested under the launcher's
    own cgroup. cgroup v1 (pids, memory, cpu hierarchies) or v2 (only when the launcher is in the root
    cgroup: v2 forbids enabling controllers for children of a cgroup that holds processes)."""

    def __init__(self, mountinfo: str = "/proc/self/mountinfo", own: str = "/proc/self/cgroup") -> None:
        self._v1: dict[str, Path] = {}  # controller -> the launcher's cgroup dir in that hierarchy
        self._v2: Path | None = None
        self._warned = False
        try:
            mounts = Path(mountinfo).read_text().splitlines()
            paths = Path(own).read_text().splitlines()
        except OSError:
            return
        own_v1: dict[str, str] = {}
        own_v2 = ""
        for line in paths:
            _, controllers, path = line.split(":", 2)
            if controllers:
                for c in controllers.split(","):
                    own_v1[c] = path
            else:
                own_v2 = path
        for line in mounts:
            fields = line.split()
            sep = fields.index("-")
            root, mount_point, fstype, superopts = fields[3], fields[4], fields[sep + 1], fields[sep + 3]
            if fstype == "cgroup":
                for c in ("pids", "memory", "cpu"):
                    if c in superopts.split(",") and c in own_v1:
                        rel = own_v1[c][len(root) :] if own_v1[c].startswith(root) else own_v1[c]
                        self._v1[c] = Path(mount_point + "/" + rel.strip("/")).resolve()
            elif fstype == "cgroup2" and own_v2 == "/" and root == "/":
                self._v2 = Path(mount_point)
        if self._v1:
            self._v2 = None  # a hybrid setup: the v1 hierarchies hold the controllers

    def create(self, session_id: str, res: ResourceLimit) -> list[str]:
        """Make the sandbox's cgroups with their limits; returns the cgroup.procs files to join."""
        try:
            if self._v1:
                return self._create_v1(session_id, res)
            if self._v2 is not None:
                return self._create_v2(session_id, res)
        except OSError as exc:
            self.remove(session_id)
            self._warn(f"cannot create the sandbox's cgroup ({exc})")
            return []
        self._warn("no writable cgroup hierarchy")
        return []

    def _create_v1(self, session_id: str, res: ResourceLimit) -> list[str]:
        procs = []
        memory = res.memory_mb * 1024 * 1024
        for controller, base in self._v1.items():
            d = base / _CGROUP_PARENT / session_id
            d.mkdir(parents=True, exist_ok=True)
            if controller == "pids":
                (d / "pids.max").write_text(str(res.max_processes))
            elif controller == "memory":
                (d / "memory.limit_in_bytes").write_text(str(memory))
                with contextlib.suppress(FileNotFoundError):  # swap accounting off: no swap limit to set
                    (d / "memory.memsw.limit_in_bytes").write_text(str(memory))
            elif controller == "cpu":
                with contextlib.suppress(FileNotFoundError):
                    (d / "cpu.cfs_period_us").write_text("100000")
                    (d / "cpu.cfs_quota_us").write_text(str(int(res.cpu_cores * 100000)))
            procs.append(str(d / "cgroup.procs"))
        return procs

    def _create_v2(self, session_id: str, res: ResourceLimit) -> list[str]:
        assert self._v2 is not None
        parent = self._v2 / _CGROUP_PARENT
        parent.mkdir(exist_ok=True)
        (self._v2 / "cgroup.subtree_control").write_text("+pids +memory +cpu")
        (parent / "cgroup.subtree_control").write_text("+pids +memory +cpu")
        d = parent / session_id
        d.mkdir(exist_ok=True)
        (d / "pids.max").write_text(str(res.max_processes))
        (d / "memory.max").write_text(str(res.memory_mb * 1024 * 1024))
        with contextlib.suppress(FileNotFoundError):
            (d / "memory.swap.max").write_text("0")
        (d / "cpu.max").write_text(f"{int(res.cpu_cores * 100000)} 100000")
        return [str(d / "cgroup.procs")]

    def _dir(self, controller: str, session_id: str) -> Path | None:
        base = self._v1.get(controller) if self._v1 else self._v2
        d = base / _CGROUP_PARENT / session_id if base is not None else None
        return d if d is not None and d.is_dir() else None

    def pids(self, session_id: str) -> list[int]:
        d = self._dir("memory", session_id) or self._dir("pids", session_id)
        try:
            return [int(x) for x in (d / "cgroup.procs").read_text().split()] if d else []
        except (OSError, ValueError):
            return []

    def memory(self, session_id: str) -> tuple[int | None, int | None]:
        """(bytes in use without reclaimable page cache, limit); (None, None) without a memory cgroup."""
        d = self._dir("memory", session_id)
        if d is None:
            return None, None
        v1 = (d / "memory.usage_in_bytes").is_file()
        try:
            used = int((d / ("memory.usage_in_bytes" if v1 else "memory.current")).read_text())
            raw_limit = (d / ("memory.limit_in_bytes" if v1 else "memory.max")).read_text().strip()
            stat = (d / "memory.stat").read_text()
        except (OSError, ValueError):
            return None, None
        inactive = "total_inactive_file" if v1 else "inactive_file"
        for line in stat.splitlines():
            key, _, value = line.partition(" ")
            if key == inactive and value.strip().isdigit():
                used = max(0, used - int(value))
        limit = int(raw_limit) if raw_limit.isdigit() and int(raw_limit) < 1 << 60 else None
        return used, limit

    def cpu_limit(self, session_id: str) -> float | None:
        d = self._dir("cpu", session_id)
        try:
            if d is not None and (d / "cpu.cfs_quota_us").is_file():
                quota = int((d / "cpu.cfs_quota_us").read_text())
                period = int((d / "cpu.cfs_period_us").read_text())
                return quota / period if quota > 0 and period > 0 else None
            if d is not None and (d / "cpu.max").is_file():
                quota_s, _, period_s = (d / "cpu.max").read_text().partition(" ")
                return int(quota_s) / int(period_s) if quota_s.isdigit() and int(period_s) > 0 else None
        except (OSError, ValueError):
            return None
        return None

    def remove(self, session_id: str) -> None:
        """Remove the sandbox's cgroups once its processes are gone (an exiting task may linger briefly)."""
        bases = list(self._v1.values()) + ([self._v2] if self._v2 is not None else [])
        for base in bases:
            d = base / _CGROUP_PARENT / session_id
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)

    def _warn(self, reason: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("process sandboxes run without pids/memory/cpu limits: %s", reason)


def _cpu_ticks(pids: Iterable[int]) -> int:
    """utime + stime of the processes (clock ticks); a process that is gone counts 0."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return total


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _session_pids(leader: int) -> list[int]:
    """Processes of the session the sandbox's launcher leads (start_new_session) - no cgroup to ask."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 3 and fields[3] == str(leader):
            out.append(int(entry))
    return out
