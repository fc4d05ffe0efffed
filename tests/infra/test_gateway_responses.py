"""API Gateway's own refusals (no handler runs) answer in the contract's error body, on both APIs, with the
same codes, descriptions and solutions as the local emulator (sandboxcp/local/gateway.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandboxcp_infra.api import GATEWAY_ERRORS, NO_ROUTE_DETAIL, GatewayError
from tests.infra import helpers as h
from tests.infra.conftest import Synthesized

REQUIRED = {
    "UNAUTHORIZED": ("401", "Sandbox.Unauthorized"),
    "ACCESS_DENIED": ("403", "Sandbox.Forbidden"),
    "MISSING_AUTHENTICATION_TOKEN": ("404", "Sandbox.NotFound"),
    "DEFAULT_4XX": (None, "Sandbox.InvalidParameter"),
    "DEFAULT_5XX": (None, "Sandbox.InternalError"),
}
CONTRACT_FIELDS = {"error_code", "description", "error_detail", "solution", "request_id"}


def render(template: str, message: str = "Unauthorized", request_id: str = "req-1") -> dict[str, Any]:
    """What API Gateway makes of the mapping template ($context.error.messageString is a quoted string)."""
    body = template.replace("$context.error.messageString", json.dumps(message))
    body: dict[str, Any] = json.loads(body.replace("$context.requestId", request_id))  # type: ignore[no-redef]
    return body  # type: ignore[return-value]


def _responses(synth: Synthesized, api: Any) -> dict[str, dict[str, Any]]:
    api_id = synth.logical_id(api.rest_api)
    return {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in h.of_type(synth, "AWS::ApiGateway::GatewayResponse").values()
        if r["Properties"]["RestApiId"] == {"Ref": api_id}
    }


@pytest.mark.parametrize("api_name", ["public_api", "internal_api"])
def test_both_apis_answer_refusals_in_the_contract_body(synthesized: Synthesized, api_name: str) -> None:
    responses = _responses(synthesized, getattr(synthesized.stack, api_name))
    assert set(responses) == {e.response_type.response_type for e in GATEWAY_ERRORS}
    for response_type, (status, code) in REQUIRED.items():
        props = responses[response_type]
        assert props.get("StatusCode") == status, response_type
        body = render(props["ResponseTemplates"]["application/json"], message="Missing Authentication Token")
        assert set(body) == CONTRACT_FIELDS
        assert body["error_code"] == code
        # API Gateway's own message, except where it would mislead: "Missing Authentication Token" is how it
        # answers a path or a method it does not serve (HEAD included).
        detail = (
            NO_ROUTE_DETAIL
            if response_type == "MISSING_AUTHENTICATION_TOKEN"
            else "Missing Authentication Token"
        )
        assert body["error_detail"] == detail
        assert body["request_id"] == "req-1"
        assert body["description"] and body["solution"]


def test_templates_quote_the_context_values_correctly() -> None:
    for error in GATEWAY_ERRORS:
        # messageString comes quoted; requestId does not.
        assert '"request_id":"$context.requestId"' in error.template
        if error.detail is None:
            assert '"error_detail":$context.error.messageString' in error.template
            assert render(error.template, message='say "hi"')["error_detail"] == 'say "hi"'
        else:
            assert render(error.template, message='say "hi"')["error_detail"] == error.detail


# --- parity with the local emulator -------------------------------------------------------------------------


class _Functions:
    """Stands in for LocalFunctions: the authorizer raises or answers as told; no handler should run."""

    def __init__(self, authorizer: str) -> None:
        self.authorizer = authorizer

    def invoke(self, module: str, event: dict[str, Any]) -> dict[str, Any]:
        if not module.startswith("authorizer_"):
            raise AssertionError(f"{module} ran: the gateway should have refused")
        if self.authorizer == "raise":
            raise Exception("Unauthorized")
        if self.authorizer == "crash":
            raise RuntimeError("boom")
        return {"principalId": "t", "policyDocument": {"Statement": [{"Effect": "Deny"}]}}


def _emulator_response(authorizer: str, method: str, path: str, **headers: str) -> Any:
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from sandboxcp.local.gateway import ApiGatewayEmulator

    emulator = ApiGatewayEmulator(_Functions(authorizer))  # type: ignore[arg-type]
    length = headers.pop("Content-Length", None)
    builder = EnvironBuilder(method=method, path=path, headers=list(headers.items()))
    environ = builder.get_environ()
    if length is not None:  # a declared size, without sending the bytes
        environ["CONTENT_LENGTH"] = length
    return emulator.handle(Request(environ))


def _emulator_body(authorizer: str, method: str, path: str, **headers: str) -> tuple[int, dict[str, Any]]:
    response = _emulator_response(authorizer, method, path, **headers)
    return response.status_code, json.loads(response.get_data())


def _by_status(status: str) -> GatewayError:
    (error,) = [e for e in GATEWAY_ERRORS if e.status == status]
    return error


@pytest.mark.parametrize(
    ("authorizer", "method", "path", "headers", "status"),
    [
        ("raise", "GET", "/api/v1/sessions", {"Authorization": "Bearer bad"}, "401"),
        ("deny", "GET", "/api/v1/sessions", {"Authorization": "Bearer other"}, "403"),
        ("deny", "GET", "/api/v1/nowhere", {}, "404"),
        ("deny", "GET", "/api/v1/sessions", {"Content-Length": str(11 * 1024 * 1024)}, "413"),
        ("crash", "GET", "/api/v1/sessions", {"Authorization": "Bearer x"}, "500"),
    ],
    ids=["unauthorized", "forbidden", "not-found", "too-large", "authorizer-error"],
)
def test_same_answer_as_the_local_emulator(
    authorizer: str, method: str, path: str, headers: dict[str, str], status: str
) -> None:
    code, emulated = _emulator_body(authorizer, method, path, **headers)
    assert str(code) == status
    deployed = render(_by_status(status).template)
    # Codes and descriptions match everywhere; for a 5xx the deployed solution says to retry, where the
    # emulator's generic one ("check the method and path") does not fit a failing authorizer.
    fields = ("error_code", "description", "solution") if int(status) < 500 else ("error_code", "description")
    for field in fields:
        assert deployed[field] == emulated[field], field


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("HEAD", "/api/v1/health", "GET"),
        ("HEAD", "/api/v1/sessions/sess_0000000000000001", "DELETE, GET"),
        ("PATCH", "/api/v1/sessions", "GET, POST"),
        ("GET", "/internal/executions/exec_20260101_00000001/heartbeat", "POST"),
    ],
)
def test_an_unserved_method_is_405_locally_and_404_deployed(method: str, path: str, allow: str) -> None:
    """The emulator (and the handlers) answer a method the path is not served with - HEAD included - with
    405 and `Allow`, before any authorizer. API Gateway answers MISSING_AUTHENTICATION_TOKEN for an unserved
    method and an unknown path alike, so the deployed API says 404 with the same solution (docs/api.md)."""
    response = _emulator_response("raise", method, path)  # no key: the authorizer would refuse
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    emulated = json.loads(response.get_data())
    assert set(emulated) == CONTRACT_FIELDS
    assert emulated["error_code"] == "Sandbox.MethodNotAllowed"
    assert emulated["error_detail"] == f"{method} is not allowed on {path}; allowed: {allow}"
    (deployed_error,) = [
        e for e in GATEWAY_ERRORS if e.response_type.response_type == "MISSING_AUTHENTICATION_TOKEN"
    ]
    deployed = render(deployed_error.template)
    assert deployed_error.status == "404" and deployed["error_code"] == "Sandbox.NotFound"
    assert deployed["solution"] == emulated["solution"]


def test_both_apis_pass_file_bodies_as_binary(synthesized: Synthesized) -> None:
    apis = h.of_type(synthesized, "AWS::ApiGateway::RestApi")
    assert len(apis) == 2
    for api in apis.values():
        binary = set(api["Properties"]["BinaryMediaTypes"])
        assert binary == {"multipart/form-data", "application/octet-stream"}
