"""The files a run left in the workspace: its result's ``artifacts`` list.

A file counts when it is a regular file (symlinks are not followed) modified at or after the run
started. Paths are relative to the workspace, ``/``-separated and sorted; anything under a
dot-directory (``.cache``, ``.npm``, ``.git``...) is skipped. The list and the walk are both
bounded, so a workspace holding a huge tree (say ``node_modules``) cannot stall the worker.

``workspace_usage`` walks the same way (dot-directories included) for the quota check.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

from sandbox_executor.logs import log

MAX_ARTIFACTS = 1000
MAX_SCANNED = 100_000  # directory entries looked at per run, at most
_CLOCK_REALTIME_COARSE = 5  # Linux clockid; the clock file timestamps are taken from
# A file dated further ahead than this (set by hand: a tarball's, `touch -d`) does not hold the next run
# back; it is then an artifact of every run until it is rewritten.
FUTURE_MTIME_SLACK_NS = 50_000_000
# How both the walk and the sync open a directory beneath the workspace: never through a symlink.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def run_clock_ns() -> int:
    """Now, comparable with file mtimes: take it when the run starts.

    File timestamps come from the kernel's coarse clock, which lags ``time.time()`` by up to a
    tick, so a file written in the first milliseconds of a run could otherwise look older than it.
    """
    if sys.platform.startswith("linux"):
        try:
            return time.clock_gettime_ns(_CLOCK_REALTIME_COARSE)
        except OSError:
            pass
    return time.time_ns()


def list_artifacts(workspace: str, since_ns: int, limit: int | None = None) -> list[str]:
    return [path for path, _ in list_artifact_files(workspace, since_ns, limit)]


def list_artifact_files(workspace: str, since_ns: int, limit: int | None = None) -> list[tuple[str, int]]:
    """``(path, size)`` of the files modified at or after ``since_ns``, sorted by path."""
    return scan_artifacts(workspace, since_ns, limit)[0]


def scan_artifacts(
    workspace: str, since_ns: int, limit: int | None = None
) -> tuple[list[tuple[str, int]], int]:
    """``list_artifact_files``, and the newest mtime met that is not in the future (0 if none): the next
    run must start after it. File times are not always behind the clock runs start by (fine-grained
    timestamps run ahead of the coarse clock; the realtime clock may step back), and a run that starts
    before the last run's files were written would take them for its own."""
    limit = MAX_ARTIFACTS if limit is None else limit
    horizon = run_clock_ns() + FUTURE_MTIME_SLACK_NS
    found, newest = [], 0
    for rel, st in _regular_files(workspace, skip_dot_dirs=True):
        mtime = st.st_mtime_ns
        if mtime >= since_ns:
            found.append((rel, st.st_size))
        if newest < mtime <= horizon:
            newest = mtime
    return sorted(found)[:limit], newest


def workspace_usage(workspace: str) -> int:
    """Bytes in the workspace's regular files, dot-directories included (symlinks not followed).

    Within the same walk bound: past it, the total is of the part looked at.
    """
    return sum(st.st_size for _, st in _regular_files(workspace, skip_dot_dirs=False))


def _regular_files(workspace: str, *, skip_dot_dirs: bool) -> Iterator[tuple[str, os.stat_result]]:
    """``(relative path, lstat)`` of each regular file, at most MAX_SCANNED entries looked at.

    Each directory is read through a descriptor opened beneath the workspace's (``O_NOFOLLOW``: a
    directory swapped for a symlink meanwhile is not entered) and each file's lstat is taken relative to
    it: resolving a full path per file cost a sixth of the walk. One directory is open at a time, so a
    wide or deep tree cannot run the executor out of descriptors.
    """
    try:
        ws_fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # may be a symlink itself
    except OSError:
        return  # no workspace (yet), or the code made it unreadable
    scanned = 0
    stack = [""]  # relative directory paths still to walk
    try:
        while stack:
            rel_dir = stack.pop()
            try:
                dir_fd = os.open(rel_dir, DIR_FLAGS, dir_fd=ws_fd) if rel_dir else ws_fd
            except OSError:
                continue  # vanished, replaced by a symlink, or made unreadable meanwhile
            prefix = f"{rel_dir}/" if rel_dir else ""
            try:
                with os.scandir(dir_fd) as entries:
                    for entry in entries:
                        scanned += 1
                        if scanned > MAX_SCANNED:
                            log(
                                "workspace_scan_cut",
                                purpose="artifacts" if skip_dot_dirs else "usage",
                                scanned=MAX_SCANNED,
                            )
                            return
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                if not (skip_dot_dirs and entry.name.startswith(".")):
                                    stack.append(prefix + entry.name)
                            elif entry.is_file(follow_symlinks=False):
                                yield prefix + entry.name, entry.stat(follow_symlinks=False)
                        except OSError:
                            continue  # vanished or unreadable meanwhile
            except OSError:
                continue  # a directory the code made unreadable
            finally:
                if dir_fd != ws_fd:
                    os.close(dir_fd)
    finally:
        os.close(ws_fd)
