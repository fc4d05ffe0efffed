"""Template administration (US3, FR-030..FR-035): create, update, deprecate, delete; admin keys only."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandboxcp.domain import clock
from sandboxcp.domain.errors import StateConflict
from sandboxcp.domain.models import Session
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.states import SessionStatus
from sandboxcp.observability import REGISTRY
from tests.functional.conftest import TENANT, body, invoke, sample_event, with_path

GOOD = {
    "id": "python-custom",
    "name": "Python Custom Environment",
    "image": "registry.example.com/sandbox-python:3.11-custom",
    "default_resources": {"cpu": "2", "memory": "2Gi", "disk": "5Gi"},
}
DIGEST = "sha256:" + "a" * 64


@pytest.fixture(autouse=True)
def _fixed_clock():
    t = [datetime(2026, 3, 1, 12, 0, tzinfo=UTC)]
    clock.set_clock(lambda: t[0])
    yield t
    clock.set_clock(None)


def _create(payload: Any, *, admin: bool = True) -> dict[str, Any]:
    event = sample_event("templates_create")
    event["body"] = payload if isinstance(payload, str) else json.dumps(payload)
    event["requestContext"]["authorizer"]["is_admin"] = "true" if admin else "false"
    return invoke("templates_create", event)


def _update(template_id: str, payload: Any, *, admin: bool = True) -> dict[str, Any]:
    event = with_path(sample_event("templates_update"), template_id=template_id)
    event["body"] = json.dumps(payload)
    event["requestContext"]["authorizer"]["is_admin"] = "true" if admin else "false"
    return invoke("templates_update", event)


def _delete(template_id: str, *, admin: bool = True) -> dict[str, Any]:
    event = with_path(sample_event("templates_delete"), template_id=template_id)
    event["requestContext"]["authorizer"]["is_admin"] = "true" if admin else "false"
    return invoke("templates_delete", event)


def _get(template_id: str) -> dict[str, Any]:
    return invoke("templates_get", with_path(sample_event("templates_get"), template_id=template_id))


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _session(deps, session_id: str, template_id: str, status: SessionStatus) -> None:  # type: ignore[no-untyped-def]
    now = clock.now()
    deps.sessions.create(
        Session(
            session_id=session_id,
            tenant_id=TENANT,
            template_id=template_id,
            status=SessionStatus.CREATING,
            runtime_type="process",
            workspace_path=f"s3://b/workspace/{session_id}/",
            resources=ResourceLimit(),
            timeout=300,
            created_at=now,
            updated_at=now,
            last_activity_at=now,
        )
    )
    if status != SessionStatus.CREATING:
        deps.sessions.transition(session_id, SessionStatus.RUNNING, now=now)
    if status not in (SessionStatus.CREATING, SessionStatus.RUNNING):
        deps.sessions.transition(session_id, status, now=now)


def test_the_sample_event_creates_a_template_that_lists_and_reads_back(deps, caplog):
    REGISTRY.clear()
    caplog.set_level(logging.INFO)
    resp = invoke("templates_create", sample_event("templates_create"))
    assert resp["statusCode"] == 201, resp["body"]
    created = body(resp)
    assert created["id"] == "python-custom" and created["deprecated"] is False
    assert created["pre_installed_packages"] == ["numpy>=1.24.0", "pandas>=2.0.0"]
    assert created["default_resources"] == {"cpu": "2", "memory": "2Gi", "disk": "5Gi", "max_processes": 128}
    assert created["security_context"]["run_as_user"] == 1000
    assert created["created_at"] == created["updated_at"] == "2026-03-01T12:00:00Z"
    assert body(_get("python-custom")) == created
    listed = body(invoke("templates_list", sample_event("templates_list")))
    assert "python-custom" in [t["id"] for t in listed["templates"]] and listed["total"] == 4

    audits = [r for r in caplog.records if getattr(r, "audit", False)]
    assert [(r.action, r.outcome, r.tenant) for r in audits] == [("template.create", "success", "tenant-a")]  # type: ignore[attr-defined]
    assert audits[0].request_id == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"  # type: ignore[attr-defined]
    assert REGISTRY.counter("TemplateChanges", action="create", outcome="success") == 1


def test_unspecified_security_context_gets_the_sandbox_user(deps):
    created = body(_create(GOOD))
    assert created["security_context"] == {
        "run_as_user": 1000,
        "run_as_group": 1000,
        "network_enabled": False,
    }
    assert created["languages"] == ["python", "shell"]


def test_duplicate_id_is_a_conflict(deps):
    assert _create(GOOD)["statusCode"] == 201
    again = _create({**GOOD, "name": "other"})
    assert again["statusCode"] == 409
    assert body(again)["error_code"] == "Sandbox.StateConflict"
    assert body(_get("python-custom"))["name"] == GOOD["name"]
    assert _create({**GOOD, "id": "python-basic"})["statusCode"] == 409  # a seeded default too


@pytest.mark.parametrize("template_id", ["a", "Python-custom", "-leading", "has_underscore", "x" * 64, ""])
def test_bad_ids_are_refused(deps, template_id):
    resp = _create({**GOOD, "id": template_id})
    assert resp["statusCode"] == 400
    assert body(resp)["error_code"] == "Sandbox.InvalidParameter"


@pytest.mark.parametrize(
    "image",
    [
        "",
        " ",
        "sandbox python:3.11",
        "registry.example.com/Sandbox-Python:3.11",
        "sandbox-python",  # no tag and no digest
        "sandbox-python:",
        "sandbox-python@sha256:abc",
        "registry.example.com//repo:1",
        "repo:tag with space",
    ],
)
def test_bad_images_are_refused(deps, image):
    resp = _create({**GOOD, "image": image})
    assert resp["statusCode"] == 400, image
    assert "image" in body(resp)["error_detail"]


@pytest.mark.parametrize(
    "image",
    [
        "sandbox-python:3.11",
        "Registry.Example.com:5000/team/sandbox_python.x:v1.2-rc1",
        f"registry.example.com/team/repo@{DIGEST}",
        f"repo:1.0@{DIGEST}",
        "localhost/repo:latest",
    ],
)
def test_good_images_are_accepted(deps, image):
    resp = _create({**GOOD, "image": image})
    assert resp["statusCode"] == 201, resp["body"]
    assert body(resp)["image"] == image


@pytest.mark.parametrize(
    "resources",
    [
        {"cpu": "8", "memory": "2Gi", "disk": "5Gi"},
        {"cpu": "0.1", "memory": "2Gi", "disk": "5Gi"},
        {"cpu": "1", "memory": "128Mi", "disk": "5Gi"},
        {"cpu": "1", "memory": "16Gi", "disk": "5Gi"},
        {"cpu": "1", "memory": "1Gi", "disk": "100Gi"},
        {"cpu": "1", "memory": "1Gi", "disk": "1Gi", "max_processes": 5},
        {"cpu": "1", "memory": "1GB", "disk": "1Gi"},
        {"cpu": "1", "memory": "1Gi", "disk": "1Gi", "gpu": 1},
    ],
)
def test_resources_out_of_range_are_refused(deps, resources):
    resp = _create({**GOOD, "default_resources": resources})
    assert resp["statusCode"] == 400
    assert body(resp)["error_code"] == "Sandbox.InvalidParameter"


def test_default_resources_are_required(deps):
    payload = {k: v for k, v in GOOD.items() if k != "default_resources"}
    resp = _create(payload)
    assert resp["statusCode"] == 400 and "default_resources" in body(resp)["error_detail"]


@pytest.mark.parametrize(
    ("context", "complaint"),
    [
        ({"run_as_user": 0}, "run_as_user must be 1000"),
        ({"run_as_user": "1000"}, "run_as_user must be 1000"),
        ({"run_as_group": 1001}, "run_as_group must be 1000"),
        ({"privileged": True}, "privileged must be false"),
        ({"allow_privilege_escalation": True}, "allow_privilege_escalation must be false"),
        ({"capabilities": {"add": ["NET_ADMIN"]}}, "capabilities may only drop"),
        ({"cap_add": ["SYS_ADMIN"]}, "cap_add"),
        ({"read_only_root_filesystem": False}, "read_only_root_filesystem must be true"),
        ({"max_processes": 100000}, "max_processes"),
    ],
)
def test_security_contexts_that_weaken_the_sandbox_are_refused(deps, context, complaint):
    resp = _create({**GOOD, "security_context": context})
    assert resp["statusCode"] == 400
    assert complaint in body(resp)["error_detail"]


def test_tightening_security_context_is_accepted(deps):
    ctx = {
        "run_as_user": 1000,
        "run_as_group": 1000,
        "privileged": False,
        "allow_privilege_escalation": False,
        "capabilities": {"drop": ["ALL"]},
        "network_enabled": True,
        "max_processes": 64,
    }
    resp = _create({**GOOD, "security_context": ctx})
    assert resp["statusCode"] == 201
    assert body(resp)["security_context"] == ctx


def test_non_admin_keys_cannot_write_templates(deps, caplog):
    caplog.set_level(logging.INFO)
    assert _create(GOOD, admin=False)["statusCode"] == 403
    assert _get("python-custom")["statusCode"] == 404
    refused = _update("python-basic", {"name": "x"}, admin=False)
    assert refused["statusCode"] == 403 and body(refused)["error_code"] == "Sandbox.Forbidden"
    assert _delete("python-basic", admin=False)["statusCode"] == 403
    assert body(_get("python-basic"))["name"] == "Python 3.11 basic"
    outcomes = [(r.action, r.outcome) for r in caplog.records if getattr(r, "audit", False)]  # type: ignore[attr-defined]
    assert outcomes == [
        ("template.create", "denied"),
        ("template.update", "denied"),
        ("template.delete", "denied"),
    ]


def test_update_is_partial_and_bumps_updated_at(deps, _fixed_clock):
    before = body(_get("python-basic"))
    _fixed_clock[0] += timedelta(minutes=5)
    resp = _update(
        "python-basic",
        {
            "image": "registry.example.com/python-basic:2",
            "default_resources": {"cpu": "2", "memory": "1Gi", "disk": "2Gi"},
        },
    )
    assert resp["statusCode"] == 200, resp["body"]
    after = body(resp)
    assert after["image"] == "registry.example.com/python-basic:2"
    assert after["default_resources"]["cpu"] == "2"
    assert after["name"] == before["name"] and after["languages"] == before["languages"]
    assert after["security_context"] == before["security_context"]
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] == "2026-03-01T12:05:00Z" > before["updated_at"]
    assert body(_get("python-basic")) == after

    # Two updates within the clock's resolution still move updated_at forward.
    second = body(_update("python-basic", {"pre_installed_packages": ["requests==2.32.0"]}))
    assert _when(second["updated_at"]) > _when(after["updated_at"])
    assert second["pre_installed_packages"] == ["requests==2.32.0"]


def test_update_replaces_the_security_context_and_still_validates_it(deps):
    resp = _update("python-basic", {"security_context": {"network_enabled": True}})
    assert body(resp)["security_context"] == {
        "run_as_user": 1000,
        "run_as_group": 1000,
        "network_enabled": True,
    }
    refused = _update("python-basic", {"security_context": {"privileged": True}})
    assert refused["statusCode"] == 400 and "privileged" in body(refused)["error_detail"]
    assert _update("python-basic", {"image": "Bad Image"})["statusCode"] == 400
    assert (
        _update("python-basic", {"default_resources": {"cpu": "64", "memory": "1Gi", "disk": "1Gi"}})[
            "statusCode"
        ]
        == 400
    )


@pytest.mark.parametrize(
    "payload", [{}, {"id": "renamed"}, {"created_at": "2020-01-01T00:00:00Z"}, {"name": None}]
)
def test_updates_that_change_nothing_or_touch_fixed_fields_are_refused(deps, payload):
    resp = _update("python-basic", payload)
    assert resp["statusCode"] == 400, payload


def test_update_of_a_missing_template_is_404(deps):
    resp = _update("no-such-template", {"name": "x"})
    assert resp["statusCode"] == 404 and body(resp)["error_code"] == "Sandbox.TemplateNotFound"


def test_concurrent_updates_do_not_both_win(deps):
    current = deps.templates.get("python-basic")
    first = current.model_copy(
        update={"name": "first", "updated_at": current.updated_at + timedelta(seconds=1)}
    )
    deps.templates.replace(first, expected_updated_at=current.updated_at)
    second = current.model_copy(
        update={"name": "second", "updated_at": current.updated_at + timedelta(seconds=1)}
    )
    with pytest.raises(StateConflict):
        deps.templates.replace(second, expected_updated_at=current.updated_at)
    assert deps.templates.get("python-basic").name == "first"


def test_deprecated_templates_stay_listed_but_take_no_new_sessions(deps):
    _session(deps, "sess_000000000000dep1", "python-basic", SessionStatus.RUNNING)
    resp = _update("python-basic", {"deprecated": True})
    assert resp["statusCode"] == 200 and body(resp)["deprecated"] is True
    listed = body(invoke("templates_list", sample_event("templates_list")))["templates"]
    assert {t["id"]: t["deprecated"] for t in listed}["python-basic"] is True
    refused = invoke("sessions_create", sample_event("sessions_create"))  # uses python-basic
    assert refused["statusCode"] == 400
    assert deps.sessions.get("sess_000000000000dep1").status == SessionStatus.RUNNING
    assert body(_update("python-basic", {"deprecated": False}))["deprecated"] is False
    assert invoke("sessions_create", sample_event("sessions_create"))["statusCode"] == 201


def test_delete_is_refused_while_active_sessions_use_the_template(deps):
    assert _create(GOOD)["statusCode"] == 201
    _session(deps, "sess_0000000000000cr1", "python-custom", SessionStatus.CREATING)
    _session(deps, "sess_0000000000000ru1", "python-custom", SessionStatus.RUNNING)
    _session(deps, "sess_0000000000000ot1", "python-basic", SessionStatus.RUNNING)
    _session(deps, "sess_0000000000000en1", "python-custom", SessionStatus.TERMINATED)

    refused = _delete("python-custom")
    assert refused["statusCode"] == 400
    err = body(refused)
    assert err["error_code"] == "Sandbox.InvalidParameter"
    assert "2 active session" in err["error_detail"]
    assert "deprecated" in err["solution"] and "PUT /api/v1/templates/python-custom" in err["solution"]
    assert _get("python-custom")["statusCode"] == 200

    deps.sessions.transition("sess_0000000000000cr1", SessionStatus.FAILED, now=clock.now())
    assert _delete("python-custom")["statusCode"] == 400
    deps.sessions.transition("sess_0000000000000ru1", SessionStatus.TERMINATED, now=clock.now())
    deleted = _delete("python-custom")
    assert deleted["statusCode"] == 204 and not deleted["body"]
    assert _get("python-custom")["statusCode"] == 404
    assert _delete("python-custom")["statusCode"] == 404


def test_template_usage_is_counted_on_the_active_index(deps):
    """Ended sessions are not in the sparse index at all; only live sessions of this template count."""
    for i in range(5):
        _session(deps, f"sess_00000000000end{i:02d}", "python-basic", SessionStatus.TERMINATED)
    _session(deps, "sess_0000000000000ru2", "nodejs-basic", SessionStatus.RUNNING)
    assert deps.ops.count_active_for_template("python-basic") == 0
    assert deps.ops.count_active_for_template("nodejs-basic") == 1
    assert _delete("python-basic")["statusCode"] == 204
