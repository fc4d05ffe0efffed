"""A session's /workspace with a real disk limit on a local host: a sparse ext4 image of the session's
`disk` size, loop-mounted in the session's host directory and bind-mounted into the sandbox.

Why not a tmpfs: tmpfs pages are charged to the sandbox's memory cgroup, so filling a 1 GiB workspace in
a 512 MiB sandbox OOM-kills the executor instead of failing the write. Why not a quota: the state dir's
file system may not support project quotas. The image is sparse, so the host pays only for what was
written, and never more than `disk`; a full workspace fails writes with ENOSPC, as a full disk does.

Needs root, util-linux `mount` and e2fsprogs' `mkfs.ext4` (Debian has both by default) and loop devices.
Where that is missing, `available()` says so and the runtimes fall back to a size-limited tmpfs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

IMAGE = "workspace.img"
MOUNT_POINT = "workspace"
_TIMEOUT_S = 30


class DiskUnavailable(Exception):
    """The workspace image could not be made or mounted."""


@functools.cache
def available() -> bool:
    """Root, loop devices, mkfs.ext4 and mount: fixed for the host, so looked up once (a launch asked three
    times, each a PATH search for two programs)."""
    return (
        os.geteuid() == 0
        and os.path.exists("/dev/loop-control")
        and shutil.which("mkfs.ext4") is not None
        and shutil.which("mount") is not None
    )


def create(session_dir: Path, size_mb: int, owner: tuple[int, int]) -> Path:
    """Make and mount the workspace of `size_mb` MiB in `session_dir`; returns the mount point. `owner`:
    the uid/gid the workspace's root belongs to on the host."""
    mount_point = prepare(session_dir)
    format_and_mount(session_dir, size_mb, owner)
    return mount_point


def prepare(session_dir: Path) -> Path:
    """The first half of `create`: an empty mount point, nothing of an earlier sandbox left. A runtime
    can name it in a container's binds while `format_and_mount` runs (the bind is resolved at start)."""
    mount_point = session_dir / MOUNT_POINT
    remove(session_dir)  # never reuse what an earlier sandbox of the session could write
    mount_point.mkdir(parents=True)
    return mount_point


def format_and_mount(session_dir: Path, size_mb: int, owner: tuple[int, int]) -> None:
    """The second half of `create`: the image made, formatted and mounted on `prepare`'s mount point."""
    image, mount_point = session_dir / IMAGE, session_dir / MOUNT_POINT
    with open(image, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    _run(
        "mkfs.ext4",
        "-q",
        "-F",
        "-m",
        "0",  # no blocks reserved for root: the session gets its whole limit
        "-O",
        "^has_journal",  # scratch space: no journal to write twice
        "-E",
        f"lazy_itable_init=1,root_owner={owner[0]}:{owner[1]}",
        str(image),
    )
    _run("mount", "-o", "loop,nosuid,nodev", str(image), str(mount_point))
    with contextlib.suppress(OSError):
        (mount_point / "lost+found").rmdir()


def remove(session_dir: Path) -> None:
    """Unmount (lazily: a dying sandbox may still hold it) and delete the workspace image."""
    mount_point = session_dir / MOUNT_POINT
    if os.path.ismount(mount_point):
        with contextlib.suppress(DiskUnavailable):
            _run("umount", "-l", str(mount_point))
    with contextlib.suppress(OSError):
        mount_point.rmdir()
    with contextlib.suppress(FileNotFoundError):
        (session_dir / IMAGE).unlink()


def remove_all_under(root: Path) -> None:
    """Unmount every workspace below `root` (a local stack starting over a state dir that a killed
    stack left behind)."""
    prefix = str(root.resolve()).rstrip("/") + "/"
    try:
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
    except OSError:
        return
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        with contextlib.suppress(DiskUnavailable):
            _run("umount", "-l", point)


def space(path: str) -> tuple[int, int] | None:
    """(bytes used, bytes in all) of the file system holding `path`; None if it cannot be read."""
    try:
        s = os.statvfs(path)
    except OSError:
        return None
    return s.f_frsize * (s.f_blocks - s.f_bfree), s.f_frsize * s.f_blocks


def _run(*argv: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DiskUnavailable(f"{argv[0]}: {exc}") from None
    if done.returncode != 0:
        raise DiskUnavailable(f"{argv[0]} failed: {done.stderr.strip() or done.returncode}")
