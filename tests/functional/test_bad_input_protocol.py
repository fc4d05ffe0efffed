"""Protocol-level bad input on the handlers (moto, API Gateway-shaped proxy events): odd characters and
over-long ids in path parameters, unserved methods (HEAD included), bodies that are not UTF-8, JSON nested
too deep, non-JSON media types. Each gets a 4xx with the contract's error body, never a 500, and nothing is
recorded. tests/e2e/test_bad_input_protocol.py sends the same through the local stack's gateway."""

from __future__ import annotations

import base64
import importlib
import json
from typing import Any
from urllib.parse import quote

import boto3
import pytest

from sandboxcp.api.resolver import MAX_JSON_DEPTH, parse_json
from sandboxcp.domain.errors import InvalidParameter
from sandboxcp.routes import ROUTES, Route
from tests.functional.conftest import ERROR_FIELDS, SAMPLE_SESSION, body, invoke, sample_event, seed_session

REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"  # the sample events' request id

WITH_PARAMS = [r for r in ROUTES if "{" in r.path]
GET_ROUTES = [r for r in ROUTES if r.method == "GET"]
BAD_VALUES = {
    "quote": '"',
    "backslash": "\\",
    "hash": "#",
    "question": "?",
    "nul": "\x00",
    "control": "\x1b[31m",
    "newline": "\n",
    "euro": "€",
    "times": "\u00d7",
    "emoji": "😀",
    "space": " ",
    "percent": "%",
}
NOT_FOUND = {
    "session_id": "Sandbox.SessionNotFound",
    "execution_id": "Sandbox.ExecutionNotFound",
    "template_id": "Sandbox.TemplateNotFound",
    "container_id": "Sandbox.ContainerNotFound",
    "tenant_id": "Sandbox.NotFound",
    "context_id": "Sandbox.ContextNotFound",
    "process_id": "Sandbox.ProcessNotFound",
}


def _json_routes() -> list[Route]:
    """Routes whose handler takes a JSON body (a Body() parameter): the ones that must refuse other media."""
    found = []
    for route in ROUTES:
        app = importlib.import_module(route.module).app
        if any(r.dependant.body_params for r in app._static_routes + app._dynamic_routes):
            found.append(route)
    return found


JSON_ROUTES = _json_routes()


def _event(route: Route, **params: str) -> dict[str, Any]:
    """The route's sample event with `params` as API Gateway REST passes them: decoded in pathParameters,
    percent-encoded in `path`."""
    event = sample_event(route.module)
    event["pathParameters"] = {**(event.get("pathParameters") or {}), **params} or None
    path = route.path
    for name, value in (event["pathParameters"] or {}).items():
        path = path.replace("{" + name + "+}", quote(value, safe="/")).replace(
            "{" + name + "}", quote(value, safe="")
        )
    event["path"] = path
    return event


def _with_body(
    event: dict[str, Any], raw: bytes | str, content_type: str = "application/json"
) -> dict[str, Any]:
    event["headers"]["Content-Type"] = content_type
    event["multiValueHeaders"]["Content-Type"] = [content_type]
    if isinstance(raw, bytes):
        event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    else:
        event["body"], event["isBase64Encoded"] = raw, False
    return event


def _recorded(deps: Any) -> dict[str, Any]:
    """Everything a request could leave behind: every table's items, workspace objects, launch runs, and
    what the runtime, executor and launch doubles were asked to do."""
    dynamodb = boto3.client("dynamodb")
    tables = {
        name: sorted(json.dumps(i, sort_keys=True) for i in dynamodb.scan(TableName=name)["Items"])
        for name in dynamodb.list_tables()["TableNames"]
    }
    objects = boto3.client("s3").list_objects_v2(Bucket=deps.settings.workspace_bucket).get("Contents", [])
    runs = boto3.client("stepfunctions").list_executions(
        stateMachineArn=deps.settings.launch_state_machine_arn
    )["executions"]
    return {
        "tables": tables,
        "objects": sorted((o["Key"], o["ETag"]) for o in objects),
        "runs": [r["name"] for r in runs],
        "started": list(deps.runtime.started),
        "destroyed": list(deps.runtime.destroyed),
        "submitted": list(deps.executor.submitted),
        "binds": list(deps.executor.binds),
        "ready": list(deps.launch.ready),
    }


@pytest.fixture
def state(deps: Any) -> Any:
    """A running session (the sample events' one), then a check that the test recorded nothing."""
    seed_session(deps)
    before = _recorded(deps)
    yield deps
    assert _recorded(deps) == before, "a refused request left something behind"


def _assert_refused(
    resp: dict[str, Any], status: int, code: str | None = None, *, where: Any = None
) -> dict[str, Any]:
    """`status` with the contract's error body (`where` names the case in a failure)."""
    assert resp["statusCode"] == status, (where, resp["statusCode"], resp.get("body"))
    answer: dict[str, Any] = body(resp)
    assert set(answer) == ERROR_FIELDS, (where, answer)
    assert answer["request_id"] == REQUEST_ID, where
    assert all(isinstance(v, str) and v for v in answer.values()), (where, answer)
    if code is not None:
        assert answer["error_code"] == code, (where, answer)
    return answer


# --- 1. path parameters ---------------------------------------------------------------------------------


def test_odd_characters_in_any_path_parameter_are_not_found(state: Any) -> None:
    for route in WITH_PARAMS:
        for name in sample_event(route.module)["pathParameters"]:
            for label, bad in BAD_VALUES.items():
                for value in (bad, f"sess_00000000{bad}0001", f"{bad}python-basic"):
                    where = (route.module, name, label, value)
                    resp = invoke(route.module, _event(route, **{name: value}))
                    if (
                        name == "path"
                    ):  # a file path: the workspace rules judge it (400) or no such file (404)
                        assert resp["statusCode"] in (400, 404), (where, resp)
                        _assert_refused(resp, resp["statusCode"], where=where)
                    else:
                        _assert_refused(resp, 404, NOT_FOUND[name], where=where)


def test_over_long_ids_are_refused_before_any_lookup(state: Any) -> None:
    class NoLookups:
        def __getattr__(self, attr: str) -> Any:
            raise AssertionError(f"looked up {attr} for an id that can never exist")

    real = {
        name: getattr(state, name)
        for name in ("sessions", "executions", "templates", "ops", "contexts", "processes")
        if hasattr(state, name)
    }
    for name in real:
        setattr(state, name, NoLookups())
    try:
        for route in WITH_PARAMS:
            for name in sample_event(route.module)["pathParameters"]:
                if name == "path":  # not a key: the workspace rules bound it (next test)
                    continue
                # past DynamoDB's 2,048-byte key limit, in characters or in UTF-8 bytes, or just long
                for value in (
                    "sess_" + "a" * 3000,
                    "a" * 3000,
                    "\u00e9" * 1100,
                    "exec_20260101_" + "a" * 600,
                ):
                    resp = invoke(route.module, _event(route, **{name: value}))
                    _assert_refused(resp, 404, NOT_FOUND[name], where=(route.module, name, len(value)))
    finally:
        for name, repo in real.items():
            setattr(state, name, repo)


def test_an_over_long_file_path_is_a_400(state: Any) -> None:
    route = next(r for r in ROUTES if r.module == "files_download")
    resp = invoke(route.module, _event(route, path="a/" * 1500))
    assert "1024" in _assert_refused(resp, 400, "Sandbox.InvalidParameter")["error_detail"]


# --- 2. methods no route serves ------------------------------------------------------------------------


def test_head_on_every_get_route_is_405_with_allow(state: Any) -> None:
    for route in GET_ROUTES:
        event = sample_event(route.module)
        event["httpMethod"] = event["requestContext"]["httpMethod"] = "HEAD"
        if route.auth == "none":  # /health: no key, no authorizer context
            event["headers"].pop("Authorization", None)
            event["requestContext"].pop("authorizer", None)
        resp = invoke(route.module, event)
        answer = _assert_refused(resp, 405, "Sandbox.MethodNotAllowed", where=route.module)
        allow = {m.strip() for m in resp["multiValueHeaders"]["Allow"][0].split(",")}
        assert allow == {r.method for r in ROUTES if r.path == route.path}, route.module
        assert "GET" in allow and "HEAD" not in allow
        assert answer["error_detail"].startswith("HEAD is not allowed")


def test_an_unserved_method_on_a_known_path_is_405_and_an_unknown_path_404(state: Any) -> None:
    for module, method, allow in [
        ("sessions_list", "PATCH", "GET, POST"),
        ("sessions_get", "PUT", "DELETE, GET"),
        ("templates_get", "POST", "DELETE, GET, PUT"),
        ("internal_heartbeat", "GET", "POST"),
        ("health", "OPTIONS", "GET"),
    ]:
        event = sample_event(module)
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
        resp = invoke(module, event)
        _assert_refused(resp, 405, "Sandbox.MethodNotAllowed", where=(module, method))
        assert resp["multiValueHeaders"]["Allow"] == [allow]

    event = sample_event("sessions_get")
    event["resource"] = event["requestContext"]["resourcePath"] = event["path"] = "/api/v1/nowhere"
    event["pathParameters"] = None
    answer = _assert_refused(invoke("sessions_get", event), 404, "Sandbox.NotFound")
    assert answer["error_detail"] == "No route for GET /api/v1/nowhere"


# --- 3-5. bodies of JSON routes -------------------------------------------------------------------------


def test_the_json_routes_are_the_ones_expected() -> None:
    modules = {r.module for r in JSON_ROUTES}
    assert {
        "sessions_create",
        "executions_submit",
        "templates_update",
        "internal_execution_result",
        "internal_workspace_urls",
    } <= modules
    assert not {"files_upload", "sessions_get"} & modules


def test_a_body_that_is_not_utf8_is_a_400_on_every_json_route(state: Any) -> None:
    for route in JSON_ROUTES:
        valid = sample_event(route.module)["body"].encode()
        for raw in (b'{"template_id": "\xff\xfe"}', b"\xc3(", valid[:-1] + b"\x80}", b"\xed\xa0\x80"):
            resp = invoke(route.module, _with_body(sample_event(route.module), raw))
            answer = _assert_refused(resp, 400, "Sandbox.InvalidParameter", where=(route.module, raw[:20]))
            assert "UTF-8" in answer["error_detail"]
        # an escaped lone surrogate is valid JSON text but no Unicode string: refused alike
        resp = invoke(route.module, _with_body(sample_event(route.module), '{"x": "\\ud800"}'))
        assert "Unicode" in _assert_refused(resp, 400, where=route.module)["error_detail"]


def test_json_nested_too_deep_is_a_400_on_every_json_route(state: Any) -> None:
    for route in JSON_ROUTES:
        for text in (
            "[" * 1000 + "]" * 1000,  # deep enough for Python's RecursionError
            '{"a":' * 100_000 + "1" + "}" * 100_000,
            '{"event": ' + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "}",  # one level past the limit
        ):
            resp = invoke(route.module, _with_body(sample_event(route.module), text))
            answer = _assert_refused(resp, 400, "Sandbox.InvalidParameter", where=(route.module, len(text)))
            assert f"deeper than {MAX_JSON_DEPTH}" in answer["error_detail"]
        # what Python's json module takes and JSON (RFC 8259) does not: refused without Python's words
        for text in ('{"x": NaN}', '{"x": -Infinity}', '{"x": 1e999}', '{"x": ' + "9" * 5000 + "}"):
            resp = invoke(route.module, _with_body(sample_event(route.module), text))
            answer = _assert_refused(resp, 400, "Sandbox.InvalidParameter", where=(route.module, text[:20]))
            assert "Python" not in answer["error_detail"] and "sys." not in answer["error_detail"]


def test_the_depth_limit_is_exact() -> None:
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    assert parse_json('{"a": ' * MAX_JSON_DEPTH + "1" + "}" * MAX_JSON_DEPTH)
    with pytest.raises(InvalidParameter):
        parse_json("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))


def test_a_json_route_refuses_other_media_types_with_415(state: Any) -> None:
    for route in JSON_ROUTES:
        for content_type in (
            "text/plain",
            "application/xml",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/octet-stream",
        ):
            event = sample_event(route.module)
            event = _with_body(event, event["body"], content_type)
            resp = invoke(route.module, event)
            answer = _assert_refused(
                resp, 415, "Sandbox.InvalidParameter", where=(route.module, content_type)
            )
            assert answer["description"] == "Unsupported media type"
            assert content_type.split(";")[0] in answer["error_detail"]


def test_json_media_types_are_accepted_and_uploads_keep_taking_multipart(deps: Any) -> None:
    for content_type in ("application/json; charset=utf-8", "Application/JSON", None):
        event = sample_event("sessions_create")
        if content_type is None:  # no Content-Type: taken as JSON
            event["headers"].pop("Content-Type")
            event["multiValueHeaders"].pop("Content-Type")
        else:
            event = _with_body(event, event["body"], content_type)
        assert invoke("sessions_create", event)["statusCode"] == 201, content_type

    seed_session(deps)
    resp = invoke("files_upload", sample_event("files_upload"))
    assert resp["statusCode"] == 200, resp
    stored = boto3.client("s3").list_objects_v2(Bucket=deps.settings.workspace_bucket)["Contents"]
    assert [o["Key"] for o in stored] == [f"workspace/{SAMPLE_SESSION}/{body(resp)['path']}"]


def test_an_internal_call_no_authorizer_vouched_for_is_a_401_on_every_callback_route(state: Any) -> None:
    for route in [r for r in ROUTES if r.auth == "callback"]:
        event = _event(route)
        event["requestContext"]["authorizer"] = {}  # no session: nothing accepted a callback token
        resp = invoke(route.module, event)
        assert resp["statusCode"] == 401, (route.module, resp)
        assert set(body(resp)) == ERROR_FIELDS, (route.module, resp)
