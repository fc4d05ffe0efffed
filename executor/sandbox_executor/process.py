"""Run one child process with a deadline, bounded capture and rusage accounting.

The child gets its own session (``start_new_session=True``), so its pid is also its process
group id and a timeout can SIGKILL the whole tree. It also asks for SIGKILL when the thread that
spawned it exits (``PR_SET_PDEATHSIG``), so user code never outlives a killed agent: call
``run_process`` from a long-lived thread (the execution worker), never from a short-lived one.

A single thread multiplexes stdin, stdout, stderr and the return-value pipe with ``selectors``,
so no pipe can fill up and deadlock the child; a second thread blocks in ``os.wait4`` to get the
exit status and the child's rusage.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sandbox_executor import linux
from sandbox_executor.capture import BoundedBuffer

OUTPUT_LIMIT = 1 << 20  # bytes of stdout and of stderr kept (1 MiB each)
RETURN_LIMIT = 4 << 20  # bytes of return value kept; more fails the execution
# After the child exits (or is killed), how long leftovers that escaped the process group may hold
# our pipes open before we stop reading.
DRAIN_GRACE_S = 2.0
# After a SIGKILL, how long to wait for the kernel to reap before we report and move on.
KILL_GRACE_S = 10.0
_CHUNK = 65536
# Called with ("stdout" | "stderr", bytes) for every read of the child's output (live output).
OnOutput = Callable[[str, bytes], None]


class SpawnError(RuntimeError):
    """The child could not be started (missing binary, E2BIG, bad cwd, NUL in argv...)."""


class ChildRegistry:
    """Process groups currently running, so SIGTERM to the executor can kill them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pgids: set[int] = set()

    def add(self, pgid: int) -> None:
        with self._lock:
            self._pgids.add(pgid)

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._pgids.discard(pgid)

    def kill_all(self) -> int:
        with self._lock:
            pgids = list(self._pgids)
        for pgid in pgids:
            kill_group(pgid)
        return len(pgids)


def _reset_own_peak_rss() -> None:
    """Reset this process's peak-RSS mark (Linux >= 4.0), best effort.

    The child's ru_maxrss starts at the RSS high-water mark of the memory image it exec'd from,
    and with vfork (what subprocess uses without a preexec_fn, i.e. when prctl is unavailable) that
    is the executor's own *historical* peak (a fork starts from the current RSS instead). Resetting
    it before each spawn brings that floor down to the executor's current RSS, so one run with
    big output does not inflate the peak_memory_mb of every later run.
    """
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pgid, signal.SIGKILL)


@dataclass
class ProcessResult:
    exit_code: int | None  # os.waitstatus_to_exitcode: negative means killed by that signal
    timed_out: bool
    stdout: BoundedBuffer
    stderr: BoundedBuffer
    ret: BoundedBuffer | None
    duration_s: float
    rusage: resource.struct_rusage | None


class _Reaper(threading.Thread):
    """Blocks in wait4 so the pump loop never has to poll for the child's exit."""

    def __init__(self, pid: int) -> None:
        super().__init__(name=f"reaper-{pid}", daemon=True)
        self.pid = pid
        self.done = threading.Event()
        self.status: int | None = None
        self.rusage: resource.struct_rusage | None = None
        self.finished_at = 0.0

    def run(self) -> None:
        try:
            _, self.status, self.rusage = os.wait4(self.pid, 0)
        except ChildProcessError:
            pass
        finally:
            self.finished_at = time.monotonic()
            self.done.set()


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    stdin_data: bytes,
    timeout_s: float,
    return_pipe: bool,
    registry: ChildRegistry,
    on_output: OnOutput | None = None,
) -> ProcessResult:
    """Run ``argv`` to completion or ``timeout_s``; raises SpawnError if it cannot be started.

    With ``return_pipe`` the write end of an extra pipe is passed to the child and its fd number
    appended to ``argv``; what the child writes there is returned in ``ret``.
    """
    ret_r = ret_w = -1
    if return_pipe:
        ret_r, ret_w = os.pipe()
        argv = [*argv, str(ret_w)]
    _reset_own_peak_rss()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            pass_fds=(ret_w,) if return_pipe else (),
            preexec_fn=linux.die_with_parent_hook(),
        )
    except (OSError, ValueError) as exc:
        if return_pipe:
            os.close(ret_r)
        raise SpawnError(f"{type(exc).__name__}: {exc}") from exc
    except BaseException:
        if return_pipe:
            os.close(ret_r)
        raise
    finally:
        if return_pipe:
            os.close(ret_w)  # only the child may hold the write end, or we would never see EOF
    started = time.monotonic()  # before the reaper exists: a quick child may be reaped at once
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    reaper = _Reaper(proc.pid)
    reaper.start()
    try:
        pipes = (proc.stdin.fileno(), proc.stdout.fileno(), proc.stderr.fileno(), ret_r)
        result = supervise(
            Child(proc.pid, *pipes, reaper, started),
            stdin_data=stdin_data,
            timeout_s=timeout_s,
            registry=registry,
            on_output=on_output,
        )
    finally:
        if return_pipe:
            os.close(ret_r)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()
    # We reaped the child ourselves; tell Popen so it never waits on (or warns about) the pid.
    proc.returncode = result.exit_code if result.exit_code is not None else -1
    return result


class ExitWaiter(Protocol):
    """Learns how a child ended: ``done`` is set once ``status`` (a wait status) and ``rusage`` are known
    (status None: never learnt, e.g. whoever reaped it vanished)."""

    done: threading.Event
    status: int | None
    rusage: resource.struct_rusage | None
    finished_at: float


@dataclass
class Child:
    """A started child seen through its pipes (our ends) and whatever learns its exit."""

    pid: int  # also its process group id (it runs in a session of its own)
    stdin_fd: int
    stdout_fd: int
    stderr_fd: int
    ret_fd: int  # -1: no return-value pipe
    waiter: ExitWaiter
    started: float  # time.monotonic() when it was started, taken before anything can learn its exit


def supervise(
    child: Child,
    *,
    stdin_data: bytes,
    timeout_s: float,
    registry: ChildRegistry,
    on_output: OnOutput | None = None,
) -> ProcessResult:
    """Feed, drain and time out ``child`` until it is gone; the caller closes the fds afterwards."""
    started = child.started
    registry.add(child.pid)
    stdout, stderr = BoundedBuffer(OUTPUT_LIMIT), BoundedBuffer(OUTPUT_LIMIT)
    ret = BoundedBuffer(RETURN_LIMIT) if child.ret_fd >= 0 else None
    try:
        timed_out = _pump(child, stdin_data, stdout, stderr, ret, started + timeout_s, on_output)
    finally:
        if not child.waiter.done.is_set():
            kill_group(child.pid)  # the pump failed or gave up: never leave user code running unsupervised
        registry.discard(child.pid)
    status = child.waiter.status
    exit_code = os.waitstatus_to_exitcode(status) if status is not None else None
    end = child.waiter.finished_at if child.waiter.done.is_set() else time.monotonic()
    duration = max(0.0, end - started)  # never negative, whatever the clocks of two threads say
    return ProcessResult(exit_code, timed_out, stdout, stderr, ret, duration, child.waiter.rusage)


def _pump(
    child: Child,
    stdin_data: bytes,
    stdout: BoundedBuffer,
    stderr: BoundedBuffer,
    ret: BoundedBuffer | None,
    deadline: float,
    on_output: OnOutput | None = None,
) -> bool:
    """Feed stdin and drain the output pipes until the child is gone; True if it timed out."""
    reaper = child.waiter
    sel = selectors.DefaultSelector()
    readers = {child.stdout_fd: (stdout, "stdout"), child.stderr_fd: (stderr, "stderr")}
    if ret is not None:
        readers[child.ret_fd] = (ret, "")
    for fd, reader in readers.items():
        sel.register(fd, selectors.EVENT_READ, reader)
    stdin_fd = child.stdin_fd
    pending = memoryview(stdin_data)
    stdin_open = [True]
    if pending:
        os.set_blocking(stdin_fd, False)  # a child that never reads stdin must not block us
        sel.register(stdin_fd, selectors.EVENT_WRITE, None)
    else:
        _close_stdin(child, stdin_open)
    timed_out = False
    stop_at: float | None = None  # set once the child is gone: drain leftovers until then
    try:
        while True:
            now = time.monotonic()
            if stop_at is None and reaper.done.is_set():
                # Leftover background processes of the group would keep our pipes open; the
                # invocation is over, so they go too (like a Lambda sandbox being frozen).
                kill_group(child.pid)
                stop_at = now + DRAIN_GRACE_S
            elif stop_at is None and not timed_out and now >= deadline:
                timed_out = True
                kill_group(child.pid)
                if not reaper.done.is_set():
                    # The leader may have left its group. Not Popen.kill(): it polls, and could
                    # reap the child before our wait4 and lose its rusage.
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(child.pid, signal.SIGKILL)
            elif timed_out and stop_at is None and now >= deadline + KILL_GRACE_S:
                break  # unkillable (e.g. stuck in the kernel): report what we have
            open_readers = [k for k in sel.get_map().values() if k.data is not None]
            if stop_at is not None and (not open_readers or now >= stop_at):
                break
            if stop_at is not None:
                wait = stop_at - now
            elif timed_out:
                wait = 0.1
            else:
                wait = max(0.0, min(deadline - now, 0.5))
            if not sel.get_map():
                reaper.done.wait(wait)
                continue
            for key, _ in sel.select(min(wait, 0.5)):
                if key.data is None:
                    pending = _write_stdin(sel, child, stdin_open, pending)
                    continue
                chunk = os.read(key.fd, _CHUNK)
                if chunk:
                    buf, name = key.data
                    buf.feed(chunk)
                    if on_output is not None and name:
                        on_output(name, chunk)
                else:
                    sel.unregister(key.fd)
    finally:
        sel.close()
        _close_stdin(child, stdin_open)
    return timed_out


def _close_stdin(child: Child, stdin_open: list[bool]) -> None:
    """EOF for the child. The fd's owner (a file object, or the caller) closes it later, so its
    number must stay ours: dup2 puts /dev/null in its place, which closes the pipe atomically."""
    if stdin_open[0]:
        stdin_open[0] = False
        with contextlib.suppress(OSError):
            os.dup2(_devnull(), child.stdin_fd)


_DEVNULL: list[int] = []


def _devnull() -> int:
    if not _DEVNULL:
        _DEVNULL.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    return _DEVNULL[0]


def _write_stdin(
    sel: selectors.BaseSelector, child: Child, stdin_open: list[bool], pending: memoryview
) -> memoryview:
    try:
        written = os.write(child.stdin_fd, pending[:_CHUNK])
        pending = pending[written:]
    except BlockingIOError:
        return pending
    except OSError:  # EPIPE: the child exited or closed stdin without reading it all
        pending = pending[:0]
    if not pending:
        sel.unregister(child.stdin_fd)
        _close_stdin(child, stdin_open)
    return pending
