"""Session and execution state machines (FR-003, FR-017): every legal move is allowed, every other refused."""

from __future__ import annotations

import itertools

import pytest

from sandboxcp.domain.errors import StateConflict
from sandboxcp.domain.states import (
    EXECUTION_TRANSITIONS,
    SESSION_TRANSITIONS,
    ExecutionStatus,
    SessionStatus,
    check_execution_transition,
    check_session_transition,
    execution_sources,
    session_sources,
)

S, E = SessionStatus, ExecutionStatus

LEGAL_SESSION = {
    (S.CREATING, S.RUNNING),
    (S.CREATING, S.FAILED),
    (S.CREATING, S.TERMINATED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.TIMEOUT),
    (S.RUNNING, S.TERMINATED),
}
LEGAL_EXECUTION = {
    (E.PENDING, E.RUNNING),
    (E.PENDING, E.COMPLETED),
    (E.PENDING, E.FAILED),
    (E.PENDING, E.TIMEOUT),
    (E.PENDING, E.CRASHED),
    (E.RUNNING, E.COMPLETED),
    (E.RUNNING, E.FAILED),
    (E.RUNNING, E.TIMEOUT),
    (E.RUNNING, E.CRASHED),
}


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(S, S)))
def test_session_transitions(src, dst):
    if (src, dst) in LEGAL_SESSION:
        check_session_transition(src, dst)
    else:
        with pytest.raises(StateConflict):
            check_session_transition(src, dst)


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(E, E)))
def test_execution_transitions(src, dst):
    if (src, dst) in LEGAL_EXECUTION:
        check_execution_transition(src, dst)
    else:
        with pytest.raises(StateConflict):
            check_execution_transition(src, dst)


def test_terminal_states_have_no_way_out():
    for status in (S.COMPLETED, S.FAILED, S.TIMEOUT, S.TERMINATED):
        assert SESSION_TRANSITIONS[status] == frozenset()
    for status in (E.COMPLETED, E.FAILED, E.TIMEOUT, E.CRASHED):
        assert EXECUTION_TRANSITIONS[status] == frozenset()


def test_sources_are_the_inverse_of_the_transition_table():
    assert session_sources(S.RUNNING) == {S.CREATING}
    assert session_sources(S.TERMINATED) == {S.CREATING, S.RUNNING}
    assert execution_sources(E.RUNNING) == {E.PENDING}
    assert execution_sources(E.CRASHED) == {E.PENDING, E.RUNNING}
