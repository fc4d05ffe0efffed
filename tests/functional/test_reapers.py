"""The schedules: crash detection and retries, control-plane timeouts, session expiry and dead sandboxes.
Time is injected, never slept."""

from __future__ import annotations

from datetime import timedelta

from sandboxcp.adapters.tables import SessionRecord
from sandboxcp.domain import clock
from sandboxcp.domain.models import Execution
from sandboxcp.domain.states import ExecutionStatus, SessionStatus
from sandboxcp.services.reaper import backoff_seconds, reap_executions
from sandboxcp.services.session_reaper import reap_sessions
from tests.functional.conftest import SAMPLE_SESSION, invoke, sample_event, seed_session


def _execution(
    deps, eid: str, *, status=ExecutionStatus.RUNNING, retry_count=0, parent=None, timeout=30, age_s=0
):
    now = clock.now() - timedelta(seconds=age_s)
    deps.executions.create(
        Execution(
            execution_id=eid,
            session_id=SAMPLE_SESSION,
            tenant_id="tenant-a",
            status=ExecutionStatus.PENDING,
            code="def handler(e): return 1",
            language="python",
            timeout=timeout,
            created_at=now,
            retry_count=retry_count,
            parent_execution_id=parent,
        )
    )
    if status == ExecutionStatus.RUNNING:
        deps.executions.transition(eid, ExecutionStatus.RUNNING, now=now, fields={"started_at": now})


def test_backoff_doubles_and_caps_at_ten_seconds():
    assert [backoff_seconds(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_no_heartbeat_for_15_s_crashes_and_retries_linked_to_the_original(deps):
    seed_session(deps)
    _execution(deps, "exec_20260101_00000001")
    start = clock.now()
    fresh = reap_executions(deps, now=start + timedelta(seconds=10))
    assert fresh.crashed == [] and fresh.examined == 1
    report = reap_executions(deps, now=start + timedelta(seconds=16))
    assert report.crashed == ["exec_20260101_00000001"] and report.retried == []
    crashed = deps.executions.get("exec_20260101_00000001")
    assert crashed.status == ExecutionStatus.CRASHED and "heartbeat" in crashed.error_message
    # The backoff (1 s for the first retry) is a stored time, not a sleep: recorded now, sent later.
    [retry_id] = report.scheduled
    retry = deps.executions.get(retry_id)
    assert retry.status == ExecutionStatus.PENDING
    assert retry.retry_after == start + timedelta(seconds=17)
    assert (retry.parent_execution_id, retry.retry_count) == ("exec_20260101_00000001", 1)
    assert retry.code == crashed.code
    assert deps.executor.submitted == []
    early = reap_executions(deps, now=start + timedelta(seconds=16.5))
    assert early.retried == [] and early.crashed == [] and deps.executor.submitted == []
    due = reap_executions(deps, now=start + timedelta(seconds=17))
    assert due.retried == [retry_id]
    assert [e.execution_id for _, e in deps.executor.submitted] == [retry_id]
    sent = deps.executions.get(retry_id)
    assert sent.retry_after is None and sent.last_heartbeat_at == start + timedelta(seconds=17)
    # A second run (or an overlapping one) never sends it again; its crash clock runs from the send.
    again = reap_executions(deps, now=start + timedelta(seconds=30))
    assert again.retried == [] and again.crashed == [] and len(deps.executor.submitted) == 1
    late = reap_executions(deps, now=start + timedelta(seconds=33))
    assert late.crashed == [retry_id] and len(late.scheduled) == 1  # the second retry, backoff 2 s
    assert deps.executions.get(late.scheduled[0]).retry_after == start + timedelta(seconds=35)
    retry = deps.executions.get(retry_id)
    listed = deps.executions.list_for_session(SAMPLE_SESSION, status=None, limit=10, offset=0)
    assert {e.execution_id for e in listed.items} == {"exec_20260101_00000001", retry_id, *late.scheduled}


def test_a_due_retry_of_an_ended_session_fails_and_is_claimed_once(deps):
    seed_session(deps)
    _execution(deps, "exec_20260101_00000001")
    start = clock.now()
    [retry_id] = reap_executions(deps, now=start + timedelta(seconds=16)).scheduled
    due = deps.executions.get(retry_id).retry_after
    assert deps.executions.claim_retry(retry_id, due, start) is True
    assert deps.executions.claim_retry(retry_id, due, start) is False  # a racing run loses
    # The claimed one was never heard of (no heartbeat): it crashes in turn and is rescheduled.
    [other_id] = reap_executions(deps, now=start + timedelta(seconds=40)).scheduled
    deps.sessions.transition(SAMPLE_SESSION, SessionStatus.TERMINATED, now=start)
    report = reap_executions(deps, now=start + timedelta(seconds=60))
    assert report.retried == [] and deps.executor.submitted == []
    failed = deps.executions.get(other_id)
    assert failed.status == ExecutionStatus.FAILED and "session ended" in failed.error_message


def test_retries_stop_after_three(deps):
    seed_session(deps)
    _execution(deps, "exec_20260101_00000003", retry_count=3, parent="exec_20260101_00000000")
    report = reap_executions(deps, now=clock.now() + timedelta(seconds=20))
    assert report.crashed == ["exec_20260101_00000003"] and report.retried == []


def test_heartbeats_keep_an_execution_alive(deps):
    seed_session(deps)
    _execution(deps, "exec_20260101_00000001")
    deps.executions.heartbeat("exec_20260101_00000001", clock.now() + timedelta(seconds=12))
    report = reap_executions(deps, now=clock.now() + timedelta(seconds=20))
    assert report.crashed == []


def test_control_plane_enforces_the_execution_timeout(deps):
    seed_session(deps)
    _execution(deps, "exec_20260101_00000001", timeout=5)
    deps.executions.heartbeat("exec_20260101_00000001", clock.now() + timedelta(seconds=14))
    report = reap_executions(deps, now=clock.now() + timedelta(seconds=16))
    assert report.timed_out == ["exec_20260101_00000001"]
    done = deps.executions.get("exec_20260101_00000001")
    assert done.status == ExecutionStatus.TIMEOUT and done.outcome.exit_code == -1
    assert "timeout" in done.outcome.stderr


def test_reaper_function_runs_on_its_sample_event(deps):
    assert invoke("schedule_reap_executions", sample_event("schedule_reap_executions"))["examined"] == 0
    assert invoke("schedule_reap_sessions", sample_event("schedule_reap_sessions"))["examined"] == 0


def test_idle_and_over_age_sessions_expire(deps):
    seed_session(deps, "sess_0000000000000001")
    report = reap_sessions(deps, now=clock.now() + timedelta(minutes=4))
    assert report.expired == [] and report.examined == 1
    report = reap_sessions(deps, now=clock.now() + timedelta(minutes=5, seconds=30))  # lifetime: 300 s
    assert report.expired == ["sess_0000000000000001"]
    assert deps.sessions.get("sess_0000000000000001").status == SessionStatus.TIMEOUT
    assert deps.runtime.destroyed == ["proc-sess_0000000000000001"]


def test_idle_session_is_terminated(deps):
    seed_session(deps)
    deps.sessions.update_fields(SAMPLE_SESSION, {"timeout": 3600}, only_if=[SessionStatus.RUNNING])
    report = reap_sessions(deps, now=clock.now() + timedelta(minutes=31))
    assert report.idle == [SAMPLE_SESSION]
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert stored.status == SessionStatus.TERMINATED and stored.terminated_at


def test_a_session_whose_sandbox_died_fails(deps):
    seed_session(deps)
    deps.runtime.destroyed.append(f"proc-{SAMPLE_SESSION}")  # the recording runtime now reports it missing
    report = reap_sessions(deps)
    assert report.failed == [SAMPLE_SESSION]
    assert "exited" in deps.sessions.get(SAMPLE_SESSION).error_message


def test_a_session_stuck_creating_fails(deps):
    seed_session(deps, status=SessionStatus.CREATING)
    assert reap_sessions(deps, now=clock.now() + timedelta(seconds=100)).failed == []
    assert reap_sessions(deps, now=clock.now() + timedelta(seconds=200)).failed == [SAMPLE_SESSION]


def test_reaper_reads_only_active_sessions(deps):
    """10,000 ended sessions and 10 live ones: the reaper's reads are the 10 (no Scan, no history)."""
    now = clock.now()
    with SessionRecord.batch_write() as batch:
        for i in range(10_000):
            sid = f"sess_t{i:015d}"
            batch.save(
                SessionRecord(
                    session_id=sid,
                    tenant_id="tenant-a",
                    template_id="python-basic",
                    status="terminated",
                    tenant_status="tenant-a#terminated",
                    runtime_type="process",
                    workspace_path="s3://b/x/",
                    resources={"cpu": "1", "memory": "512Mi", "disk": "1Gi", "max_processes": 128},
                    timeout=300,
                    created_at=now,
                    updated_at=now,
                    last_activity_at=now,
                )
            )
    for i in range(10):
        seed_session(deps, f"sess_a{i:015d}")
    calls: list[tuple[str, int]] = []
    client = SessionRecord._get_connection().connection.client

    def count(http_response, parsed, model, **kwargs):  # botocore after-call hook
        calls.append((model.name, len(parsed.get("Items", []))))

    client.meta.events.register("after-call.dynamodb", count)
    try:
        report = reap_sessions(deps)
    finally:
        client.meta.events.unregister("after-call.dynamodb", count)
    assert report.examined == 10
    assert all(op != "Scan" for op, _ in calls)
    assert sum(n for op, n in calls if op == "Query") == 10


def test_an_execution_that_keeps_beating_keeps_its_session_for_35_minutes(deps):
    """An execution may run up to an hour; the idle limit is 30 minutes. Its heartbeats (through the real
    internal handler, every 5 s of injected time) are activity: the session outlives the idle limit, and
    is idle again 30 minutes after the last beat."""
    seed_session(deps)
    deps.sessions.update_fields(SAMPLE_SESSION, {"timeout": 6 * 3600}, only_if=[SessionStatus.RUNNING])
    _execution(deps, "exec_20260101_00000001", timeout=3600)
    start = clock.now()
    try:
        for beat in range(0, 35 * 60 + 1, 5):
            at = start + timedelta(seconds=beat)
            clock.set_clock(lambda at=at: at)
            assert invoke("internal_heartbeat", sample_event("internal_heartbeat"))["statusCode"] == 200
            if beat % 60 == 0:
                assert reap_sessions(deps, now=at).idle == []
                assert reap_executions(deps, now=at).crashed == []
        last_beat = clock.now()
    finally:
        clock.set_clock(None)
    assert deps.sessions.get(SAMPLE_SESSION).status == SessionStatus.RUNNING
    assert reap_sessions(deps, now=last_beat + timedelta(minutes=29)).idle == []
    assert reap_sessions(deps, now=last_beat + timedelta(minutes=31)).idle == [SAMPLE_SESSION]


def test_the_session_reaper_asks_the_runtime_once_per_tick_for_every_running_session(deps):
    """O(live) and batched: one `states` call for all running sessions (ECS: 100 tasks a call), and a
    sandbox the runtime reports gone fails its session."""
    ids = [f"sess_00000000000000{n:02}" for n in range(12)]
    for session_id in ids:
        seed_session(deps, session_id)
    deps.runtime.destroyed.append(f"proc-{ids[3]}")  # gone from under its session
    report = reap_sessions(deps)
    assert report.examined == 12
    assert deps.runtime.state_calls == 1
    assert report.failed == [ids[3]]
