"""Which session this executor serves: set once, from the environment or by ``POST /bind``.

A normally started agent is bound from the start (``SANDBOXCP_SESSION_ID`` and
``SANDBOXCP_CALLBACK_TOKEN``). A warm-pool agent (``SANDBOXCP_POOL_ID``, no session) starts
unbound and is bound later by the control plane; the binding is persisted (JSON, mode 0600,
written atomically) so that an agent the supervisor restarts comes back bound. Callbacks and the
runner read the identity at call time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox_executor.config import Config
from sandbox_executor.validation import ValidationError

SESSION_ID_RE = re.compile(r"sess_[a-z0-9]{16}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_ENV_PREFIXES = ("SANDBOXCP_", "AWS_")
MAX_BIND_ENV_VARS = 256
MAX_BIND_ENV_BYTES = 64 * 1024
TCP_BINDING_PATH = "/tmp/.sandboxcp-binding"


@dataclass(frozen=True)
class Binding:
    session_id: str
    callback_token: str
    env: dict[str, str] = field(default_factory=dict)  # added to user code's environment


class AlreadyBound(Exception):
    """The executor serves another session (or is not a pool executor)."""


class Identity:
    """The current binding, behind a lock; ``bound`` is set once there is one."""

    def __init__(self, binding: Binding | None = None, *, pooled: bool = False) -> None:
        self._lock = threading.Lock()
        self._binding = binding
        self.pooled = pooled
        self.bound = threading.Event()
        if binding is not None:
            self.bound.set()

    def current(self) -> Binding | None:
        with self._lock:
            return self._binding

    def session_id(self) -> str:
        binding = self.current()
        return binding.session_id if binding else ""

    def token(self) -> str:
        binding = self.current()
        return binding.callback_token if binding else ""

    def env(self) -> dict[str, str]:
        binding = self.current()
        return dict(binding.env) if binding else {}

    def bind(self, binding: Binding, persist: Callable[[Binding], None] | None = None) -> bool:
        """Bind to ``binding``: True if newly bound, False if already bound to that same session.

        Raises AlreadyBound for another session, or for an executor started with its session.
        ``persist`` runs under the lock, before the binding takes effect.
        """
        with self._lock:
            current = self._binding
            if current is not None:
                if self.pooled and current.session_id == binding.session_id:
                    return False
                raise AlreadyBound(
                    f"Executor is bound to session {current.session_id}"
                    if self.pooled
                    else "Executor was started for its session; it is not a pool executor"
                )
            if persist is not None:
                persist(binding)
            self._binding = binding
        self.bound.set()
        return True


def parse_bind_request(body: Any) -> Binding:
    """A ``POST /bind`` body (also the persisted binding's format)."""
    if not isinstance(body, dict):
        raise ValidationError("Body must be a JSON object")
    session_id = body.get("session_id")
    if not isinstance(session_id, str) or not SESSION_ID_RE.fullmatch(session_id):
        raise ValidationError("session_id must look like sess_ followed by 16 [a-z0-9]")
    token = body.get("callback_token")
    if not isinstance(token, str) or not token.strip():
        raise ValidationError("callback_token must be a non-empty string")
    raw_env = body.get("env")
    if raw_env is None:
        raw_env = {}
    if not isinstance(raw_env, dict):
        raise ValidationError("env must be an object of strings")
    if len(raw_env) > MAX_BIND_ENV_VARS:
        raise ValidationError(f"env has {len(raw_env)} variables; at most {MAX_BIND_ENV_VARS}")
    env: dict[str, str] = {}
    size = 0
    for name, value in raw_env.items():
        if not ENV_NAME_RE.fullmatch(name):
            raise ValidationError(f"env name {name!r} must match [A-Za-z_][A-Za-z0-9_]*")
        if name.startswith(RESERVED_ENV_PREFIXES):
            raise ValidationError(f"env name {name!r} is reserved (SANDBOXCP_*, AWS_*)")
        if not isinstance(value, str) or "\0" in value:
            raise ValidationError(f"env value of {name!r} must be a string without NUL")
        size += len(name.encode()) + len(value.encode("utf-8", "surrogatepass")) + 2
        env[name] = value
    if size > MAX_BIND_ENV_BYTES:
        raise ValidationError(f"env is {size} bytes; at most {MAX_BIND_ENV_BYTES}")
    return Binding(session_id=session_id, callback_token=token, env=env)


def binding_path(config: Config) -> str:
    """Next to the unix socket (a directory only the control plane and we share), else /tmp."""
    if config.listen.kind == "unix":
        return os.path.join(os.path.dirname(config.listen.path), ".binding")
    return TCP_BINDING_PATH


def save_binding(path: str, binding: Binding) -> None:
    """Write ``binding`` to ``path`` atomically, readable by this user only."""
    directory = os.path.dirname(path) or "."
    data = json.dumps(
        {"session_id": binding.session_id, "callback_token": binding.callback_token, "env": binding.env}
    ).encode()
    fd, tmp = tempfile.mkstemp(prefix=".binding-", dir=directory)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_binding(path: str) -> Binding | None:
    """The binding persisted at ``path``; None if there is none. Raises ValueError if it is unusable."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    return parse_bind_request(json.loads(raw))


def initial_identity(config: Config) -> Identity:
    """Bound from the environment, unbound for a pool executor (see ``load_binding`` for restarts)."""
    if config.session_id:
        binding = Binding(config.session_id, config.callback_token)
        return Identity(binding, pooled=config.pool_id is not None)
    return Identity(pooled=True)
