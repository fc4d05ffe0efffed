"""No input gets a 5xx (issue 11): a bad field value is refused with the contract's error body before anything
is recorded. Non-finite numbers (6), fields over their limits (7: DynamoDB's 400 KB item limit must never be
what refuses a request), strict integer and boolean types, every limit in docs/api.md's "Limits" table at and
past its edge, and the documented differences from the reference contract."""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import pytest
from pydantic import ValidationError

from sandbox_executor import contract
from sandboxcp.adapters.tables import ApiKeyRecord
from sandboxcp.domain.states import SessionStatus
from sandboxcp.services.requests.executions import ExecuteRequest
from sandboxcp.services.requests.sessions import CreateSessionRequest
from sandboxcp.services.templates import CreateTemplateRequest
from tests.functional.conftest import (
    ERROR_FIELDS,
    SAMPLE_SESSION,
    TENANT,
    body,
    invoke,
    sample_event,
    seed_session,
    with_path,
)

REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"  # the sample events' requestContext.requestId
TEMPLATE = {
    "id": "custom-env",
    "name": "Custom",
    "image": "registry.example.com/sandbox-python:3.11",
    "default_resources": {"cpu": "1", "memory": "1Gi", "disk": "1Gi"},
}
RESOURCES = TEMPLATE["default_resources"]
BIG = 410 * 1024  # past DynamoDB's 400 KB item limit, well within API Gateway's 10 MB payload


def _send(module: str, payload: Any, *, admin: bool = False, **path: str) -> dict[str, Any]:
    event = sample_event(module)
    if path:
        event = with_path(event, **path)
    event["body"] = payload if isinstance(payload, str) else json.dumps(payload)
    event["requestContext"]["authorizer"]["is_admin"] = "true" if admin else "false"
    return invoke(module, event)


def _refused(resp: dict[str, Any], *details: str, status: int = 400) -> dict[str, Any]:
    assert resp["statusCode"] == status, resp
    err = body(resp)
    assert set(err) == ERROR_FIELDS
    assert err["error_code"] == "Sandbox.InvalidParameter"
    assert err["description"] and err["solution"]
    assert err["request_id"] == REQUEST_ID
    for detail in details:
        assert detail in err["error_detail"], err["error_detail"]
    return err


# -- nothing recorded -----------------------------------------------------------------------------------


def _executions(deps) -> int:
    return deps.executions.list_for_session(SAMPLE_SESSION, status=None, limit=200, offset=0).total


def _assert_no_execution(deps) -> None:
    assert _executions(deps) == 0
    assert deps.executions.count_inflight_for_session(SAMPLE_SESSION) == 0
    assert deps.executor.submitted == []


def _assert_no_session(deps) -> None:
    assert deps.sessions.list_for_tenant(TENANT, status=None, template_id=None, limit=50, offset=0).total == 0
    sfn = boto3.client("stepfunctions")
    assert sfn.list_executions(stateMachineArn=deps.settings.launch_state_machine_arn)["executions"] == []


def _assert_no_template(deps, template_id: str = TEMPLATE["id"]) -> None:
    assert deps.templates.get(template_id) is None


def _execute(**fields: Any) -> dict[str, Any]:
    return _send("executions_submit", {"code": "print(1)", "language": "python", **fields})


def _create_session(**fields: Any) -> dict[str, Any]:
    return _send("sessions_create", {"template_id": "python-basic", **fields})


def _create_template(**fields: Any) -> dict[str, Any]:
    return _send("templates_create", {**TEMPLATE, **fields}, admin=True)


def _update_template(payload: Any) -> dict[str, Any]:
    return _send("templates_update", payload, admin=True, template_id="python-basic")


# -- 6: NaN, Infinity and numbers out of range ----------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    ['{"x": NaN}', '{"x": Infinity}', '{"x": -Infinity}', '{"x": 1e400}', '{"a": {"b": [1, -1e999]}}'],
)
def test_a_non_finite_number_in_the_event_is_refused_before_the_execution_is_recorded(deps, event):
    seed_session(deps)
    resp = _send("executions_submit", f'{{"code": "print(1)", "language": "python", "event": {event}}}')
    _refused(resp)
    _assert_no_execution(deps)
    assert deps.sessions.get(SAMPLE_SESSION).status == SessionStatus.RUNNING


@pytest.mark.parametrize(
    "raw",
    ['{"template_id": "python-basic", "timeout": NaN}', '{"template_id": "python-basic", "timeout": 1e400}'],
)
def test_a_non_finite_number_in_a_session_request_is_refused(deps, raw):
    _refused(_send("sessions_create", raw))
    _assert_no_session(deps)


def test_a_non_finite_number_in_a_security_context_is_refused_not_stored_as_null(deps):
    raw = json.dumps({**TEMPLATE, "security_context": {"x": "PLACEHOLDER"}}).replace('"PLACEHOLDER"', "NaN")
    _refused(_send("templates_create", raw, admin=True))
    _assert_no_template(deps)
    before = deps.templates.get("python-basic")
    _refused(_update_template('{"security_context": {"network_enabled": false, "x": Infinity}}'))
    assert deps.templates.get("python-basic") == before


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (ExecuteRequest, {"code": "x", "language": "python", "event": {"x": [float("nan")]}}),
        (ExecuteRequest, {"code": "x", "language": "python", "event": {"x": "\ud800"}}),
        (CreateSessionRequest, {"template_id": "python-basic", "env_vars": {"A": "\udfff"}}),
        (CreateTemplateRequest, {**TEMPLATE, "security_context": {"x": float("inf")}}),
    ],
)
def test_the_request_models_refuse_non_finite_numbers_and_non_unicode_strings_themselves(model, fields):
    """The same refusal without the HTTP layer (services validate the models they are given)."""
    with pytest.raises(ValidationError):
        model.model_validate(fields)


# -- 7: fields that would not fit a DynamoDB item -------------------------------------------------------


def test_a_410_kb_env_var_is_refused_before_the_session_is_recorded(deps):
    _refused(_create_session(env_vars={"BIG": "x" * BIG}), "env_vars", f"{contract.MAX_ENV_BYTES:,} bytes")
    _assert_no_session(deps)


def test_a_410_kb_event_is_refused_before_the_execution_is_recorded(deps):
    seed_session(deps)
    _refused(_execute(event={"blob": "x" * BIG}), "event", f"{contract.MAX_EVENT_BYTES:,} bytes")
    _assert_no_execution(deps)


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"name": "n" * 129}, "name"),
        ({"image": "registry.example.com/" + "a" * 500 + ":1"}, "512"),
        ({"base_image": "debian:" + "1" * 600}, "base_image"),
        ({"pre_installed_packages": ["numpy"] * 201}, "200"),
        ({"pre_installed_packages": ["p" * 201]}, "package"),
        ({"pre_installed_packages": ["p" * 200] * 200, "languages": ["python"] * 100_000}, "languages"),
        ({"languages": ["python", "python"]}, "repeat"),
        ({"security_context": {"note": "x" * 4096}}, "4096 bytes"),
        ({"id": "a" * 64}, "id"),
    ],
)
def test_oversized_template_fields_are_refused_before_the_template_is_written(deps, fields, detail):
    _refused(_create_template(**fields), detail)
    _assert_no_template(deps, fields.get("id", TEMPLATE["id"]))


def test_an_oversized_template_update_leaves_the_template_unchanged(deps):
    before = deps.templates.get("python-basic")
    _refused(_update_template({"security_context": {"note": "x" * BIG}}), "security_context")
    _refused(_update_template({"languages": ["shell"] * 100_000}), "languages")
    assert deps.templates.get("python-basic") == before


@pytest.mark.parametrize(
    ("module", "payload", "detail"),
    [
        ("sessions_create", {"template_id": "t" * 65}, "template_id"),
        ("keys_create", {"tenant_id": "t" * 65}, "tenant_id"),
        ("files_presign_upload", {"path": "p" * 4097, "size": 1}, "path"),
    ],
)
def test_ids_and_paths_in_bodies_have_a_length_limit(deps, module, payload, detail):
    seed_session(deps)
    _refused(_send(module, payload, admin=True), detail)
    _assert_no_session_but_the_seeded_one(deps)


def _assert_no_session_but_the_seeded_one(deps) -> None:
    listed = deps.sessions.list_for_tenant(TENANT, status=None, template_id=None, limit=50, offset=0)
    assert [s.session_id for s in listed.items] == [SAMPLE_SESSION]


# -- strict types ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", ["60", 60.0, True, None, [60]])
def test_execution_timeout_is_a_json_integer(deps, timeout):
    seed_session(deps)
    _refused(_execute(timeout=timeout), "timeout")
    _assert_no_execution(deps)


@pytest.mark.parametrize("timeout", ["600", 600.0, True])
def test_session_timeout_is_a_json_integer(deps, timeout):
    _refused(_create_session(timeout=timeout), "timeout")
    _assert_no_session(deps)


@pytest.mark.parametrize("max_processes", ["64", 64.0, True])
def test_max_processes_is_a_json_integer(deps, max_processes):
    resources = {"cpu": "1", "memory": "1Gi", "disk": "1Gi", "max_processes": max_processes}
    _refused(_create_session(resources=resources), "max_processes")
    _assert_no_session(deps)
    _refused(_create_template(default_resources=resources), "max_processes")
    _assert_no_template(deps)


@pytest.mark.parametrize(
    ("module", "payload", "detail"),
    [
        ("keys_create", {"tenant_id": "tenant-c", "admin": "yes"}, "admin"),
        ("keys_create", {"tenant_id": "tenant-c", "admin": 1}, "admin"),
        ("templates_create", {**TEMPLATE, "deprecated": "false"}, "deprecated"),
        ("files_presign_upload", {"path": "a.txt", "size": "10"}, "size"),
        ("files_presign_upload", {"path": "a.txt", "size": 10.0}, "size"),
        ("files_presign_upload", {"path": "a.txt", "size": True}, "size"),
        ("executions_submit", {"code": 12, "language": "python"}, "code"),
        ("sessions_create", {"template_id": "python-basic", "resources": {"cpu": 1, "memory": "1Gi"}}, "cpu"),
    ],
)
def test_booleans_integers_and_strings_are_not_coerced(deps, module, payload, detail):
    seed_session(deps)
    _refused(_send(module, payload, admin=True), detail)
    _assert_no_execution(deps)
    _assert_no_template(deps)
    _assert_no_session_but_the_seeded_one(deps)
    assert ApiKeyRecord.by_tenant.count("tenant-c") == 0


# -- every documented limit, at and past its edge --------------------------------------------------------


def _env_of(size: int, count: int = 1) -> dict[str, str]:
    names = [f"V{i:02d}" for i in range(count)]
    env = {n: "" for n in names}
    env[names[0]] = "x" * (size - contract.env_size(env))
    assert contract.env_size(env) == size
    return env


def _event_of(size: int) -> dict[str, str]:
    event = {"k": ""}
    event["k"] = "x" * (size - contract.json_size(event))
    return event


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"timeout": 60}, None),
        ({"timeout": 3600}, None),
        ({"timeout": 59}, "timeout"),
        ({"timeout": 3601}, "timeout"),
        ({"env_vars": _env_of(contract.MAX_ENV_BYTES, contract.MAX_ENV_VARS)}, None),
        ({"env_vars": _env_of(contract.MAX_ENV_BYTES + 1)}, "bytes"),
        ({"env_vars": {f"V{i:02d}": "" for i in range(contract.MAX_ENV_VARS + 1)}}, "at most 64"),
        ({"env_vars": {"1BAD": "x"}}, "1BAD"),
        ({"env_vars": {"ÉTÉ": "x"}}, "not a valid environment variable name"),
        ({"env_vars": {"SANDBOXCP_X": "x"}}, "reserved"),
        ({"env_vars": {"AWS_REGION": "x"}}, "reserved"),
        ({"env_vars": {"A": "x\u0000y"}}, "NUL"),
        ({"resources": {"cpu": "0.5", "memory": "256Mi", "disk": "1Gi", "max_processes": 32}}, None),
        ({"resources": {"cpu": "4", "memory": "8Gi", "disk": "50Gi", "max_processes": 1024}}, None),
        ({"resources": {"cpu": "4.5", "memory": "1Gi", "disk": "1Gi"}}, "cpu"),
        ({"resources": {"cpu": "1", "memory": "255Mi", "disk": "1Gi"}}, "memory"),
        ({"resources": {"cpu": "1", "memory": "1Gi", "disk": "51Gi"}}, "disk"),
        ({"resources": {"cpu": "1", "memory": "1Gi", "disk": "1Gi", "max_processes": 31}}, "max_processes"),
        ({"resources": {"cpu": "1", "memory": "1Gi", "disk": "1Gi", "max_processes": 1025}}, "max_processes"),
    ],
)
def test_session_limits(deps, fields, detail):
    resp = _create_session(**fields)
    if detail is None:
        assert resp["statusCode"] == 201, resp
        stored = deps.sessions.get(body(resp)["session_id"])
        assert stored is not None and stored.env_vars == fields.get("env_vars", {})
        return
    _refused(resp, detail)
    _assert_no_session(deps)


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"code": "x" * contract.MAX_CODE_BYTES}, None),
        ({"code": "€" * (contract.MAX_CODE_BYTES // 3)}, None),
        ({"code": "x" * (contract.MAX_CODE_BYTES + 1)}, "100 KB"),
        ({"code": ""}, "code"),
        ({"code": " \n\t"}, "whitespace"),
        ({"timeout": 1}, None),
        ({"timeout": 3600}, None),
        ({"timeout": 0}, "timeout"),
        ({"timeout": 3601}, "timeout"),
        ({"event": _event_of(contract.MAX_EVENT_BYTES)}, None),
        ({"event": _event_of(contract.MAX_EVENT_BYTES + 1)}, "event"),
        ({"event": {"s": "é" * (contract.MAX_EVENT_BYTES // 2)}}, "event"),
        ({"event": [1, 2]}, "event"),
        ({"event": "text"}, "event"),
        ({"language": "cobol"}, "language"),
    ],
)
def test_execution_limits(deps, fields, detail):
    seed_session(deps)
    resp = _execute(**fields)
    if detail is None:
        assert resp["statusCode"] == 200, resp
        stored = deps.executions.get(body(resp)["execution_id"])
        assert stored is not None and stored.code == fields.get("code", "print(1)")
        return
    _refused(resp, detail)
    _assert_no_execution(deps)


def test_the_largest_execution_fits_one_item_with_the_largest_inline_outcome(deps):
    """Code and event at their limits, with characters that take the most room as stored, and an
    inline outcome at its limit: one DynamoDB item (moto enforces the 400 KB limit)."""
    from sandboxcp.adapters.dynamo.executions import INLINE_OUTCOME_LIMIT
    from sandboxcp.domain import clock
    from sandboxcp.domain.models import ExecutionMetrics, ExecutionOutcome

    seed_session(deps)
    code = "\U0001f600" * (contract.MAX_CODE_BYTES // 4)
    event = {"s": "é" * ((contract.MAX_EVENT_BYTES - 8) // 2)}
    resp = _execute(code=code, event=event)
    assert resp["statusCode"] == 200, resp
    eid = body(resp)["execution_id"]
    outcome = ExecutionOutcome(
        status="success",
        stdout="é" * (INLINE_OUTCOME_LIMIT // 6 - 200),
        exit_code=0,
        execution_time=0.1,
        metrics=ExecutionMetrics(duration_ms=1.0),
    )
    deps.executions.record_outcome(eid, outcome, now=clock.now())
    stored = deps.executions.get(eid)
    assert stored.event == event and stored.outcome == outcome and stored.code == code


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"name": "n" * 128, "id": "a" + "b" * 62}, None),
        ({"pre_installed_packages": ["p" * 200] * 200, "languages": ["python", "javascript", "shell"]}, None),
        ({"security_context": {"note": "x" * (4096 - 100)}}, None),
        ({"name": ""}, "name"),
        ({"id": "Upper"}, "id"),
        ({"image": "no-tag"}, "tag"),
        ({"languages": []}, "languages"),
    ],
)
def test_template_limits(deps, fields, detail):
    resp = _create_template(**fields)
    template_id = fields.get("id", TEMPLATE["id"])
    if detail is None:
        assert resp["statusCode"] == 201, resp
        assert deps.templates.get(template_id) is not None
        return
    _refused(resp, detail)
    _assert_no_template(deps, template_id)


# -- documented differences from the reference contract ---------------------------------------------------


@pytest.mark.parametrize(
    ("module", "payload", "unknown"),
    [
        ("sessions_create", {"template_id": "python-basic", "timeuot": 60}, "timeuot"),
        ("executions_submit", {"code": "x", "language": "python", "stdin": "{}"}, "stdin"),
        ("templates_create", {**TEMPLATE, "owner": "me"}, "owner"),
        ("templates_update", {"name": "n", "owner": "me"}, "owner"),
        ("sessions_create", {"template_id": "python-basic", "resources": {**RESOURCES, "gpu": "1"}}, "gpu"),
        ("keys_create", {"tenant_id": "tenant-c", "role": "admin"}, "role"),
    ],
)
def test_unknown_body_fields_are_refused(deps, module, payload, unknown):
    seed_session(deps)
    before = deps.templates.get("python-basic")
    path = {"template_id": "python-basic"} if module == "templates_update" else {}
    _refused(_send(module, payload, admin=True, **path), unknown, "Extra inputs are not permitted")
    _assert_no_execution(deps)
    _assert_no_template(deps)
    _assert_no_session_but_the_seeded_one(deps)
    assert deps.templates.get("python-basic") == before
    assert ApiKeyRecord.by_tenant.count("tenant-c") == 0


@pytest.mark.parametrize("missing", ["cpu", "memory", "disk"])
def test_resources_need_cpu_memory_and_disk_as_in_the_contract(deps, missing):
    resources = {k: v for k, v in TEMPLATE["default_resources"].items() if k != missing}
    _refused(_create_template(default_resources=resources), missing)
    _assert_no_template(deps)
    before = deps.templates.get("python-basic")
    _refused(_update_template({"default_resources": resources}), missing)
    assert deps.templates.get("python-basic") == before
    _refused(_create_session(resources=resources), missing)
    _assert_no_session(deps)


def test_contract_strings_without_a_value_are_left_out_rather_than_null(deps):
    created = body(_create_session())
    assert created["status"] == "creating"
    assert not {"runtime_node", "container_id", "pod_name"} & set(created)
    assert "error_message" in created and created["error_message"] is None  # a field this API adds
    seed_session(deps)
    running = body(invoke("sessions_get", sample_event("sessions_get")))
    assert running["container_id"] == f"proc-{SAMPLE_SESSION}" and "pod_name" not in running
    no_base = body(_create_template())
    assert "base_image" not in no_base
    with_base = body(_create_template(id="with-base", base_image="debian:12-slim"))
    assert with_base["base_image"] == "debian:12-slim"
    listed = body(invoke("containers_list", copy.deepcopy(sample_event("containers_list"))))
    assert listed["containers"] and all("pod_name" not in c for c in listed["containers"])
