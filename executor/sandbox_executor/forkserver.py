"""Python handler runs forked from a warm interpreter instead of started from scratch.

Starting ``python3`` costs about 30 ms before the first line of user code; a fork of an interpreter
that is already up costs about 1 ms. The fork server (bootstrap_python.PYTHON_FORKSERVER) is started
on first use, from the execution worker's thread (it dies with that thread, like every child), and
serves one run at a time over a unix socket: the run's four pipe ends go over as SCM_RIGHTS, the pid
comes back, then the wait status and rusage. Each run is still a process of its own in a session of
its own, with a fresh ``__main__``: nothing a run does reaches the next one, as with ``python3 -c``.

A server that dies (user code can kill it: same uid) or stops answering is replaced on the next run;
the run in flight ends without an exit status, reported like a killed child.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Mapping

from sandbox_executor import linux
from sandbox_executor.bootstrap_python import PYTHON_FORKSERVER
from sandbox_executor.logs import log
from sandbox_executor.process import (
    Child,
    ChildRegistry,
    OnOutput,
    ProcessResult,
    SpawnError,
    kill_group,
    supervise,
)

REPLY_TIMEOUT_S = 5.0  # for the pid; the exit report comes whenever the child ends
_MAX_MESSAGE = 4096


class _ReportedExit(threading.Thread):
    """The ``ExitWaiter`` of a forked child: its exit as the server reports it."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        super().__init__(name=f"forked-{pid}", daemon=True)
        self._sock = sock
        self.pid = pid
        self.done = threading.Event()
        self.status: int | None = None
        self.rusage: resource.struct_rusage | None = None
        self.finished_at = 0.0

    def run(self) -> None:
        try:
            self._sock.settimeout(None)
            report = json.loads(self._sock.recv(_MAX_MESSAGE) or b"null")
            if isinstance(report, dict) and report.get("pid") == self.pid:
                utime, stime, maxrss = (float(x) for x in report["rusage"])
                self.status = int(report["status"])
                self.rusage = resource.struct_rusage((utime, stime, int(maxrss), *([0] * 13)))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # the server died or lied: no exit status
        finally:
            self.finished_at = time.monotonic()
            self.done.set()


class ForkServer:
    def __init__(self, python: str, registry: ChildRegistry) -> None:
        self._python = python
        self._registry = registry
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    def run(
        self,
        *,
        env: Mapping[str, str],
        cwd: str,
        stdin_data: bytes,
        timeout_s: float,
        on_output: OnOutput | None = None,
    ) -> ProcessResult:
        """Like ``process.run_process`` for the handler bootstrap; SpawnError if no child could be
        forked (the caller may then start a fresh interpreter instead)."""
        sock = self._ensure(env, cwd)
        ours: list[int] = []  # our ends of stdin, stdout, stderr, return value
        theirs: list[int] = []  # the child's, in the order it makes them fds 0-3
        try:
            for index in range(4):
                r, w = os.pipe()
                ours.append(w if index == 0 else r)
                theirs.append(r if index == 0 else w)
            request = json.dumps({"env": dict(env), "cwd": cwd}).encode()
            sock.settimeout(REPLY_TIMEOUT_S)
            sock.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", theirs))])
            for fd in theirs:
                os.close(fd)
            theirs = []
            reply = json.loads(sock.recv(_MAX_MESSAGE) or b"null")
            pid = int(reply["pid"]) if isinstance(reply, dict) else 0
            if pid <= 1 or pid == os.getpid():
                raise ValueError(f"bad pid {pid}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            for fd in ours + theirs:
                os.close(fd)
            self.stop()
            raise SpawnError(f"fork server: {type(exc).__name__}: {exc}") from exc
        started = time.monotonic()  # before the waiter exists: a quick child may be reported at once
        waiter = _ReportedExit(sock, pid)
        waiter.start()
        stdin_w, stdout_r, stderr_r, ret_r = ours
        try:
            result = supervise(
                Child(pid, stdin_w, stdout_r, stderr_r, ret_r, waiter, started),
                stdin_data=stdin_data,
                timeout_s=timeout_s,
                registry=self._registry,
                on_output=on_output,
            )
        finally:
            for fd in ours:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if not waiter.done.is_set():
            self.stop()  # its report may still come: never read it as the next run's
        return result

    def _ensure(self, env: Mapping[str, str], cwd: str) -> socket.socket:
        if self._proc is not None and self._proc.poll() is None and self._sock is not None:
            return self._sock
        self.stop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [self._python, "-u", "-c", PYTHON_FORKSERVER, str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,
                pass_fds=(theirs.fileno(),),
                preexec_fn=linux.die_with_parent_hook(),
            )
        except (OSError, ValueError) as exc:
            ours.close()
            raise SpawnError(f"fork server: {type(exc).__name__}: {exc}") from exc
        finally:
            theirs.close()
        self._registry.add(self._proc.pid)
        self._sock = ours
        log("forkserver_started", pid=self._proc.pid)
        return ours

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            kill_group(self._proc.pid)
            self._registry.discard(self._proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(1.0)
            self._proc = None
