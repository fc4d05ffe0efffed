"""Code contexts: a persistent interpreter per context, in which executions run as notebook cells.

A context's kernel (kernel_python.py, kernel_node.py) keeps its namespace between cells. It is
started from the spawner thread (it must not die with the request that created it), in a session of
its own, with the same environment and limits as any user code. One pump thread per kernel reads its
stdout, stderr and replies; a cell's output is what comes before its end marker on each stream.

Outcomes: the cell ran → success (or failed when it raised); its time ran out → SIGINT interrupts it
and the context keeps its state, unless the interpreter has not stopped ``INTERRUPT_GRACE_S`` later:
then it is restarted and the result says so; the interpreter died (segfault, ``os._exit``, the OOM
killer) → ``crashed``, and the context stays dead until it is restarted.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox_executor import linux
from sandbox_executor.capture import BoundedBuffer
from sandbox_executor.kernel_node import NODE_KERNEL
from sandbox_executor.kernel_python import PYTHON_KERNEL
from sandbox_executor.logs import log
from sandbox_executor.process import OUTPUT_LIMIT, OnOutput, kill_group
from sandbox_executor.spawner import Spawner

MAX_CONTEXTS = 8
INTERRUPT_GRACE_S = 2.0
MAX_REPLY_BYTES = 16 << 20
MAX_OUTPUTS_BYTES = (
    4 << 20
)  # rich outputs carried in a result; past it they are dropped (images stay artifacts)
OUTPUTS_DIR = "outputs"  # under the workspace: outputs/<execution_id>/output-<n>.png
LANGUAGES = ("python", "javascript")
_CHUNK = 65536


class ContextError(Exception):
    """``code`` is the executor error the HTTP layer answers with (NotFound, Conflict, TooManyContexts)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class CellOutcome:
    status: str  # success | failed | timeout | crashed
    exit_code: int
    stdout: BoundedBuffer
    stderr: BoundedBuffer
    outputs: list[dict[str, Any]] = field(default_factory=list)
    result_text: str | None = None
    duration_ms: float = 0.0
    cpu_time_ms: float = 0.0
    peak_memory_mb: float = 0.0
    note: str = ""


class _MarkerCut:
    """The part of a stream before ``marker``; holds back a possible partial marker at a read's end."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.found = False
        self._tail = b""

    def feed(self, data: bytes) -> bytes:
        if self.found:
            return b""  # after the cell's end: output of something it left running
        data = self._tail + data
        at = data.find(self.marker)
        if at >= 0:
            self.found = True
            self._tail = b""
            return data[:at]
        keep = len(self.marker) - 1
        for size in range(min(keep, len(data)), 0, -1):
            if self.marker.startswith(data[-size:]):
                self._tail = data[-size:]
                return data[:-size]
        self._tail = b""
        return data

    def flush(self) -> bytes:
        tail, self._tail = self._tail, b""
        return tail


class _Cell:
    def __init__(self, nonce: str, on_output: OnOutput | None) -> None:
        marker = f"\x1e{nonce}\x1e".encode()
        self.cuts = {"stdout": _MarkerCut(marker), "stderr": _MarkerCut(marker)}
        self.buffers = {"stdout": BoundedBuffer(OUTPUT_LIMIT), "stderr": BoundedBuffer(OUTPUT_LIMIT)}
        self.on_output = on_output
        self.reply: dict[str, Any] | None = None
        self.exited: str | None = None  # why the interpreter is gone, if it is
        self.done = threading.Event()

    def feed(self, stream: str, data: bytes, *, eof: bool = False) -> None:
        cut = self.cuts[stream]
        part = cut.feed(data)
        if eof:
            part += cut.flush()
            cut.found = True  # a closed stream has nothing more to say about this cell
        if part:
            self.buffers[stream].feed(part)
            if self.on_output is not None:
                self.on_output(stream, part)
        self._check()

    def replied(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self._check()

    def died(self, why: str) -> None:
        self.exited = why
        for stream, cut in self.cuts.items():
            if not cut.found:
                self.feed(stream, b"", eof=True)
        self.done.set()

    def _check(self) -> None:
        if self.reply is not None and all(cut.found for cut in self.cuts.values()):
            self.done.set()


class Kernel:
    """One context's interpreter; ``run`` is called by the execution worker, one cell at a time."""

    def __init__(
        self,
        context_id: str,
        language: str,
        cwd: str,
        argv: list[str],
        env: Mapping[str, str],
        spawner: Spawner,
    ) -> None:
        self.context_id = context_id
        self.language = language
        self.cwd = cwd
        self.executions = 0
        self.restarts = 0
        self._argv = argv
        self._env = dict(env)
        self._spawner = spawner
        self._lock = threading.Lock()  # one cell at a time, and no restart in the middle of one
        self._state = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._request_fd = -1
        self._cell: _Cell | None = None
        self._busy = False
        self._dead_reason: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._spawner.call(self._spawn)

    def _spawn(self) -> None:
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        try:
            proc = subprocess.Popen(
                [*self._argv, str(request_r), str(reply_w)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.cwd,
                env=self._env,
                start_new_session=True,
                pass_fds=(request_r, reply_w),
                preexec_fn=linux.die_with_parent_hook(),
            )
        except (OSError, ValueError) as exc:
            for fd in (request_r, request_w, reply_r, reply_w):
                os.close(fd)
            raise ContextError(
                "StartFailed", f"{self.language} interpreter: {type(exc).__name__}: {exc}"
            ) from exc
        os.close(request_r)
        os.close(reply_w)
        with self._state:
            self._proc = proc
            self._request_fd = request_w
            self._dead_reason = None
        threading.Thread(
            target=self._pump, args=(proc, reply_r), name=f"kernel-{proc.pid}", daemon=True
        ).start()
        log("context_started", context_id=self.context_id, language=self.language, pid=proc.pid)

    def stop(self) -> None:
        with self._state:
            proc, self._proc = self._proc, None
            fd, self._request_fd = self._request_fd, -1
            self._dead_reason = self._dead_reason or "stopped"
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        if proc is not None:
            kill_group(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2.0)

    def restart(self) -> None:
        with self._lock:
            self.stop()
            self.start()
            self.restarts += 1

    def status(self) -> str:
        with self._state:
            if self._dead_reason is not None or self._proc is None:
                return "dead"
            return "busy" if self._busy else "ready"

    def describe(self) -> dict[str, Any]:
        return {
            "context_id": self.context_id,
            "language": self.language,
            "cwd": self.cwd,
            "status": self.status(),
            "executions": self.executions,
            "restarts": self.restarts,
        }

    # -- cells -------------------------------------------------------------------------------------

    def run(
        self, code: str, *, execution_id: str, workspace: str, timeout_s: float, on_output: OnOutput | None
    ) -> CellOutcome:
        with self._lock:
            return self._run(code, execution_id, workspace, timeout_s, on_output)

    def _run(
        self, code: str, execution_id: str, workspace: str, timeout_s: float, on_output: OnOutput | None
    ) -> CellOutcome:
        nonce = secrets.token_hex(16)
        cell = _Cell(nonce, on_output)
        with self._state:
            proc, fd, dead = self._proc, self._request_fd, self._dead_reason
            if dead is None and proc is not None:
                self._cell = cell
                self._busy = True
        if dead is not None or proc is None:
            out = CellOutcome("failed", -1, BoundedBuffer(OUTPUT_LIMIT), BoundedBuffer(OUTPUT_LIMIT))
            out.stderr.feed(
                f"context {self.context_id} is not running ({dead or 'stopped'}); "
                "restart it to run code in it\n".encode()
            )
            return out
        self.executions += 1
        before = _cpu_ticks(proc.pid)
        started = time.monotonic()
        request = {
            "code": code,
            "nonce": nonce,
            "outputs_dir": os.path.join(workspace, OUTPUTS_DIR, execution_id),
        }
        with contextlib.suppress(OSError):  # the interpreter is gone: the pump reports it
            _write_all(fd, json.dumps(request).encode() + b"\n")
        timed_out = not cell.done.wait(timeout_s)
        note = ""
        if timed_out and cell.exited is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signal.SIGINT)
            if not cell.done.wait(INTERRUPT_GRACE_S) or cell.exited is not None:
                self.stop()
                self.start()
                self.restarts += 1
                note = "The context's interpreter did not stop when interrupted and was restarted: "
                note += "its state is lost."
            else:
                note = "The cell was interrupted; the context keeps its state."
        duration_ms = round((time.monotonic() - started) * 1000.0, 3)
        after = _cpu_ticks(proc.pid)
        with self._state:
            self._cell = None
            self._busy = False
        outcome = _outcome(cell, timed_out, timeout_s, note, self)
        outcome.duration_ms = duration_ms
        if before is not None and after is not None:
            outcome.cpu_time_ms = round((after - before) * 1000.0 / os.sysconf("SC_CLK_TCK"), 3)
        outcome.peak_memory_mb = _peak_memory_mb(proc.pid)
        return outcome

    # -- the pump ----------------------------------------------------------------------------------

    def _pump(self, proc: subprocess.Popen[bytes], reply_r: int) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        names = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr", reply_r: "reply"}
        sel = selectors.DefaultSelector()
        for fd in names:
            sel.register(fd, selectors.EVENT_READ)
        pending = b""
        try:
            while sel.get_map():
                for key, _ in sel.select():
                    chunk = os.read(key.fd, _CHUNK)
                    name = names[key.fd]
                    cell = self._current(proc)
                    if not chunk:
                        sel.unregister(key.fd)
                        if cell is not None and name != "reply":
                            cell.feed(name, b"", eof=True)
                        continue
                    if name != "reply":
                        if cell is not None:
                            cell.feed(name, chunk)
                        continue
                    pending += chunk
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        if cell is not None:
                            cell.replied(_parse_reply(line))
                    if len(pending) > MAX_REPLY_BYTES:
                        pending = b""
                        if cell is not None:
                            cell.replied(
                                {"status": "error", "ename": "OutputTooLarge", "evalue": "", "outputs": []}
                            )
        finally:
            sel.close()
            os.close(reply_r)
        status = proc.wait()
        why = _exit_reason(status)
        with self._state:
            if self._proc is proc:
                self._dead_reason = why
            cell = self._cell if self._proc is proc else None
        if cell is not None:
            cell.died(why)
        log("context_exited", context_id=self.context_id, pid=proc.pid, reason=why)

    def _current(self, proc: subprocess.Popen[bytes]) -> _Cell | None:
        with self._state:
            return self._cell if self._proc is proc else None


def _outcome(cell: _Cell, timed_out: bool, timeout_s: float, note: str, kernel: Kernel) -> CellOutcome:
    outcome = CellOutcome("success", 0, cell.buffers["stdout"], cell.buffers["stderr"])
    reply = cell.reply or {}
    outputs = reply.get("outputs")
    outcome.outputs = _bounded_outputs(outputs if isinstance(outputs, list) else [])
    for item in outcome.outputs:
        if item.get("type") == "result":
            text = item.get("data", {}).get("text/plain")
            outcome.result_text = text if isinstance(text, str) else None
    if cell.exited is not None and not timed_out:
        outcome.status, outcome.exit_code = "crashed", -1
        outcome.note = (
            f"The {kernel.language} context's interpreter exited ({cell.exited}): its state is lost. "
            f"Restart context {kernel.context_id} to run code in it again."
        )
    elif timed_out:
        outcome.status, outcome.exit_code = "timeout", -1
        outcome.note = f"Execution timeout after {timeout_s:g} seconds. {note}".strip()
    elif reply.get("status") != "ok":
        outcome.status, outcome.exit_code = "failed", 1
    return outcome


def _bounded_outputs(outputs: list[Any]) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    used = 0
    for item in outputs:
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            continue
        size = len(json.dumps(item, default=str))
        if used + size > MAX_OUTPUTS_BYTES:
            data = item["data"]
            item = {
                "type": item.get("type", "display"),
                "data": {"text/plain": str(data.get("text/plain", ""))[:1000]},
                "truncated": True,
            }
            size = len(json.dumps(item))
        used += size
        kept.append(item)
    return kept


def _parse_reply(line: bytes) -> dict[str, Any]:
    try:
        reply = json.loads(line)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        return {"status": "error", "ename": "ProtocolError", "evalue": "unreadable reply", "outputs": []}
    return reply


def _exit_reason(status: int) -> str:
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {-status} ({name})"
    return f"exit code {status}"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _cpu_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


def _peak_memory_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024.0, 3)
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


class Contexts:
    """The sandbox's contexts by id (at most MAX_CONTEXTS); all end with the agent."""

    def __init__(
        self, spawner: Spawner, env: Callable[[], Mapping[str, str]], workspace: str, node_bin: str
    ) -> None:
        self._spawner = spawner
        self._env = env
        self._workspace = workspace
        self._node_bin = node_bin
        self._lock = threading.Lock()
        self._kernels: dict[str, Kernel] = {}

    def create(self, context_id: str, language: str, cwd: str | None) -> Kernel:
        directory = self._directory(cwd)
        if language == "python":
            argv = [sys.executable, "-u", "-c", PYTHON_KERNEL]
        else:
            node = shutil.which(self._node_bin, path=self._env().get("PATH"))
            if node is None:
                raise ContextError(
                    "ValidationError",
                    f"javascript needs {self._node_bin!r}, which this sandbox's image does not have: "
                    "use a template with Node.js (nodejs-basic)",
                )
            argv = [node, "-e", NODE_KERNEL]
        with self._lock:
            if context_id in self._kernels:
                raise ContextError("Conflict", f"Context {context_id} already exists")
            if len(self._kernels) >= MAX_CONTEXTS:
                raise ContextError("TooManyContexts", f"A sandbox holds at most {MAX_CONTEXTS} contexts")
            kernel = Kernel(context_id, language, directory, argv, self._env(), self._spawner)
            self._kernels[context_id] = kernel
        try:
            kernel.start()
        except BaseException:
            with self._lock:
                self._kernels.pop(context_id, None)
            raise
        return kernel

    def get(self, context_id: str) -> Kernel:
        with self._lock:
            kernel = self._kernels.get(context_id)
        if kernel is None:
            raise ContextError("NotFound", f"Context {context_id} not found")
        return kernel

    def delete(self, context_id: str) -> None:
        with self._lock:
            kernel = self._kernels.pop(context_id, None)
        if kernel is None:
            raise ContextError("NotFound", f"Context {context_id} not found")
        kernel.stop()

    def stop_all(self) -> None:
        with self._lock:
            kernels = list(self._kernels.values())
            self._kernels.clear()
        for kernel in kernels:
            kernel.stop()

    def _directory(self, cwd: str | None) -> str:
        if not cwd:
            return self._workspace
        path = os.path.realpath(os.path.join(self._workspace, cwd))
        if not os.path.isdir(path):
            raise ContextError("ValidationError", f"cwd {cwd!r} is not a directory")
        return path
