"""Orphan reaper: sandboxes the runtime manages whose session is not creating/running are destroyed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sandboxcp.adapters.runtimes.process import ProcessRuntime
from sandboxcp.domain.ports import ManagedSandbox
from sandboxcp.domain.states import SessionStatus
from sandboxcp.services.orphans import reap_orphans
from tests.functional.conftest import RecordingRuntime, invoke, sample_event, seed_session


class InventoryRuntime(RecordingRuntime):
    """The recording double plus the runtimes' `list_managed()`."""

    def __init__(
        self, managed: list[tuple[str, str | None, str]], broken: frozenset[str] = frozenset()
    ) -> None:
        super().__init__()
        self.managed = managed
        self.broken = broken

    def list_managed(self) -> list[tuple[str, str | None, str]]:
        return [m for m in self.managed if m[0] not in self.destroyed]

    def destroy(self, container_id: str) -> None:
        if container_id in self.broken:
            raise RuntimeError("engine unreachable")
        super().destroy(container_id)


def _sid(n: int) -> str:
    return f"sess_{n:016d}"


def test_sandboxes_without_a_live_session_are_destroyed(deps):
    seed_session(deps, _sid(1), status=SessionStatus.RUNNING)  # container proc-<sid>: kept
    seed_session(deps, _sid(2), status=SessionStatus.CREATING)  # kept
    seed_session(deps, _sid(3), status=SessionStatus.TERMINATED)
    seed_session(deps, _sid(4), status=SessionStatus.FAILED)
    seed_session(deps, _sid(6), status=SessionStatus.RUNNING)
    seed_session(deps, _sid(7), status=SessionStatus.CREATING)
    deps.sessions.update_fields(_sid(7), {"container_id": None}, only_if=[SessionStatus.CREATING])
    runtime = InventoryRuntime(
        [
            (f"proc-{_sid(1)}", _sid(1), "running"),
            (f"proc-{_sid(2)}", _sid(2), "creating"),
            (f"proc-{_sid(3)}", _sid(3), "running"),
            (f"proc-{_sid(4)}", _sid(4), "exited"),
            (f"proc-{_sid(5)}", _sid(5), "running"),  # no such session
            ("c0ffee", _sid(6), "running"),  # the session owns another container (a relaunch leftover)
            ("d00d", _sid(7), "creating"),  # started, container id not written yet: kept
            ("unlabelled", None, "running"),
        ]
    )
    deps.runtime = runtime
    report = invoke("schedule_reap_orphans", sample_event("schedule_reap_orphans"))
    assert report["examined"] == 8
    assert sorted(report["destroyed"]) == sorted(
        [f"proc-{_sid(3)}", f"proc-{_sid(4)}", f"proc-{_sid(5)}", "c0ffee", "unlabelled"]
    )
    assert sorted(runtime.destroyed) == sorted(report["destroyed"])
    assert report["errors"] == []
    # Live sessions are untouched, and a second run finds nothing more to do.
    assert deps.sessions.get(_sid(1)).status == SessionStatus.RUNNING
    again = reap_orphans(deps)
    assert again.examined == 3 and again.destroyed == []


def test_a_failing_destroy_does_not_stop_the_sweep(deps):
    runtime = InventoryRuntime(
        [("a", _sid(8), "running"), ("b", _sid(9), "running")], broken=frozenset({"a"})
    )
    deps.runtime = runtime
    report = reap_orphans(deps)
    assert report.errors == ["a"] and report.destroyed == ["b"]


def test_runtimes_without_an_inventory_are_skipped(deps):
    report = reap_orphans(deps)  # the plain RecordingRuntime has no list_managed()
    assert report.examined == 0 and deps.runtime.destroyed == []


def test_the_process_runtime_lists_live_executors_and_the_reaper_kills_orphans(deps, tmp_path: Path):
    """A sandbox left by an earlier control plane (only its pid file knows it) is found and killed."""
    runtime = ProcessRuntime(str(tmp_path), "")
    sleep = [sys.executable, "-c", "import time, sys; time.sleep(60)"]
    # Like bwrap's, the orphan's command line binds its session directory.
    orphan = subprocess.Popen([*sleep, f"{tmp_path}/sessions/{_sid(1)}/workspace"], start_new_session=True)
    stranger = subprocess.Popen(sleep, start_new_session=True)  # took the pid of a sandbox long gone
    ended = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    ended.wait()
    try:
        for sid, proc in ((_sid(1), orphan), (_sid(2), ended), (_sid(3), stranger)):
            (tmp_path / "sessions" / sid).mkdir(parents=True)
            (tmp_path / "sessions" / sid / "pid").write_text(str(proc.pid))
        assert runtime.list_managed() == [ManagedSandbox(f"proc-{_sid(1)}", _sid(1), "running")]
        deps.runtime = runtime
        report = reap_orphans(deps)
        assert report.destroyed == [f"proc-{_sid(1)}"]
        deadline = time.monotonic() + 5
        while orphan.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert orphan.poll() is not None
        assert runtime.list_managed() == []
        assert stranger.poll() is None
    finally:
        for proc in (orphan, stranger):
            proc.kill()
            proc.wait()
