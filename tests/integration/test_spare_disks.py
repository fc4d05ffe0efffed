"""Workspace disks made ahead of cold launches (runtimes/spare_disks.py), on real loop mounts: a launch
renames a fresh, mounted disk into its session's directory; a stale or taken spare is never handed out
again, and forgetting a state dir leaves nothing mounted."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxcp.adapters.runtimes import disk, spare_disks

SIZE_MB = 64
OWNER = (1000, 1000)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


def _wait_ready(state: Path, count: int) -> None:
    spares = spare_disks._shared[spare_disks._root(state)]
    deadline = time.monotonic() + 30
    while spares.ready(SIZE_MB, OWNER) < count:
        assert time.monotonic() < deadline, f"fewer than {count} spares after 30 s"
        time.sleep(0.05)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    assert disk.available(), "workspace disks need root, loop devices and mkfs.ext4"
    state = tmp_path / "state"
    state.mkdir()
    spare_disks.keep_for(state)
    try:
        yield state
    finally:
        spare_disks.forget_under(state)
        assert _mounts_under(tmp_path) == []


def test_a_launch_takes_a_mounted_disk_made_ahead_and_a_new_one_is_made(state: Path) -> None:
    first = state / "sessions" / "sess_a"
    assert spare_disks.take(state, first, SIZE_MB, OWNER) is False  # none yet: the first asks for them
    _wait_ready(state, spare_disks.KEEP)
    second = state / "sessions" / "sess_b"
    assert spare_disks.take(state, second, SIZE_MB, OWNER) is True
    workspace = second / disk.MOUNT_POINT
    assert os.path.ismount(workspace) and (second / disk.IMAGE).is_file()
    st = workspace.stat()
    assert (st.st_uid, st.st_gid) == OWNER
    fs = subprocess.run(["findmnt", "-no", "FSTYPE,SIZE", str(workspace)], capture_output=True, text=True)
    assert fs.stdout.split()[0] == "ext4", fs.stdout
    assert os.listdir(workspace) == []  # fresh: nothing of anyone
    _wait_ready(state, spare_disks.KEEP)  # refilled after the take
    disk.remove(second)
    assert not os.path.ismount(workspace)


def test_a_spare_whose_mount_is_gone_is_not_handed_out(state: Path) -> None:
    spare_disks.take(state, state / "sessions" / "sess_x", SIZE_MB, OWNER)
    _wait_ready(state, spare_disks.KEEP)
    for point in _mounts_under(state / "spare-disks"):
        subprocess.run(["umount", "-l", point], check=True)
    taken = state / "sessions" / "sess_c"
    while spare_disks.take(state, taken, SIZE_MB, OWNER):  # refills may remount some: none stale
        assert os.path.ismount(taken / disk.MOUNT_POINT)
        disk.remove(taken)
        os.rmdir(taken)


def test_an_existing_session_dir_keeps_the_spare_for_the_next_launch(state: Path) -> None:
    spare_disks.take(state, state / "sessions" / "sess_y", SIZE_MB, OWNER)
    _wait_ready(state, spare_disks.KEEP)
    existing = state / "sessions" / "sess_d"
    (existing / "etc").mkdir(parents=True)  # an earlier attempt's leftovers
    assert spare_disks.take(state, existing, SIZE_MB, OWNER) is False
    assert spare_disks._shared[spare_disks._root(state)].ready(SIZE_MB, OWNER) == spare_disks.KEEP


def test_no_spares_where_none_are_kept(tmp_path: Path) -> None:
    assert spare_disks.take(tmp_path, tmp_path / "sessions" / "sess_e", SIZE_MB, OWNER) is False
    time.sleep(0.2)
    assert _mounts_under(tmp_path) == [] and not (tmp_path / "spare-disks").exists()
