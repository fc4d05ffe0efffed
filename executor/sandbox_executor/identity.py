"""Which session this executor serves: set once, from the environment or by ``POST /bind``.

The callback token must stay out of reach of user code, which runs as our uid: never in an
environment user code can read, never in a file. So a sandbox normally starts *unbound* (a warm-pool
executor with ``SANDBOXCP_POOL_ID``, or a cold one with only ``SANDBOXCP_SESSION_ID``) and the
control plane binds it over the executor's socket (session id, token, env vars). The binding lives in
a ``BindingCell``, an anonymous shared mapping between the (non-dumpable) supervisor and the agents it
forks, so a restarted agent comes back bound. The listener may be TCP (``SANDBOXCP_LISTEN=tcp:0.0.0.0:8080``,
ecs): the control plane then binds at the address the *runtime* reports for the sandbox (the task's
ENI), never one the sandbox announced; the first bind wins and every later one is refused (409), except
the same binding again (the control plane retrying a bind whose answer it lost: only it knows the token).
A runtime that cannot bind yet (eks) still passes ``SANDBOXCP_CALLBACK_TOKEN``; the supervisor moves it
into the cell and out of the environment.
"""

from __future__ import annotations

import json
import mmap
import re
import struct
import threading
from collections.abc import Callable

from sandbox_executor.config import Config
from sandbox_executor.errors import ValidationError
from sandbox_executor.records import Record

TYPE_CHECKING = False  # not typing's: an idle agent does not import typing (docs/capacity.md)
if TYPE_CHECKING:
    from typing import Any

SESSION_ID_RE = re.compile(r"sess_[a-z0-9]{16}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_ENV_PREFIXES = ("SANDBOXCP_", "AWS_")
MAX_BIND_ENV_VARS = 256
MAX_BIND_ENV_BYTES = 64 * 1024


class Binding(Record):
    __slots__ = __match_args__ = ("session_id", "callback_token", "env")
    session_id: str
    callback_token: str
    env: dict[str, str]  # added to user code's environment

    def __init__(self, session_id: str, callback_token: str, env: dict[str, str] | None = None) -> None:
        self._init(session_id=session_id, callback_token=callback_token, env={} if env is None else env)


class AlreadyBound(Exception):
    """The executor serves another session (or is not a pool executor)."""


class Identity:
    """The current binding, behind a lock; ``bound`` is set once there is one.

    ``pooled``: the executor takes ``POST /bind`` (it was started without its token); with
    ``expected_session`` only a binding to that session.
    """

    def __init__(
        self, binding: Binding | None = None, *, pooled: bool = False, expected_session: str = ""
    ) -> None:
        self._lock = threading.Lock()
        self._binding = binding
        self.pooled = pooled
        self.expected_session = expected_session
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

    def executor_key(self) -> str:
        """What the control plane must present to ``POST /execute``: the SHA-256 of the callback token,
        which it stores on the session (it keeps no token). "" while unbound."""
        import hashlib  # on the first /execute, not in every idle agent (docs/capacity.md)

        token = self.token()
        return hashlib.sha256(token.encode()).hexdigest() if token else ""

    def bind(self, binding: Binding, persist: Callable[[Binding], None] | None = None) -> bool:
        """Bind to ``binding``: True if newly bound, False if already bound to that same session.

        Raises AlreadyBound for another session, or for an executor started with its session.
        ``persist`` runs under the lock, before the binding takes effect.
        """
        if self.expected_session and binding.session_id != self.expected_session:
            raise AlreadyBound(f"Executor was started for session {self.expected_session}")
        with self._lock:
            current = self._binding
            if current is not None:
                if self.pooled and current == binding:
                    return False  # the control plane retrying its own bind
                if self.pooled and current.session_id == binding.session_id:
                    raise AlreadyBound("Executor is already bound to this session with another token")
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


class BindingCell:
    """One binding shared by the supervisor and every agent it forks (MAP_SHARED | MAP_ANONYMOUS, made
    before the first fork): what one agent saves, the next one loads. Not a file, on purpose."""

    SIZE = 1 << 20  # a binding is at most ~64 KiB of env plus the token; pages are only touched on use

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, self.SIZE)

    def save(self, binding: Binding) -> None:
        data = json.dumps(
            {"session_id": binding.session_id, "callback_token": binding.callback_token, "env": binding.env}
        ).encode()
        if len(data) + 4 > self.SIZE:
            raise ValueError("binding too large")
        self._map[4 : 4 + len(data)] = data
        self._map[0:4] = struct.pack("<I", len(data))  # the length last: a reader never sees half

    def load(self) -> Binding | None:
        (size,) = struct.unpack("<I", self._map[0:4])
        if not size:
            return None
        return parse_bind_request(json.loads(self._map[4 : 4 + size]))


def initial_identity(config: Config, saved: Binding | None = None) -> Identity:
    """The identity an agent starts with: ``saved`` (the cell's binding, from the supervisor or an
    earlier agent); else bound from the environment (a bare agent, in tests); else waiting for
    ``POST /bind`` (a pool executor, or a cold one started with only its session id)."""
    pooled = config.pool_id is not None or not config.callback_token
    if saved is not None:
        return Identity(saved, pooled=pooled, expected_session=config.session_id)
    if config.session_id and config.callback_token:
        return Identity(Binding(config.session_id, config.callback_token), pooled=config.pool_id is not None)
    return Identity(pooled=True, expected_session=config.session_id)
