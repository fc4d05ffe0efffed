"""The warm pool on moto: refill, claim on launch (one session per warm sandbox), fallback to a cold
start, binding with a session-scoped token, and the orphan reaper's view of pooled sandboxes."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from sandboxcp.domain.models import Session
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.states import SessionStatus
from sandboxcp.services import auth
from sandboxcp.services.callbacks import container_ready
from sandboxcp.services.launch import start_sandbox
from sandboxcp.services.orphans import reap_orphans
from sandboxcp.services.requests.reports import ContainerReadyReport
from sandboxcp.services.warm_pool import pool_sizes, refill
from tests.functional.conftest import RecordingExecutor, seed_session


def _pooled(deps, spec: str = "python-basic=2"):  # type: ignore[no-untyped-def]
    deps.settings = deps.settings.model_copy(update={"warm_pool": spec})
    return deps


def test_pool_sizes_parse_leniently():
    assert pool_sizes("python-basic=3, nodejs-basic=1,bad,x=y,big=999") == {
        "python-basic": 3,
        "nodejs-basic": 1,
        "big": 50,
    }


def test_refill_starts_unbound_sandboxes_up_to_the_size(deps):
    _pooled(deps)
    report = refill(deps)
    assert len(report.started) == 2
    for spec in deps.runtime.started:
        assert spec.session_id.startswith("pool_") and spec.env["SANDBOXCP_POOL_ID"] == spec.session_id
        assert "SANDBOXCP_CALLBACK_TOKEN" not in spec.env and "SANDBOXCP_SESSION_ID" not in spec.env
        assert spec.image == "sandboxcp/python-basic:latest"
    assert refill(deps).started == []
    dead = deps.runtime.started[0].session_id
    deps.runtime.destroyed.append(f"proc-{dead}")  # the recording runtime now reports it missing
    again = refill(deps)
    assert again.retired == [dead] and len(again.started) == 1


def test_a_launch_claims_a_warm_sandbox_and_binds_it_to_the_session(deps):
    _pooled(deps, "python-basic=1")
    refill(deps)
    warm = deps.runtime.started[0]
    seed_session(deps, status=SessionStatus.CREATING)
    out = start_sandbox(deps, "sess_0000000000000001", "task-token")
    assert out == {"container_id": f"proc-{warm.session_id}"}
    assert len(deps.runtime.started) == 1  # nothing started cold
    [(url, sid, token, env)] = deps.executor.binds
    assert env == {}  # the session's own env vars (none here); never the platform's
    assert sid == "sess_0000000000000001" and url.endswith(f"{warm.session_id}.sock")
    assert auth.authenticate_callback(deps, f"Bearer {token}") == sid
    stored = deps.sessions.get(sid)
    assert stored.container_id == f"proc-{warm.session_id}" and stored.executor_url == url
    assert deps.warm_pool.get(warm.session_id).session_id == sid


def _warm_binds(deps):
    """Bindings of warm sandboxes (cold starts are bound too, over their own new executor)."""
    return [b for b in deps.executor.binds if "pool_" in b[0]]


def test_custom_resources_or_an_empty_pool_start_cold(deps):
    _pooled(deps, "python-basic=1")
    seed_session(deps, status=SessionStatus.CREATING)
    start_sandbox(deps, "sess_0000000000000001", "t")  # pool empty: cold
    assert deps.runtime.started[-1].session_id == "sess_0000000000000001"
    refill(deps)
    seed_session(deps, "sess_0000000000000002", status=SessionStatus.CREATING)
    deps.sessions.update_fields(
        "sess_0000000000000002",
        {"resources": ResourceLimit(cpu="2", memory="1Gi", disk="1Gi").model_dump()},
        only_if=[SessionStatus.CREATING],
    )
    start_sandbox(deps, "sess_0000000000000002", "t")
    assert deps.runtime.started[-1].session_id == "sess_0000000000000002" and _warm_binds(deps) == []


def test_two_launches_never_share_a_warm_sandbox(deps, atomic_writes):
    _pooled(deps, "python-basic=1")
    refill(deps)
    sids = [f"sess_000000000000000{i}" for i in range(1, 5)]
    for sid in sids:
        seed_session(deps, sid, status=SessionStatus.CREATING)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda sid: start_sandbox(deps, sid, "t"), sids))
    assert len(_warm_binds(deps)) == 1  # the other three started cold (and were bound cold)
    containers = [deps.sessions.get(sid).container_id for sid in sids]
    assert len(set(containers)) == 4


def test_orphan_reaper_keeps_waiting_and_owned_warm_sandboxes(deps):
    _pooled(deps, "python-basic=2")
    refill(deps)
    waiting, claimed = (s.session_id for s in deps.runtime.started)
    seed_session(deps, status=SessionStatus.CREATING)
    deps.warm_pool.claim(claimed, "sess_0000000000000001")
    deps.sessions.update_fields(
        "sess_0000000000000001", {"container_id": f"proc-{claimed}"}, only_if=[SessionStatus.CREATING]
    )
    deps.runtime.list_managed = lambda: [
        (f"proc-{waiting}", waiting, "running"),
        (f"proc-{claimed}", claimed, "running"),
    ]
    assert reap_orphans(deps).destroyed == []
    deps.sessions.transition(
        "sess_0000000000000001",
        SessionStatus.TERMINATED,
        now=deps.sessions.get("sess_0000000000000001").updated_at,
    )
    assert reap_orphans(deps).destroyed == [f"proc-{claimed}"]
    assert deps.warm_pool.get(claimed) is None and deps.warm_pool.get(waiting) is not None


# -- sizes, demand-following refill, inline claims (issue #14) -------------------------------------------
from datetime import timedelta  # noqa: E402

from sandboxcp.domain import clock  # noqa: E402
from sandboxcp.domain.errors import SandboxUnavailable  # noqa: E402
from sandboxcp.services.warm_pool import PoolPolicy, pool_policies  # noqa: E402
from tests.functional.conftest import body, invoke, sample_event  # noqa: E402


def test_pool_policies_default_to_the_seed_and_allow_zero():
    assert pool_policies("") == {
        "python-datascience": PoolPolicy(20, 40),
        "python-basic": PoolPolicy(10, 20),
        "nodejs-basic": PoolPolicy(5, 10),
    }
    assert pool_policies("none") == {}
    assert pool_policies("python-basic=2:8,nodejs-basic=0,python-datascience=0:3") == {
        "python-basic": PoolPolicy(2, 8),
        "python-datascience": PoolPolicy(0, 3),
    }


def test_refill_follows_claims_per_minute_between_floor_and_ceiling(deps):
    _pooled(deps, "python-basic=2:4")
    now = [clock.now()]
    clock.set_clock(lambda: now[0])
    try:
        assert refill(deps).targets == {"python-basic": 2}  # no demand yet: the floor
        for round_ in range(6):  # two claims every 10 s (12 per minute) for a minute
            now[0] += timedelta(seconds=10)
            for k, warm in enumerate(deps.warm_pool.available("python-basic", limit=10)[:2]):
                assert deps.warm_pool.claim(warm.pool_id, f"sess_{round_:08d}{k:08d}")
            report = refill(deps)
        assert report.targets["python-basic"] == 4  # grew with demand, capped at the ceiling
        assert len(deps.warm_pool.available("python-basic", limit=10)) == 4
        for _ in range(30):  # five quiet minutes: back to the floor, the surplus retired
            now[0] += timedelta(seconds=10)
            report = refill(deps)
        assert report.targets["python-basic"] == 2
        assert len(deps.warm_pool.available("python-basic", limit=10)) == 2
        assert len(deps.runtime.destroyed) == 2  # retired, not leaked
    finally:
        clock.set_clock(None)


def _create(deps, template: str = "python-basic"):  # type: ignore[no-untyped-def]
    event = sample_event("sessions_create")
    event["body"] = json.dumps({"template_id": template})
    event["headers"] = {k: v for k, v in event["headers"].items() if k.lower() != "idempotency-key"}
    return invoke("sessions_create", event)


class _CountingLaunch:
    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, session_id: str) -> None:
        self.started.append(session_id)

    def notify_ready(self, task_token, output) -> None:  # type: ignore[no-untyped-def]
        pass


def test_create_claims_a_warm_sandbox_inline_and_answers_running(deps):
    _pooled(deps, "python-basic=1:1")
    refill(deps)
    [warm] = deps.runtime.started
    deps.launch = _CountingLaunch()
    resp = _create(deps)
    assert resp["statusCode"] == 201, resp["body"]
    created = body(resp)
    sid = created["session_id"]
    assert created["status"] == "running" and created["container_id"] == f"proc-{warm.session_id}"
    assert deps.launch.started == []  # no launch workflow for it
    stored = deps.sessions.get(sid)
    assert stored.status == SessionStatus.RUNNING and stored.started_at is not None
    [(url, bound_sid, token, env)] = deps.executor.binds
    assert bound_sid == sid and url.endswith(f"{warm.session_id}.sock") and env == {}
    assert auth.authenticate_callback(deps, f"Bearer {token}") == sid  # the token was stored before the bind
    assert deps.warm_pool.get(warm.session_id).session_id == sid

    # The pool is empty now: the next create falls back to the launch workflow ('creating').
    again = body(_create(deps))
    assert again["status"] == "creating" and deps.launch.started == [again["session_id"]]
    # Templates without a pool always launch.
    assert body(_create(deps, "nodejs-basic"))["status"] == "creating"


def test_a_warm_sandbox_that_does_not_bind_is_discarded_and_the_create_falls_back(deps):
    _pooled(deps, "python-basic=1:1")
    refill(deps)
    [warm] = deps.runtime.started

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise SandboxUnavailable("The executor refused the binding (HTTP 409)")

    deps.executor.bind = refuse
    deps.launch = _CountingLaunch()
    created = body(_create(deps))
    assert created["status"] == "creating" and deps.launch.started == [created["session_id"]]
    stored = deps.sessions.get(created["session_id"])
    assert stored.container_id is None and stored.callback_token_hash is None  # nothing of the warm one
    assert f"proc-{warm.session_id}" in deps.runtime.destroyed and deps.warm_pool.get(warm.session_id) is None


def test_a_create_whose_warm_pool_cannot_be_read_still_launches(deps):
    """The pool is a shortcut: an error reading it (AccessDenied, a throttle) must not leave the session
    'creating' with no workflow behind it, nor answer 500."""
    _pooled(deps, "python-basic=1:1")
    refill(deps)

    def unreadable(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("the warm pool's table cannot be read")

    deps.warm_pool.available = unreadable
    deps.launch = _CountingLaunch()
    resp = _create(deps)
    assert resp["statusCode"] == 201, resp["body"]
    created = body(resp)
    assert created["status"] == "creating" and deps.launch.started == [created["session_id"]]


def test_concurrent_creates_never_share_a_warm_sandbox(deps, atomic_writes):
    _pooled(deps, "python-basic=2:2")
    refill(deps)
    deps.launch = _CountingLaunch()
    with ThreadPoolExecutor(4) as pool:
        created = [body(r) for r in pool.map(lambda _: _create(deps), range(4))]
    assert all("status" in c for c in created), created  # every create accepted (a refusal says why)
    running = [c for c in created if c["status"] == "running"]
    assert len(running) == 2 and len({c["container_id"] for c in running}) == 2
    assert sorted(deps.launch.started) == sorted(
        c["session_id"] for c in created if c["status"] == "creating"
    )


class _ReportingAtBind(RecordingExecutor):
    """An executor that reports container_ready the moment it is bound, as the real one does (its report
    can reach the control plane before the launch step's next write)."""

    def __init__(self, deps) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.deps = deps
        self.seen: list[Session] = []

    def bind(self, executor_url, session_id, callback_token, env, *, wait_s=0.0):  # type: ignore[no-untyped-def]
        super().bind(executor_url, session_id, callback_token, env, wait_s=wait_s)
        container_ready(self.deps, session_id, session_id, ContainerReadyReport())
        self.seen.append(self.deps.sessions.get(session_id))


def test_a_session_is_never_running_without_its_sandbox_even_when_ready_is_reported_at_the_bind(deps):
    _pooled(deps, "python-basic=1")
    refill(deps)
    deps.executor = _ReportingAtBind(deps)
    for sid in ("sess_0000000000000001", "sess_0000000000000002"):  # the warm one, then a cold start
        seed_session(deps, session_id=sid, status=SessionStatus.CREATING)
        # A session the workflow starts has no sandbox yet.
        deps.sessions.update_fields(
            sid, {"container_id": None, "executor_url": None}, only_if=[SessionStatus.CREATING]
        )
        start_sandbox(deps, sid, "task-token")
    warm, cold = deps.executor.seen
    assert "pool_" in (warm.container_id or "") and "pool_" in (warm.executor_url or "")
    assert cold.container_id == "proc-sess_0000000000000002" and cold.executor_url
    assert warm.status == cold.status == SessionStatus.RUNNING
