"""Retention: ended sessions and finished executions carry the DynamoDB TTL attribute `expires_at` (epoch
seconds), 7 and 30 days after they end by default, configurable through the settings."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from sandboxcp.adapters.tables import ExecutionRecord, SessionRecord
from sandboxcp.domain import clock
from sandboxcp.domain.models import Execution, ExecutionMetrics, ExecutionOutcome
from sandboxcp.domain.states import ExecutionStatus, SessionStatus
from sandboxcp.services.deps import Dependencies
from sandboxcp.settings import Settings
from tests.functional.conftest import SAMPLE_EXECUTION, SAMPLE_SESSION, TENANT, seed_session


def _execution(deps, eid: str = SAMPLE_EXECUTION) -> None:
    deps.executions.create(
        Execution(
            execution_id=eid,
            session_id=SAMPLE_SESSION,
            tenant_id=TENANT,
            status=ExecutionStatus.PENDING,
            code="print(1)",
            language="python",
            timeout=30,
            created_at=clock.now(),
        )
    )


def _outcome() -> ExecutionOutcome:
    return ExecutionOutcome(
        status="success", exit_code=0, execution_time=0.1, metrics=ExecutionMetrics(duration_ms=100)
    )


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def test_live_items_have_no_ttl_and_ended_ones_expire_7_and_30_days_after(deps):
    seed_session(deps)
    _execution(deps)
    assert SessionRecord.get(SAMPLE_SESSION).expires_at is None
    assert ExecutionRecord.get(SAMPLE_EXECUTION).expires_at is None
    deps.executions.transition(SAMPLE_EXECUTION, ExecutionStatus.RUNNING, now=clock.now())
    assert ExecutionRecord.get(SAMPLE_EXECUTION).expires_at is None  # still in flight

    done_at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    deps.executions.record_outcome(SAMPLE_EXECUTION, _outcome(), now=done_at)
    assert ExecutionRecord.get(SAMPLE_EXECUTION).expires_at == _epoch(done_at + timedelta(days=30))

    ended_at = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    deps.sessions.transition(SAMPLE_SESSION, SessionStatus.TERMINATED, now=ended_at)
    assert SessionRecord.get(SAMPLE_SESSION).expires_at == _epoch(ended_at + timedelta(days=7))


def test_crashed_executions_and_failed_sessions_expire_too(deps):
    seed_session(deps)
    _execution(deps)
    at = datetime(2026, 4, 1, tzinfo=UTC)
    deps.executions.transition(SAMPLE_EXECUTION, ExecutionStatus.CRASHED, now=at, fields={"completed_at": at})
    assert ExecutionRecord.get(SAMPLE_EXECUTION).expires_at == _epoch(at + timedelta(days=30))
    deps.sessions.transition(SAMPLE_SESSION, SessionStatus.FAILED, now=at)
    assert SessionRecord.get(SAMPLE_SESSION).expires_at == _epoch(at + timedelta(days=7))


def test_retention_is_configurable_through_the_environment(deps):
    env = {**os.environ, "SESSION_RETENTION_DAYS": "1", "EXECUTION_RETENTION_DAYS": "2.5"}
    settings = Settings.model_validate(env)
    assert (settings.session_retention_days, settings.execution_retention_days) == (1, 2.5)
    custom = Dependencies(settings)
    custom.runtime = deps.runtime
    seed_session(custom)
    _execution(custom)
    at = datetime(2026, 5, 1, tzinfo=UTC)
    custom.executions.record_outcome(SAMPLE_EXECUTION, _outcome(), now=at)
    custom.sessions.transition(SAMPLE_SESSION, SessionStatus.TIMEOUT, now=at)
    assert ExecutionRecord.get(SAMPLE_EXECUTION).expires_at == _epoch(at + timedelta(days=2.5))
    assert SessionRecord.get(SAMPLE_SESSION).expires_at == _epoch(at + timedelta(days=1))
