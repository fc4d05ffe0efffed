"""Every state change is a conditional write: of two racing writers exactly one wins (moto DynamoDB)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandboxcp.domain import clock
from sandboxcp.domain.errors import StateConflict
from sandboxcp.domain.states import SessionStatus
from tests.functional.conftest import SAMPLE_SESSION, seed_session


def test_racing_transitions_one_winner(deps, atomic_writes):
    seed_session(deps, status=SessionStatus.CREATING)
    targets = [SessionStatus.RUNNING, SessionStatus.FAILED, SessionStatus.TERMINATED] * 4
    winners: list[SessionStatus] = []  # in the order the writes landed
    lock = threading.Lock()

    def attempt(target):
        try:
            deps.sessions.transition(SAMPLE_SESSION, target, now=clock.now())
        except StateConflict:
            return
        with lock:
            winners.append(target)

    with ThreadPoolExecutor(len(targets)) as pool:
        list(pool.map(attempt, targets))
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert stored is not None
    # Exactly one writer leaves 'creating'; only after 'running' may one more (terminal) writer win.
    assert 1 <= len(winners) <= 2
    if len(winners) == 2:
        assert SessionStatus.RUNNING in winners and stored.status != SessionStatus.RUNNING
    assert stored.status in winners


def test_stale_writer_cannot_resurrect_a_terminated_session(deps):
    seed_session(deps, status=SessionStatus.TERMINATED)
    with pytest.raises(StateConflict):
        deps.sessions.transition(SAMPLE_SESSION, SessionStatus.RUNNING, now=clock.now())
    with pytest.raises(StateConflict):
        deps.sessions.update_fields(SAMPLE_SESSION, {"container_id": "x"}, only_if=[SessionStatus.CREATING])
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert stored is not None and stored.status == SessionStatus.TERMINATED
