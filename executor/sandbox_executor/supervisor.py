"""``python3 -m sandbox_executor``: a tiny supervisor that keeps the agent (``sandbox_executor.app``)
running in a child process.

* Trust boundary (user code runs as our uid): the supervisor makes itself non-dumpable first
  thing, opens the executor's listening socket once and holds it, keeps the binding (session id,
  callback token) in a ``BindingCell`` and *forks* each agent rather than exec'ing one, so agents
  are non-dumpable from their first instruction and inherit socket and binding. User code can
  therefore neither read the token (``/proc/<pid>/environ``, ``mem``, ``fd``) nor take over the
  executor's address while an agent restarts. ``SANDBOXCP_CALLBACK_TOKEN``, where a runtime still
  passes it, is moved into the cell and out of the environment user code inherits.

* The agent is restarted when it dies abnormally (killed by a signal, or a non-zero exit other
  than 2, the code for a configuration the agent can never run with), after 0.2 s doubling up to
  5 s, reset once an agent has stayed up for a minute. More than 20 restarts within 10 minutes
  and the supervisor gives up with exit code 1. A restarted agent binds the same address again
  and re-announces itself with container_ready; executions the dead one held are lost, and the
  control plane finds them crashed when their heartbeats stop.
* SIGTERM and SIGINT are forwarded to the agent, which reports container_exited and stops; the
  supervisor then exits with the agent's exit code.
* It is a child subreaper: what user code leaves behind is re-parented here rather than to init,
  reaped, and killed when its agent is gone (the agent's direct children already die with it
  through ``PR_SET_PDEATHSIG``; their own children do not).
* If the supervisor itself is killed, the sandbox is over; the agent then dies too (death signal).

Events go to stderr in the agent's log format. Standard library only, like the rest.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

from sandbox_executor import linux
from sandbox_executor.logs import log

# subprocess and traceback are imported where they are used (an agent given as argv, in tests; a crashing
# agent), not by every supervisor: what it imports before it forks is in every idle agent (docs/capacity.md).
TYPE_CHECKING = False  # not typing's, for the same reason
if TYPE_CHECKING:
    import subprocess

AGENT_NAME = "sandbox-agent"  # the forked agent's comm, for host tools and tests
EXIT_CONFIG = 2  # the agent's "do not restart me" code (sandbox_executor.app.EXIT_CONFIG)
EXIT_GAVE_UP = 1
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.2, 5.0
STABLE_S = 60.0  # an agent up this long resets the backoff
MAX_RESTARTS, RESTART_WINDOW_S = 20, 600.0
_FORWARDED = (signal.SIGTERM, signal.SIGINT)
# The agent's threads share this many malloc arenas rather than one each (docs/capacity.md).
MALLOC_ARENAS = 2
_SWEEP_ROUNDS = 20  # leftovers may fork while being killed: sweep until none is left, this often at most


class Supervisor:
    """Runs ``agent`` (a function, in a forked child) or ``argv`` (a program, in tests) until it
    exits for good."""

    def __init__(self, argv: list[str] | None = None, agent: Callable[[], int] | None = None) -> None:
        if (argv is None) == (agent is None):
            raise ValueError("give the agent as argv or as a function")
        self.argv = argv
        self.agent_fn = agent
        self.agent: int | None = None
        self.stop_signal: int | None = None
        self._restarts: collections.deque[float] = collections.deque()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
        if self.agent is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.agent, signum)

    def run(self) -> int:
        for signum in _FORWARDED:
            signal.signal(signum, self._on_signal)
        if not linux.set_child_subreaper():
            log("supervisor_warning", message="not a child subreaper: a dead agent's leftovers stay")
        backoff = BACKOFF_FIRST_S
        while True:
            started = time.monotonic()
            status = self._run_agent()
            self._sweep()
            if status is None:  # stopped during the backoff, before an agent was running
                return 0
            code = os.waitstatus_to_exitcode(status)
            if self.stop_signal is not None:
                log("supervisor_stopped", agent_exit=code)
                return code if code >= 0 else 128 - code
            if code == 0 or code == EXIT_CONFIG:
                log("supervisor_exiting", agent_exit=code)
                return code
            now = time.monotonic()
            if now - started >= STABLE_S:
                backoff = BACKOFF_FIRST_S
            while self._restarts and now - self._restarts[0] > RESTART_WINDOW_S:
                self._restarts.popleft()
            if len(self._restarts) >= MAX_RESTARTS:
                log("supervisor_giving_up", agent_exit=code, restarts=len(self._restarts))
                return EXIT_GAVE_UP
            self._restarts.append(now)
            log(
                "supervisor_restarting_agent",
                agent_exit=code,
                signal=_signal_name(-code) if code < 0 else None,
                restart=len(self._restarts),
                backoff_s=backoff,
            )
            if self._sleep(backoff):
                return 0
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _run_agent(self) -> int | None:
        """Start an agent and reap children until it exits; its wait status, or None if stopping."""
        # Blocked across the spawn (the agent unblocks them once its handlers are in place), so a
        # stop request cannot fall between our fork and the agent's startup.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(_FORWARDED))
        try:
            if self.stop_signal is not None:
                return None
            try:
                proc = self._fork_agent() if self.agent_fn else self._exec_agent()
            except _spawn_errors() as exc:
                # No interpreter to run it with (or no resources to fork): counted like a crash.
                log("supervisor_spawn_failed", error=f"{type(exc).__name__}: {exc}")
                return 1 << 8  # a wait status meaning "exited with code 1"
            self.agent = proc if isinstance(proc, int) else proc.pid
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        try:
            while True:
                # Any child: as a subreaper we also collect the orphans user code leaves behind.
                pid, status = os.waitpid(-1, 0)
                if pid == self.agent:
                    if not isinstance(proc, int):
                        proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen never waits itself
                    return status
        finally:
            self.agent = None

    def _exec_agent(self) -> subprocess.Popen[bytes]:
        import subprocess

        assert self.argv is not None
        return subprocess.Popen(self.argv, preexec_fn=linux.die_with_parent_hook())

    def _fork_agent(self) -> int:
        """Fork (no exec: the child keeps our non-dumpable flag, listener and binding) and run the
        agent function in the child, which never returns here."""
        assert self.agent_fn is not None
        parent = os.getpid()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        # Everything imported so far is shared with the agent page for page until one side writes to
        # it; the cyclic GC would write to every object it tracks (its header) at the agent's first
        # collection. Frozen objects are never examined again, so their pages stay shared.
        gc.collect()
        gc.freeze()
        linux.trim_heap()
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:
            linux.die_with_parent(parent)
            linux.set_name(AGENT_NAME)
            code = self.agent_fn()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)

    def _sweep(self) -> None:
        """Kill and reap whatever is left below us now that no agent runs: orphaned user code."""
        for _ in range(_SWEEP_ROUNDS):
            left = linux.descendants(os.getpid())
            if not left:
                break
            log("supervisor_killing_leftovers", count=len(left))
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)
            self._reap()
        self._reap()

    @staticmethod
    def _reap() -> None:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; True if a stop signal came."""
        deadline = time.monotonic() + seconds
        while self.stop_signal is None and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))
        return self.stop_signal is not None


def _spawn_errors() -> tuple[type[Exception], ...]:
    """What starting an agent raises: OSError, and subprocess's own errors, which only ``_exec_agent``
    (which imports subprocess) can raise."""
    subprocess = sys.modules.get("subprocess")
    return (OSError, subprocess.SubprocessError) if subprocess is not None else (OSError,)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def main() -> int:
    from sandbox_executor import app
    from sandbox_executor.config import ConfigError, load_config
    from sandbox_executor.http_client import tls_needed
    from sandbox_executor.identity import Binding, BindingCell
    from sandbox_executor.server import open_listener

    if tls_needed(os.environ):
        # https (deployed ECS/EKS, remote docker): http.client and ssl (about 2 MB) are imported here, once,
        # before the fork, so that the agents share them. The process runtime and local docker talk to the
        # control plane over a unix socket or http, and to S3 through it: their agents never import either.
        import http.client  # noqa: F401

    if not linux.set_not_dumpable():
        log("supervisor_warning", message="cannot make the executor non-dumpable (no prctl)")
    linux.limit_malloc_arenas(MALLOC_ARENAS)
    token = os.environ.pop("SANDBOXCP_CALLBACK_TOKEN", "")
    try:
        config = load_config()
    except ConfigError as exc:
        log("config_error", error=str(exc))
        return EXIT_CONFIG
    cell = BindingCell()
    if config.session_id and token:
        cell.save(Binding(config.session_id, token))
    try:
        listener = open_listener(config.listen)
    except OSError as exc:
        log("bind_failed", error=f"{type(exc).__name__}: {exc}")
        return EXIT_CONFIG
    try:
        return Supervisor(agent=lambda: app.main(listener, cell)).run()
    finally:
        if config.listen.kind == "unix":
            with contextlib.suppress(OSError):
                os.unlink(config.listen.path)
