"""The warm pool on moto: refill, claim on launch (one session per warm sandbox), fallback to a cold
start, binding with a session-scoped token, and the orphan reaper's view of pooled sandboxes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.states import SessionStatus
from sandboxcp.services import auth
from sandboxcp.services.launch import start_sandbox
from sandboxcp.services.orphans import reap_orphans
from sandboxcp.services.warm_pool import pool_sizes, refill
from tests.functional.conftest import seed_session


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


def test_two_launches_never_share_a_warm_sandbox(deps):
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
