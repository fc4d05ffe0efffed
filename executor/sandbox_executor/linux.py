"""Linux process plumbing through ``prctl(2)`` (via ctypes), best effort everywhere else.

* ``PR_SET_PDEATHSIG``: a child asks for SIGKILL when its parent *thread* exits, so user code dies
  with a killed agent (and the agent with a killed supervisor). Set in the child between fork and
  exec; the parent must spawn from a thread that lives as long as the process.
* ``PR_SET_CHILD_SUBREAPER``: orphans of our descendants are re-parented to us instead of init,
  so the supervisor can reap them and kill what a dead agent left behind.
* ``PR_SET_DUMPABLE`` 0: user code runs as our uid, and without this it could read our
  ``/proc/<pid>/environ``, ``mem`` and ``fd/*`` or ptrace us, i.e. take the callback token and the
  listening socket. The flag survives fork but not exec, so the supervisor sets it first thing and
  forks (never execs) the agent.
* ``PR_SET_NAME``: the forked agent names itself (``comm``) so host tools can tell it apart.

ctypes is optional (Debian's ``python3-minimal`` has none): without it these are no-ops that
report False, and the caller logs the degraded mode.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable

TYPE_CHECKING = False  # not typing's: an idle agent does not import typing (docs/capacity.md)
if TYPE_CHECKING:
    from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
    except ImportError:
        return None
    for name in (None, "libc.so.6", "libc.so"):  # None: the symbols already loaded in this process
        try:
            prctl = ctypes.CDLL(name, use_errno=True).prctl
        except (OSError, AttributeError):
            continue
        prctl.restype = ctypes.c_int
        prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        return prctl
    return None


_prctl = _load_prctl()


def _load_libc_function(name: str) -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return getattr(ctypes.CDLL(None), name)
    except (ImportError, OSError, AttributeError):  # no ctypes, or not glibc
        return None


M_ARENA_MAX = -8  # mallopt(3)


def limit_malloc_arenas(count: int) -> bool:
    """At most ``count`` glibc malloc arenas (``MALLOC_ARENA_MAX`` for this process and its forks, not
    for what they exec): each thread that allocates would otherwise get an arena of its own, whose
    touched pages stay resident. Best effort: False where it cannot be set."""
    mallopt = _load_libc_function("mallopt")
    return mallopt is not None and mallopt(M_ARENA_MAX, count) == 1


def trim_heap() -> bool:
    """Give the malloc heap's free pages back to the kernel (``malloc_trim(0)``): what imports freed
    stays resident otherwise, and would be copied into every forked agent's share. Best effort."""
    trim = _load_libc_function("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


def available() -> bool:
    return _prctl is not None


def set_child_subreaper() -> bool:
    return _prctl is not None and _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def set_not_dumpable() -> bool:
    return _prctl is not None and _prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


def set_name(name: str) -> bool:
    """Set this thread's ``comm`` (at most 15 bytes); the main thread's is the process's."""
    if _prctl is None:
        return False
    import ctypes

    buf = ctypes.create_string_buffer(name.encode()[:15])
    return bool(_prctl(PR_SET_NAME, ctypes.addressof(buf), 0, 0, 0) == 0)


def die_with_parent(parent: int) -> None:
    """In a forked child that does not exec: SIGKILL when the parent thread exits (``parent``: the
    parent's pid, taken before the fork); if it is already gone, die now."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child SIGKILLed when the spawning thread exits; None without prctl.

    It runs in the forked child before exec, so it only calls the function resolved here, in the
    parent: no import, no allocation-heavy work, no lock. If the parent is already gone by the
    time the child asks (the death signal would never come), the child kills itself.
    """
    prctl = _prctl
    if prctl is None:
        return None
    parent, sigkill = os.getpid(), int(signal.SIGKILL)

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, sigkill, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), sigkill)

    return hook


def descendants(root: int) -> list[int]:
    """Live (non-zombie) processes below ``root``, from a scan of ``/proc``; [] without procfs."""
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if fields[0] in (b"Z", b"X"):
                continue
            children.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            found.append(pid)
            todo.append(pid)
    return found
