"""An API Gateway (REST, proxy integration) emulator built from the route table: it turns HTTP requests into
the same proxy events Lambda receives in AWS, runs the same Lambda authorizers first, and shapes refusals
like the deployed gateway responses (the contract's error body).

The order matters for what a caller without a key can make the stack do: match the route (an unknown path
is a 404, a method the path is not served with - HEAD included - a 405 with `Allow`), refuse a declared
Content-Length over the limit, run the authorizer (it sees headers, path and query, as API Gateway's
REQUEST authorizers do), and only then read the body, bounded (see body.py). What the body holds (media
type, encoding, JSON) is the handler's to judge, as behind API Gateway (sandboxcp.api.resolver)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule
from werkzeug.wrappers import Request, Response

from sandboxcp.api.resolver import error_body, error_headers, no_route
from sandboxcp.local.body import MAX_PAYLOAD, BodyRefused, read_body, too_large
from sandboxcp.local.functions import LocalFunctions
from sandboxcp.routes import AUTHORIZERS, ROUTES, Route

_ACCOUNT, _REGION, _STAGE = "123456789012", "us-east-1", "local"
_API_ARN = f"arn:aws:execute-api:{_REGION}:{_ACCOUNT}:local"


def _rule_path(path: str) -> str:
    out = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("+}"):
            out.append(f"<path:{part[1:-2]}>")
        elif part.startswith("{"):
            out.append(f"<{part[1:-1]}>")
        else:
            out.append(part)
    return "/".join(out)


def _gateway_error(status: int, code: str, description: str, detail: str, request_id: str) -> Response:
    body = {
        "error_code": code,
        "description": description,
        "error_detail": detail,
        "solution": "Send 'Authorization: Bearer <token>' with a valid token"
        if status in (401, 403)
        else "Check the method and path against the API contract",
        "request_id": request_id,
    }
    return Response(json.dumps(body), status=status, content_type="application/json")


def _event_body(raw: bytes) -> tuple[str | None, bool]:
    """(body, isBase64Encoded): text as is, anything not UTF-8 in base64, as API Gateway passes binary."""
    if not raw:
        return None, False
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode(), True


SSE_WAIT_S = "5"  # each later invoke of a held-open SSE stream waits this long for a chunk (then a keepalive)


def _sse_event(event: dict[str, Any], *, wait: str | None, last_id: str | None = None) -> dict[str, Any]:
    """The proxy event again, with `wait` and (resuming) the Last-Event-ID header set."""
    query = dict(event["queryStringParameters"] or {})
    if wait is not None:
        query["wait"] = wait
    headers = dict(event["headers"])
    multi_headers = dict(event["multiValueHeaders"])
    if last_id is not None:
        headers = {k: v for k, v in headers.items() if k.lower() != "last-event-id"}
        multi_headers = {k: v for k, v in multi_headers.items() if k.lower() != "last-event-id"}
        headers["Last-Event-ID"], multi_headers["Last-Event-ID"] = last_id, [last_id]
    return {
        **event,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()},
        "requestContext": {**event["requestContext"], "requestId": str(uuid.uuid4())},
    }


def _last_sse_id(result: dict[str, Any], previous: str | None) -> str | None:
    ids = [line[4:] for line in str(result.get("body") or "").splitlines() if line.startswith("id: ")]
    return ids[-1] if ids else previous


class ApiGatewayEmulator:
    def __init__(self, functions: LocalFunctions, routes: Iterable[Route] = ROUTES) -> None:
        self.functions = functions
        self.routes = list(routes)
        self.url_map = Map(
            [Rule(_rule_path(r.path), methods=[r.method], endpoint=i) for i, r in enumerate(self.routes)],
            strict_slashes=False,
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.handle(Request(environ))(environ, start_response)

    def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            index, params = adapter.match()
        except (NotFound, MethodNotAllowed, RequestRedirect):
            return self._no_route(request, None, request_id)
        route = self.routes[index]
        if request.method != route.method:  # werkzeug serves HEAD with a GET rule; API Gateway does not
            return self._no_route(request, route.path, request_id)
        event = self._proxy_event(request, route, dict(params), request_id)
        try:
            if (request.content_length or 0) > MAX_PAYLOAD:
                raise too_large()  # refused on the declared size: not a byte of it is read
            if route.auth != "none":
                denied = self._authorize(route, event, request_id)
                if denied is not None:
                    return denied
            event["body"], event["isBase64Encoded"] = _event_body(read_body(request))
        except BodyRefused as refused:
            code = "Sandbox.InvalidParameter"
            return _gateway_error(refused.status, code, refused.description, refused.detail, request_id)
        if route.sse and request.args.get("stream") == "sse":
            return self._sse(route, event)
        result = self.functions.invoke(route.module, event)
        return self._response(result)

    def _sse(self, route: Route, event: dict[str, Any]) -> Response:
        """Server-Sent Events held open (docs/streaming.md): API Gateway answers each `?stream=sse` request
        with one long poll's events; here the same handler is invoked again and again, resuming after the
        last event id, into one stream until `event: complete` or the client leaves. The first invoke
        answers at once (an error is a plain HTTP error); later ones wait up to SSE_WAIT_S for a chunk."""
        asked_wait = "wait" in (event["queryStringParameters"] or {})
        first = self.functions.invoke(route.module, _sse_event(event, wait=None if asked_wait else "0"))
        if int(first.get("statusCode", 500)) != 200:
            return self._response(first)

        def stream() -> Iterator[bytes]:
            result, last_id = first, _last_sse_id(first, None)
            while True:
                text = str(result.get("body") or "")
                yield text.encode() if "\nid: " in f"\n{text}" else b": keepalive\n\n"
                if "\nevent: complete\n" in text:
                    return
                last_id = _last_sse_id(result, last_id)
                again = _sse_event(event, wait=SSE_WAIT_S, last_id=last_id)
                result = self.functions.invoke(route.module, again)
                if int(result.get("statusCode", 500)) != 200:
                    yield f"event: error\ndata: {result.get('body') or ''}\n\n".encode()
                    return

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return Response(stream(), status=200, content_type="text/event-stream", headers=headers)

    def _no_route(self, request: Request, resource: str | None, request_id: str) -> Response:
        """404, or 405 with `Allow` when the path is served with other methods: the resolver's answer
        (sandboxcp.api.resolver.no_route), before any authorizer, as API Gateway refuses what it does not
        serve (there, always 404: docs/api.md, "Protocol errors")."""
        err = no_route(self.routes, request.method, resource, request.path)
        body = json.dumps(error_body(err, request_id))
        headers = error_headers(err)
        return Response(body, status=err.status_code, headers=headers, content_type="application/json")

    def _proxy_event(
        self, request: Request, route: Route, params: dict[str, str], request_id: str
    ) -> dict[str, Any]:
        """The proxy event without its body: the authorizer gets its fields before the body is read."""
        multi_q = {k: request.args.getlist(k) for k in request.args}
        return {
            "resource": route.path,
            "path": request.path,
            "httpMethod": request.method,
            "headers": dict(request.headers.items()),
            "multiValueHeaders": {k: request.headers.getlist(k) for k in request.headers.keys()},  # noqa: SIM118
            "queryStringParameters": {k: v[-1] for k, v in multi_q.items()} or None,
            "multiValueQueryStringParameters": multi_q or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": _ACCOUNT,
                "apiId": "local",
                "stage": _STAGE,
                "resourcePath": route.path,
                "path": f"/{_STAGE}{request.path}",
                "httpMethod": request.method,
                "requestId": request_id,
                "requestTimeEpoch": int(time.time() * 1000),
                "identity": {
                    "sourceIp": request.remote_addr or "127.0.0.1",
                    "userAgent": request.user_agent.string,
                },
            },
            "body": None,
            "isBase64Encoded": False,
        }

    def _authorize(self, route: Route, event: dict[str, Any], request_id: str) -> Response | None:
        kind: Literal["api_key", "callback"] = "callback" if route.auth == "callback" else "api_key"
        auth_event = {
            "type": "REQUEST",
            "methodArn": f"{_API_ARN}/{_STAGE}/{route.method}{event['path']}",
            **{
                k: event[k]
                for k in (
                    "resource",
                    "path",
                    "httpMethod",
                    "headers",
                    "multiValueHeaders",
                    "queryStringParameters",
                    "pathParameters",
                    "stageVariables",
                    "requestContext",
                )
            },
        }
        try:
            policy = self.functions.invoke(AUTHORIZERS[kind].module, auth_event)
        except Exception as err:  # a raised "Unauthorized" is API Gateway's 401
            if str(err) == "Unauthorized":
                return _gateway_error(
                    401,
                    "Sandbox.Unauthorized",
                    "Authentication failed",
                    "Missing or invalid bearer token",
                    request_id,
                )
            return _gateway_error(
                500, "Sandbox.InternalError", "Authorizer error", "The authorizer failed", request_id
            )
        statements = policy.get("policyDocument", {}).get("Statement", [])
        if not any(s.get("Effect") == "Allow" for s in statements):
            return _gateway_error(
                403, "Sandbox.Forbidden", "Access denied", "The authorizer denied the request", request_id
            )
        event["requestContext"]["authorizer"] = {
            **policy.get("context", {}),
            "principalId": policy["principalId"],
        }
        return None

    @staticmethod
    def _response(result: dict[str, Any]) -> Response:
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        resp = Response(body, status=int(result.get("statusCode", 200)))
        resp.headers.pop("Content-Type", None)
        for k, v in (result.get("headers") or {}).items():
            resp.headers[k] = str(v)
        for k, values in (result.get("multiValueHeaders") or {}).items():
            for v in values:
                resp.headers.add(k, str(v))
        return resp


class LambdaInvokeEndpoint:
    """The slice of the Lambda API that moto's Step Functions interpreter calls (Invoke): it routes each
    invoke to the in-process function named by the ARN."""

    def __init__(self, functions: LocalFunctions) -> None:
        self.functions = functions
        self.url_map = Map([Rule("/2015-03-31/functions/<path:name>/invocations", methods=["POST"])])

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            _, params = self.url_map.bind_to_environ(environ).match()
        except (NotFound, MethodNotAllowed):
            return Response("not found", status=404)(environ, start_response)
        module = params["name"].split(":")[-1]
        payload = json.loads(request.get_data() or b"{}")
        try:
            result = self.functions.invoke(module, payload)
            resp = Response(json.dumps(result), content_type="application/json")
        except Exception as err:
            error = {"errorMessage": str(err), "errorType": type(err).__name__}
            resp = Response(
                json.dumps(error),
                content_type="application/json",
                headers={"X-Amz-Function-Error": "Unhandled"},
            )
        return resp(environ, start_response)
