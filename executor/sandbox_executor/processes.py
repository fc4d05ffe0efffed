"""Background processes: commands that run beside executions until they exit, are signalled, or the
sandbox ends (a dev server, a watcher, a long job). Each is ``bash -c <cmd>`` in a session of its own,
started from the spawner thread; its stdout and stderr stream to the control plane as live output
(``/internal/processes/{id}/output``), the last post carrying its exit. Its stdin stays open for
``POST /processes/{id}/stdin`` until it exits or the caller sends EOF.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sandbox_executor import linux
from sandbox_executor.clock import utc_now_iso
from sandbox_executor.contexts import ContextError
from sandbox_executor.logs import log
from sandbox_executor.process import kill_group
from sandbox_executor.spawner import Spawner
from sandbox_executor.streaming import OutputStream, Post

MAX_LIVE_PROCESSES = 16
MAX_REMEMBERED = 256  # exited processes kept for GET, oldest dropped first
SIGNALS = ("SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
DRAIN_GRACE_S = 2.0
_CHUNK = 65536

# post(path, payload) -> True when the control plane has it (or refused it for good).
Poster = Callable[[str, dict[str, Any]], bool]


class BackgroundProcess:
    def __init__(self, process_id: str, proc: subprocess.Popen[bytes], post: Poster) -> None:
        self.process_id = process_id
        self.proc = proc
        self.started_at = utc_now_iso()
        self.ended_at: str | None = None
        self.exit_code: int | None = None
        self.signal: int | None = None
        self._post = post
        self._stdin_lock = threading.Lock()
        self._stdin_open = True
        path = f"/processes/{process_id}/output"
        post_chunks: Post = lambda chunks: post(path, {"chunks": chunks})  # noqa: E731
        self._stream = OutputStream(post_chunks)
        self._thread = threading.Thread(target=self._pump, name=f"process-{proc.pid}", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self.ended_at is None

    def describe(self) -> dict[str, Any]:
        return {
            "process_id": self.process_id,
            "pid": self.proc.pid,
            "status": "running" if self.running else "exited",
            "exit_code": self.exit_code,
            "signal": self.signal,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }

    def write_stdin(self, data: bytes, eof: bool) -> int:
        with self._stdin_lock:
            if not self.running or not self._stdin_open or self.proc.stdin is None:
                raise ContextError(
                    "ProcessExited", f"Process {self.process_id} has exited or closed its stdin"
                )
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
                if eof:
                    self._stdin_open = False
                    self.proc.stdin.close()
            except (BrokenPipeError, ValueError, OSError) as exc:
                self._stdin_open = False
                raise ContextError("ProcessExited", f"Process {self.process_id} closed its stdin") from exc
            return len(data)

    def send_signal(self, name: str) -> None:
        if not self.running:
            raise ContextError("ProcessExited", f"Process {self.process_id} has exited")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, getattr(signal, name))

    def kill(self) -> None:
        kill_group(self.proc.pid)

    def _pump(self) -> None:
        proc = self.proc
        assert proc.stdout is not None and proc.stderr is not None
        names = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
        sel = selectors.DefaultSelector()
        for fd in names:
            sel.register(fd, selectors.EVENT_READ)
        exited = threading.Event()

        def wait_exit() -> None:
            proc.wait()
            exited.set()

        threading.Thread(target=wait_exit, daemon=True).start()
        drain_until: float | None = None
        try:
            while sel.get_map():
                if drain_until is None and exited.is_set():
                    # What it left running in its group would hold the pipes open for ever.
                    kill_group(proc.pid)
                    drain_until = time.monotonic() + DRAIN_GRACE_S
                wait = 0.5 if drain_until is None else drain_until - time.monotonic()
                if wait <= 0:
                    break
                for key, _ in sel.select(wait):
                    chunk = os.read(key.fd, _CHUNK)
                    if chunk:
                        self._stream.feed(names[key.fd], chunk)
                    else:
                        sel.unregister(key.fd)
        finally:
            sel.close()
        proc.wait()
        code = proc.returncode
        self.exit_code, self.signal = (None, -code) if code < 0 else (code, None)
        self.ended_at = utc_now_iso()
        with self._stdin_lock:
            self._stdin_open = False
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        self._stream.close()
        exit_report = {"exit_code": self.exit_code, "signal": self.signal, "ended_at": self.ended_at}
        self._post(f"/processes/{self.process_id}/output", {"chunks": [], "exit": exit_report})
        log("process_exited", process_id=self.process_id, exit_code=self.exit_code, signal=self.signal)


class Processes:
    def __init__(
        self,
        spawner: Spawner,
        env: Callable[[], Mapping[str, str]],
        workspace: str,
        bash_bin: str,
        post: Poster,
    ) -> None:
        self._spawner = spawner
        self._env = env
        self._workspace = workspace
        self._bash_bin = bash_bin
        self._post = post
        self._lock = threading.Lock()
        self._procs: dict[str, BackgroundProcess] = {}

    def start(self, process_id: str, cmd: str, cwd: str | None, env: Mapping[str, str]) -> BackgroundProcess:
        directory = os.path.realpath(os.path.join(self._workspace, cwd)) if cwd else self._workspace
        if not os.path.isdir(directory):
            raise ContextError("ValidationError", f"cwd {cwd!r} is not a directory")
        bash = shutil.which(self._bash_bin, path=self._env().get("PATH")) or self._bash_bin
        with self._lock:
            if process_id in self._procs:
                raise ContextError("Conflict", f"Process {process_id} already exists")
            if sum(p.running for p in self._procs.values()) >= MAX_LIVE_PROCESSES:
                raise ContextError(
                    "TooManyProcesses", f"A sandbox runs at most {MAX_LIVE_PROCESSES} processes"
                )
            child_env = {**self._env(), **env}

            def spawn() -> subprocess.Popen[bytes]:
                return subprocess.Popen(
                    [bash, "-c", cmd],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=directory,
                    env=child_env,
                    start_new_session=True,
                    preexec_fn=linux.die_with_parent_hook(),
                )

            try:
                proc = self._spawner.call(spawn)
            except (OSError, ValueError) as exc:
                raise ContextError("StartFailed", f"{type(exc).__name__}: {exc}") from exc
            background = BackgroundProcess(process_id, proc, self._post)
            self._procs[process_id] = background
            self._forget_oldest()
        log("process_started", process_id=process_id, pid=proc.pid)
        return background

    def get(self, process_id: str) -> BackgroundProcess:
        with self._lock:
            found = self._procs.get(process_id)
        if found is None:
            raise ContextError("NotFound", f"Process {process_id} not found")
        return found

    def list(self) -> list[BackgroundProcess]:
        with self._lock:
            return list(self._procs.values())

    def kill_all(self) -> None:
        for background in self.list():
            if background.running:
                background.kill()

    def _forget_oldest(self) -> None:
        exited = [pid for pid, p in self._procs.items() if not p.running]
        for process_id in exited[: max(0, len(self._procs) - MAX_REMEMBERED)]:
            del self._procs[process_id]
