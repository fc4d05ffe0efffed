"""Workspace disks (disk.py) made ahead of demand, so a cold launch renames one into place instead of
formatting and mounting its own.

`mkfs.ext4` and `mount` are two subprocesses of the control plane's process on every cold launch of the
process and local docker runtimes: 20-50 ms here, and on the docker runtime the container's start waited
for them (the engine creates a container faster). A spare is a directory `<root>/<n>` holding a fresh
image, formatted for one (size, owner) and mounted on its `workspace` mount point, exactly what
`disk.create` leaves in a session's directory; `take` renames the whole directory to the session's (a
mount point's parent may be renamed; the mount moves with it). `keep` spares per (size, owner) are refilled
in the background after each take, the first when the first launch of that kind asks.

A spare was never given to a sandbox: nothing of another session can be in it. One whose mount is gone
(a stack stopped and unmounted everything under its state dir) is not handed out.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandboxcp.adapters.runtimes import disk

log = logging.getLogger(__name__)

KEEP = 2  # spares per (size, owner): launches come one or two at a time between refills
_Kind = tuple[int, int, int]  # size in MiB, owner uid, owner gid


class SpareDisks:
    def __init__(self, root: Path, keep: int = KEEP) -> None:
        self.root = root
        self.keep = keep
        self._lock = threading.Lock()
        self._ready: dict[_Kind, list[Path]] = {}
        self._filling: set[_Kind] = set()
        self._names = itertools.count()
        self._closed = False
        self._filler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spare-disks")
        _remove_tree(root)  # what an earlier process left: never handed out

    def take(self, session_dir: Path, size_mb: int, owner: tuple[int, int]) -> bool:
        """Make `session_dir` (which must not exist yet) a ready workspace disk's directory; False when
        no spare is ready (the caller makes its own). Asks for a refill either way."""
        kind = (size_mb, *owner)
        with self._lock:
            ready = self._ready.setdefault(kind, [])
            spare = ready.pop() if ready else None
        self._refill(kind)
        if spare is None:
            return False
        if not os.path.ismount(spare / disk.MOUNT_POINT):
            _remove_tree(spare)
            return False
        try:
            session_dir.parent.mkdir(parents=True, exist_ok=True)
            os.rename(spare, session_dir)  # fails if the session's dir exists (an earlier attempt's)
        except OSError:
            with self._lock:
                self._ready[kind].append(spare)  # still good for the next launch
            return False
        return True

    def forget(self) -> None:
        """Drop every spare (the stack is stopping, or unmounted them)."""
        with self._lock:
            self._closed = True  # a fill under way removes what it makes
            spares = [s for ready in self._ready.values() for s in ready]
            self._ready.clear()
        for spare in spares:
            _remove_tree(spare)

    def ready(self, size_mb: int, owner: tuple[int, int]) -> int:
        with self._lock:
            return len(self._ready.get((size_mb, *owner), []))

    def _refill(self, kind: _Kind) -> None:
        with self._lock:
            if self._closed or kind in self._filling or len(self._ready.get(kind, [])) >= self.keep:
                return
            self._filling.add(kind)
        self._filler.submit(self._fill, kind)

    def _fill(self, kind: _Kind) -> None:
        try:
            while True:
                with self._lock:
                    if self._closed or len(self._ready.get(kind, [])) >= self.keep:
                        return
                spare = self.root / str(next(self._names))
                try:
                    spare.mkdir(parents=True, mode=0o700)
                    disk.create(spare, kind[0], owner=(kind[1], kind[2]))
                except (OSError, disk.DiskUnavailable) as exc:
                    log.warning("cannot make a spare workspace disk: %s", exc)
                    _remove_tree(spare)
                    return
                with self._lock:
                    closed = self._closed
                    if not closed:
                        self._ready.setdefault(kind, []).append(spare)
                if closed:
                    _remove_tree(spare)
                    return
        finally:
            with self._lock:
                self._filling.discard(kind)


_shared: dict[Path, SpareDisks] = {}
_shared_lock = threading.Lock()


def keep_for(state_dir: Path) -> None:
    """Keep spares for the runtimes using `state_dir` from now on, until `forget_under` (the local stack
    owns that life: runtimes made elsewhere, as in tests, make their own disks and leave no mounts)."""
    root = _root(state_dir)
    with _shared_lock:
        if root not in _shared:
            _shared[root] = SpareDisks(root)


def take(state_dir: Path, session_dir: Path, size_mb: int, owner: tuple[int, int]) -> bool:
    """`SpareDisks.take` on the spares of `state_dir`; False where none are kept."""
    with _shared_lock:
        spares = _shared.get(_root(state_dir))
    return spares is not None and spares.take(session_dir, size_mb, owner)


def forget_under(state_dir: Path) -> None:
    """Drop the spares of `state_dir` and keep none from now on."""
    root = _root(state_dir)
    with _shared_lock:
        spares = _shared.pop(root, None)
    if spares is not None:
        spares.forget()
    _remove_tree(root)


def _root(state_dir: Path) -> Path:
    return (state_dir / "spare-disks").resolve()


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    for mount_point in sorted(path.rglob(disk.MOUNT_POINT), reverse=True):
        disk.remove(mount_point.parent)
    with contextlib.suppress(OSError):
        shutil.rmtree(path)
