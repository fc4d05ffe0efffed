"""The agent's process lifecycle: configure, bind, serve, announce readiness, and shut down on SIGTERM.

Run as ``python3 -m sandbox_executor.app``, normally by the supervisor (``python3 -m
sandbox_executor``, see supervisor.py), which restarts it if it dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from types import FrameType

from sandbox_executor import __version__, linux
from sandbox_executor.advertise import advertised_url
from sandbox_executor.callbacks import CallbackClient, Outcome
from sandbox_executor.config import Config, ConfigError, load_config
from sandbox_executor.identity import BindingCell, Identity, initial_identity
from sandbox_executor.logs import log
from sandbox_executor.server import Service, TCPServer, UnixServer, bound_port, make_server
from sandbox_executor.worker import ExecutionQueue

TYPE_CHECKING = False  # not typing's: an idle agent does not import typing (docs/capacity.md)
if TYPE_CHECKING:  # built on first use (Machinery): an idle agent never imports them
    from sandbox_executor.interactive_api import Interactive
    from sandbox_executor.process import ChildRegistry, OnOutput
    from sandbox_executor.runner import Runner, RunOutcome
    from sandbox_executor.validation import ExecutionRequest, WorkspacePlan

EXIT_OK = 0
EXIT_NOT_READY = 1  # the control plane never answered container_ready (the supervisor retries)
# Bad environment, the listener could not be bound, or the control plane refused container_ready
# (a final 4xx: wrong token or session, or the session is over). The supervisor does not retry.
EXIT_CONFIG = 2

# Exit code and container_exited reason reported per signal.
_SIGNALS = {signal.SIGTERM: (143, "sigterm"), signal.SIGINT: (130, "normal")}


class _Shutdown:
    """A stop request: the signal handler records it, a watcher thread sets ``event`` (which the main
    thread and the callback client wait on).

    The handler takes no lock: it runs in the main thread between two bytecodes, possibly while that
    thread holds the event's own condition lock (entering ``event.wait()``), and setting the event there
    would wait forever for a lock its own thread holds - an agent that never stops on SIGTERM (seen
    under load). It writes a byte to a pipe instead; the watcher reads it and sets the event."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._read_fd, self._write_fd = os.pipe()
        threading.Thread(target=self._watch, name="shutdown-watcher", daemon=True).start()

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        with contextlib.suppress(OSError):
            os.write(self._write_fd, b"x")

    def _watch(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self._read_fd, 1)
        self.event.set()


def main(listener: socket.socket | None = None, cell: BindingCell | None = None) -> int:
    """Run the agent. Under the supervisor (fork): ``listener`` is its listening socket and ``cell``
    the binding it shares with earlier and later agents. Bare (tests): bind ``SANDBOXCP_LISTEN`` here."""
    shutdown = _Shutdown()
    for signum in _SIGNALS:
        signal.signal(signum, shutdown.handle)
    # The supervisor spawns us with these blocked, so that a stop request arriving before the
    # handlers above existed is not lost (or fatal): it is delivered now, to them.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(_SIGNALS))
    try:
        config = load_config()
        identity = initial_identity(config, cell.load() if cell is not None else None)
        callbacks = CallbackClient(config.callback_url, identity.token, shutdown.event)
    except (ConfigError, ValueError) as exc:
        log("config_error", error=str(exc))
        return EXIT_CONFIG
    log(
        "starting",
        version=__version__,
        pid=os.getpid(),
        session_id=config.session_id or None,
        pool_id=config.pool_id,
        listen=config.listen.describe(),
        workspace=config.workspace,
    )
    persist = cell.save if cell is not None and identity.pooled else None
    if identity.bound.is_set() and identity.pooled:
        log("binding_restored", session_id=identity.session_id(), pool_id=config.pool_id)
    if not linux.available():
        log("warning", message="prctl unavailable (no ctypes?); user code may outlive a killed agent")
    try:
        os.makedirs(config.workspace, exist_ok=True)
    except OSError as exc:
        log("workspace_unavailable", workspace=config.workspace, error=type(exc).__name__)

    machinery = Machinery(config, identity, callbacks)
    executions = ExecutionQueue(
        machinery,
        callbacks,
        heartbeat_s=config.heartbeat_s,
        retry_base_s=config.retry_base_s,
        stop=shutdown.event,
    )
    try:
        server = make_server(
            config.listen,
            Service(executions, config.workspace, identity, config.pool_id, persist, machinery.interactive),
            listener,
        )
    except OSError as exc:
        log("bind_failed", error=f"{type(exc).__name__}: {exc}")
        return EXIT_CONFIG
    executions.start()
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
    ).start()
    port = bound_port(server)
    log("listening", port=port, socket=config.listen.path or None)

    if not identity.bound.is_set():
        log("waiting_for_bind", pool_id=config.pool_id)
        # The signal handler only sets shutdown.event: poll it while waiting for POST /bind.
        while not identity.bound.wait(0.2) and not shutdown.event.is_set():
            pass
    if shutdown.event.is_set():
        return _shut_down(shutdown.signum, server, config, callbacks, machinery, identity, listener is None)
    session_id = identity.session_id()
    executor_url = advertised_url(config, port, shutdown.event)
    if executor_url:
        log("advertising", executor_url=executor_url)
    delivery = callbacks.container_ready(session_id, config.container_id, port, executor_url)
    if not shutdown.event.is_set():
        if delivery.outcome is not Outcome.DELIVERED:
            log("not_ready", outcome=delivery.outcome.value, http_status=delivery.status)
            _close(server, config, owned=listener is None)
            return EXIT_CONFIG if delivery.outcome is Outcome.REJECTED else EXIT_NOT_READY
        log("ready", session_id=session_id, container_id=config.container_id, port=port)
        shutdown.event.wait()
    return _shut_down(shutdown.signum, server, config, callbacks, machinery, identity, listener is None)


class Machinery:
    """What runs user code - the runner (with its fork server), code contexts and background processes,
    and the registry of their children - built on first use: an agent that has run nothing yet has
    neither imported nor allocated any of it (about 2.5 MB of a sandbox's memory, docs/capacity.md).
    The execution queue calls ``run``; the HTTP handlers get ``interactive()``."""

    def __init__(self, config: Config, identity: Identity, callbacks: CallbackClient) -> None:
        self._config = config
        self._identity = identity
        self._callbacks = callbacks
        self._lock = threading.Lock()
        self._built: tuple[ChildRegistry, Runner, Interactive] | None = None

    def built(self) -> bool:
        return self._built is not None

    def _get(self) -> tuple[ChildRegistry, Runner, Interactive]:
        with self._lock:
            if self._built is None:
                self._built = self._build()
            return self._built

    def _build(self) -> tuple[ChildRegistry, Runner, Interactive]:
        from sandbox_executor.contexts import Contexts
        from sandbox_executor.interactive_api import Interactive
        from sandbox_executor.process import ChildRegistry
        from sandbox_executor.processes import Processes
        from sandbox_executor.runner import Runner
        from sandbox_executor.spawner import Spawner

        config, callbacks, identity = self._config, self._callbacks, self._identity
        registry = ChildRegistry()
        spawner = Spawner()
        runner = Runner(config, registry, identity=identity)
        interactive = Interactive(
            Contexts(spawner, runner.child_environment, config.workspace, config.node_bin),
            Processes(spawner, runner.child_environment, config.workspace, config.bash_bin, callbacks.output),
        )
        runner.contexts = interactive.contexts
        runner.fetch_listing = lambda: _listing(callbacks, identity)
        runner.workspace_sync.presign = lambda paths: callbacks.presigned_gets(identity.session_id(), paths)
        log("machinery_loaded")
        return registry, runner, interactive

    def run(self, req: ExecutionRequest, on_output: OnOutput | None = None) -> RunOutcome:
        return self._get()[1].run(req, on_output)

    def interactive(self) -> Interactive:
        return self._get()[2]

    def stop_all(self) -> int:
        """Kill every child user code has (at shutdown); how many processes were killed."""
        with self._lock:
            built = self._built
        if built is None:
            return 0
        registry, _, interactive = built
        killed = registry.kill_all()
        interactive.processes.kill_all()
        interactive.contexts.stop_all()
        return killed


def _listing(callbacks: CallbackClient, identity: Identity) -> WorkspacePlan | None:
    from sandbox_executor.validation import ValidationError, parse_workspace_plan

    raw = callbacks.workspace_listing(identity.session_id())
    try:
        return parse_workspace_plan(raw) if raw is not None else None
    except ValidationError as exc:
        log("workspace_listing_invalid", error=str(exc))
        return None


def _shut_down(
    signum: int | None,
    server: TCPServer | UnixServer,
    config: Config,
    callbacks: CallbackClient,
    machinery: Machinery,
    identity: Identity,
    owned: bool,
) -> int:
    exit_code, reason = _SIGNALS.get(signal.Signals(signum) if signum else signal.SIGTERM, (143, "sigterm"))
    log("shutting_down", signal=signum, exit_reason=reason)
    # Untrusted code stops first: it must not outlive the agent that supervises it.
    killed = machinery.stop_all()
    if killed:
        log("children_killed", count=killed)
    if identity.bound.is_set():
        callbacks.container_exited(identity.session_id(), exit_code, reason)
    _close(server, config, owned=owned)
    log("stopped")
    return EXIT_OK


def _close(server: TCPServer | UnixServer, config: Config, *, owned: bool) -> None:
    """Stop serving; a socket path we bound ourselves (``owned``) is removed (the supervisor's
    listener outlives this agent and is the supervisor's to remove)."""
    server.shutdown()
    server.server_close()
    if owned and config.listen.kind == "unix":
        with contextlib.suppress(FileNotFoundError):
            os.unlink(config.listen.path)


if __name__ == "__main__":
    raise SystemExit(main())
