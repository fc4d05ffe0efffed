"""The local API Gateway emulator's body handling, in process: the authorizer runs before any byte of the
body is read, the 10 MB limit is exact for declared and chunked bodies, and bodies reach the handler as
API Gateway passes them (text as is, binary in base64). tests/security/test_gateway_limits.py attacks the
same rules over real sockets."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from sandboxcp.local.body import MAX_PAYLOAD, DrainBudget
from sandboxcp.local.gateway import ApiGatewayEmulator


class _Stream(io.RawIOBase):
    """A request body that records how much of it was read."""

    def __init__(self, data: bytes) -> None:
        self._data, self.read_bytes = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), len(self._data) - self.read_bytes)
        buf[:n] = self._data[self.read_bytes : self.read_bytes + n]
        self.read_bytes += n
        return n


class _Functions:
    def __init__(self, allow: bool) -> None:
        self.allow, self.events = allow, []  # type: ignore[var-annotated]

    def invoke(self, module: str, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append((module, event))
        if module.startswith("authorizer_"):
            if not self.allow:
                raise Exception("Unauthorized")
            policy = {"Statement": [{"Effect": "Allow"}]}
            return {"principalId": "t", "policyDocument": policy, "context": {"tenant_id": "t"}}
        return {"statusCode": 200, "body": "ok"}


def _call(body: bytes, *, allow: bool = True, chunked: bool = False) -> tuple[int, _Stream, _Functions]:
    functions = _Functions(allow)
    stream = _Stream(body)
    builder = EnvironBuilder(method="POST", path="/api/v1/sessions", headers=[("Authorization", "Bearer k")])
    env = builder.get_environ()
    env["wsgi.input"] = stream
    if chunked:  # what werkzeug's server does for Transfer-Encoding: chunked (the size is unknown)
        env.pop("CONTENT_LENGTH", None)
        env["HTTP_TRANSFER_ENCODING"] = "chunked"
        env["wsgi.input_terminated"] = True
    else:
        env["CONTENT_LENGTH"] = str(len(body))
    response = ApiGatewayEmulator(functions).handle(Request(env))  # type: ignore[arg-type]
    return response.status_code, stream, functions


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_the_authorizer_runs_before_the_body_is_read(chunked: bool) -> None:
    status, stream, functions = _call(b'{"template_id": "x"}' * 1000, allow=False, chunked=chunked)
    assert status == 401
    assert stream.read_bytes == 0
    assert [m for m, _ in functions.events] == ["authorizer_api_key"]
    assert functions.events[0][1].get("body") is None  # a REQUEST authorizer never sees the body


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_the_limit_is_exact(chunked: bool) -> None:
    status, _, functions = _call(b"a" * MAX_PAYLOAD, chunked=chunked)
    assert status == 200 and len(functions.events[-1][1]["body"]) == MAX_PAYLOAD
    status, stream, functions = _call(b"a" * (MAX_PAYLOAD + 1) + b"b" * 1000, chunked=chunked)
    assert status == 413
    if chunked:  # authorized, then refused once the limit is passed, not at the end of the body
        assert [m for m, _ in functions.events] == ["authorizer_api_key"]
        assert stream.read_bytes <= MAX_PAYLOAD + 1
    else:  # refused on the declared length alone, before even the authorizer
        assert functions.events == [] and stream.read_bytes == 0


def test_bodies_reach_the_handler_as_api_gateway_passes_them() -> None:
    _, _, functions = _call('{"name": "é"}'.encode(), chunked=True)
    event = functions.events[-1][1]
    assert (event["body"], event["isBase64Encoded"]) == ('{"name": "é"}', False)
    _, _, functions = _call(b"\xff\x00binary")
    event = functions.events[-1][1]
    assert (event["body"], event["isBase64Encoded"]) == ("/wBiaW5hcnk=", True)
    _, _, functions = _call(b"")
    event = functions.events[-1][1]
    assert (event["body"], event["isBase64Encoded"]) == (None, False)


@pytest.mark.parametrize(("method", "status"), [("PUT", 405), ("HEAD", 405), ("POST", 404)])
def test_an_unserved_method_or_path_is_refused_before_the_authorizer_and_the_body(
    method: str, status: int
) -> None:
    functions, stream = _Functions(True), _Stream(b'{"template_id": "x"}' * 1000)
    path = "/api/v1/sessions" if status == 405 else "/api/v1/nowhere"
    env = EnvironBuilder(method=method, path=path, headers=[("Authorization", "Bearer k")]).get_environ()
    env.update({"wsgi.input": stream, "CONTENT_LENGTH": str(20_000)})
    response = ApiGatewayEmulator(functions).handle(Request(env))  # type: ignore[arg-type]
    assert response.status_code == status
    assert functions.events == [] and stream.read_bytes == 0
    assert json.loads(response.get_data())["error_code"] == (
        "Sandbox.MethodNotAllowed" if status == 405 else "Sandbox.NotFound"
    )
    assert response.headers.get("Allow") == ("GET, POST" if status == 405 else None)


def test_a_malformed_chunked_body_is_a_400_in_the_contract_body() -> None:
    class Broken(_Stream):
        def readinto(self, buf: Any) -> int:
            raise OSError("Invalid chunk header")  # what werkzeug's DechunkedInput raises

    functions = _Functions(True)
    env = EnvironBuilder(method="POST", path="/api/v1/sessions").get_environ()
    env.update({"wsgi.input": Broken(b""), "wsgi.input_terminated": True})
    env.pop("CONTENT_LENGTH", None)
    response = ApiGatewayEmulator(functions).handle(Request(env))  # type: ignore[arg-type]
    assert response.status_code == 400
    assert json.loads(response.get_data())["error_code"] == "Sandbox.InvalidParameter"


def test_the_drain_after_an_answer_is_bounded() -> None:
    inner = io.BufferedReader(_Stream(b"x" * 1_000_000))  # type: ignore[arg-type]
    drain = DrainBudget(inner, 64 * 1024)
    total = 0
    while data := drain.read(10_000_000):  # werkzeug's drain asks for 10 MB at a time
        total += len(data)
    assert total == 64 * 1024
