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
from sandbox_executor.contexts import Contexts
from sandbox_executor.identity import BindingCell, Identity, initial_identity
from sandbox_executor.interactive_api import Interactive
from sandbox_executor.logs import log
from sandbox_executor.process import ChildRegistry
from sandbox_executor.processes import Processes
from sandbox_executor.runner import Runner
from sandbox_executor.server import Service, TCPServer, UnixServer, bound_port, make_server
from sandbox_executor.spawner import Spawner
from sandbox_executor.validation import ValidationError, WorkspacePlan, parse_workspace_plan
from sandbox_executor.worker import ExecutionQueue

EXIT_OK = 0
EXIT_NOT_READY = 1  # the control plane never answered container_ready (the supervisor retries)
# Bad environment, the listener could not be bound, or the control plane refused container_ready
# (a final 4xx: wrong token or session, or the session is over). The supervisor does not retry.
EXIT_CONFIG = 2

# Exit code and container_exited reason reported per signal.
_SIGNALS = {signal.SIGTERM: (143, "sigterm"), signal.SIGINT: (130, "normal")}


class _Shutdown:
    """Set from the signal handler; the main thread waits on it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
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

    registry = ChildRegistry()
    spawner = Spawner()
    runner = Runner(config, registry, identity=identity)
    interactive = Interactive(
        Contexts(spawner, runner.child_environment, config.workspace, config.node_bin),
        Processes(spawner, runner.child_environment, config.workspace, config.bash_bin, callbacks.output),
    )
    runner.contexts = interactive.contexts
    runner.fetch_listing = lambda: _listing(callbacks, identity)
    executions = ExecutionQueue(
        runner,
        callbacks,
        heartbeat_s=config.heartbeat_s,
        retry_base_s=config.retry_base_s,
        stop=shutdown.event,
    )
    try:
        server = make_server(
            config.listen,
            Service(executions, config.workspace, identity, config.pool_id, persist, interactive),
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
        return _shut_down(
            shutdown.signum, server, config, callbacks, registry, identity, listener is None, interactive
        )
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
    return _shut_down(
        shutdown.signum, server, config, callbacks, registry, identity, listener is None, interactive
    )


def _listing(callbacks: CallbackClient, identity: Identity) -> WorkspacePlan | None:
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
    registry: ChildRegistry,
    identity: Identity,
    owned: bool,
    interactive: Interactive,
) -> int:
    exit_code, reason = _SIGNALS.get(signal.Signals(signum) if signum else signal.SIGTERM, (143, "sigterm"))
    log("shutting_down", signal=signum, exit_reason=reason)
    # Untrusted code stops first: it must not outlive the agent that supervises it.
    killed = registry.kill_all()
    interactive.processes.kill_all()
    interactive.contexts.stop_all()
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
