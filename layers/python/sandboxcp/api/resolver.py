"""Every HTTP function is built from `make_resolver()`: validation on, and the single place where domain
errors, validation errors, protocol refusals and unexpected failures become the contract's error body with
request_id.

Protocol-level input is refused here, before any handler runs, so a refused request records nothing:
- routing trusts API Gateway: an event is matched on its `resource` and method, with the decoded
  `pathParameters` (powertools alone matches the raw `path` against a regex that rejects `"`, `#`, `€`,
  newlines... and would answer a request API Gateway already routed with "not found");
- a method the route table does not serve on a resource (HEAD included) -> 405 with `Allow`; an unknown
  path -> 404 (the same answers as the local API Gateway emulator);
- path ids that can never exist (wrong alphabet, over-long: DynamoDB keys stop at 2,048 bytes) -> the
  resource's 404, before any lookup;
- JSON bodies: another media type -> 415; not UTF-8, not JSON (NaN, Infinity, 5,000-digit integers
  included), strings that are not Unicode (lone surrogate escapes) or nesting deeper than MAX_JSON_DEPTH
  -> 400."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

from sandboxcp.domain.errors import (
    ContextNotFound,
    ExecutionNotFound,
    InvalidParameter,
    ProcessNotFound,
    SandboxError,
    SessionNotFound,
    TemplateNotFound,
    Unauthorized,
)
from sandboxcp.domain.ids import CONTEXT_ID_RE, EXECUTION_ID_RE, PROCESS_ID_RE, SESSION_ID_RE
from sandboxcp.domain.models import Principal
from sandboxcp.observability import bind_request, logger, metrics, prepare_init, traced
from sandboxcp.routes import ROUTES, Route, resolver_path

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]

ROUTE_SOLUTION = "Check the method and path against the API contract"
MAX_JSON_DEPTH = 32  # nested objects/arrays in a request body (DynamoDB maps nest at most 32 levels)
MAX_ID_CHARS = 512  # a path id longer than this names nothing (DynamoDB keys stop at 2,048 bytes)


# --- protocol refusals ----------------------------------------------------------------------------------


class RouteNotFound(SandboxError):
    status_code = 404
    error_code = "Sandbox.NotFound"
    description = "Not found"
    solution = ROUTE_SOLUTION


class MethodNotAllowed(SandboxError):
    """Answered with an `Allow` header listing the methods the route table serves on the path."""

    status_code = 405
    error_code = "Sandbox.MethodNotAllowed"
    description = "Method not allowed"
    solution = ROUTE_SOLUTION

    def __init__(self, method: str, path: str, allow: Sequence[str]) -> None:
        super().__init__(f"{method} is not allowed on {path}; allowed: {', '.join(allow)}")
        self.allow = tuple(allow)


class UnsupportedMediaType(SandboxError):
    status_code = 415
    error_code = "Sandbox.InvalidParameter"
    description = "Unsupported media type"
    solution = "Send the body as JSON with 'Content-Type: application/json'"


def error_body(err: SandboxError, request_id: str) -> dict[str, str]:
    return {
        "error_code": err.error_code,
        "description": err.description,
        "error_detail": err.detail,
        "solution": err.solution,
        "request_id": request_id,
    }


def error_headers(err: SandboxError) -> dict[str, str]:
    if isinstance(err, MethodNotAllowed):
        return {"Allow": ", ".join(err.allow)}
    retry_after = getattr(err, "retry_after", None)  # a 429 over a quota (sandboxcp.domain.quotas)
    return {"Retry-After": str(retry_after)} if retry_after is not None else {}


@functools.cache
def _path_pattern(path: str) -> re.Pattern[str]:
    """A route table path as a regex over decoded paths: `{name}` one segment, `{name+}` the rest."""
    parts = re.split(r"(\{\w+\+?\})", path)
    regex = "".join(
        (".+" if p.endswith("+}") else "[^/]+") if p.startswith("{") else re.escape(p) for p in parts
    )
    return re.compile(regex + "/*", re.DOTALL)


def allowed_methods(routes: Iterable[Route], resource: str | None, path: str) -> list[str]:
    """The methods `routes` serve on API Gateway's `resource` or, without one, on the concrete `path`."""
    routes = list(routes)
    methods = {r.method for r in routes if r.path == resource}
    if not methods:
        methods = {r.method for r in routes if _path_pattern(r.path).fullmatch(path)}
    return sorted(methods)


def no_route(routes: Iterable[Route], method: str, resource: str | None, path: str) -> SandboxError:
    """405 when the path is served with other methods (HEAD included: no route declares it), else 404."""
    allow = allowed_methods(routes, resource, path)
    if allow and method.upper() not in allow:
        return MethodNotAllowed(method.upper(), path, allow)
    return RouteNotFound(f"No route for {method.upper()} {path}")


# --- path parameters ------------------------------------------------------------------------------------

# Ids the API mints itself have an exact format; template and container ids are only bounded here (their
# rules live with the templates and the runtimes), to an alphabet that holds every one we make (ECS task
# ARNs have ':' and '/', Kubernetes pod names '.', Docker ids hex).
_OPAQUE_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:@/+=~-]{{0,{MAX_ID_CHARS - 1}}}")


def _container_not_found(detail: str) -> SandboxError:
    from sandboxcp.services.containers import ContainerNotFound  # only when refusing: keeps imports light

    return ContainerNotFound(detail)


_PATH_IDS: dict[str, tuple[str, re.Pattern[str], Callable[[str], SandboxError]]] = {
    "session_id": ("Session", SESSION_ID_RE, SessionNotFound),
    "execution_id": ("Execution", EXECUTION_ID_RE, ExecutionNotFound),
    "template_id": ("Template", _OPAQUE_ID, TemplateNotFound),
    "container_id": ("Container", _OPAQUE_ID, _container_not_found),
    "context_id": ("Context", CONTEXT_ID_RE, ContextNotFound),
    "process_id": ("Process", PROCESS_ID_RE, ProcessNotFound),
    # As POST /keys takes them; any other tenant can never exist (quotas of a valid one default).
    "tenant_id": ("Tenant", re.compile(r"[A-Za-z0-9_-]{1,64}"), RouteNotFound),
}


def _shown(value: str, limit: int = 64) -> str:
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"


def check_path_ids(params: Mapping[str, Any]) -> None:
    """Refuse, before any lookup, a path id that can never name anything: the resource's 404 (another
    tenant's resource and a missing one answer alike), or 400 for a parameter of no known kind."""
    for name, value in params.items():
        kind, pattern, not_found = _PATH_IDS.get(name, ("", _OPAQUE_ID, InvalidParameter))
        if isinstance(value, str) and pattern.fullmatch(value):
            continue
        shown = _shown(str(value))
        if kind:
            raise not_found(f"{kind} '{shown}' does not exist")
        raise InvalidParameter(f"'{name}' is not a valid identifier: '{shown}'")


# --- JSON bodies ----------------------------------------------------------------------------------------

_JSON_MEDIA_TYPE = re.compile(r"application/(?:[\w.+-]+\+)?json", re.IGNORECASE)


class _Refused(ValueError):
    """What Python's json module accepts and JSON (RFC 8259) or our storage does not."""


def _reject_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _Refused(f"the number {_shown(text, 32)} is out of range")
    return number


def _body_text(event: BaseProxyEvent) -> str:
    raw = str(event.get("body") or "")
    if not event.is_base64_encoded:
        return raw
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidParameter("The request body is not valid base64") from err
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidParameter(f"The request body is not valid UTF-8 (at byte {err.start})") from err


def _check_json_structure(value: Any) -> None:
    """Depth and Unicode, walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidParameter(f"The request body nests deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(node, dict):
                for key, item in node.items():
                    _check_unicode(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            _check_unicode(node)


def _check_unicode(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise InvalidParameter(
                "The request body holds a string that is not valid Unicode (an unpaired surrogate such as "
                "\\ud800)"
            ) from err


def parse_json(text: str) -> Any:
    """The JSON value of a request body, or InvalidParameter (never RecursionError or ValueError)."""
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except json.JSONDecodeError as err:
        detail = f"the request body is not valid JSON ({err.msg} at position {err.pos})"
        raise InvalidParameter(detail) from err
    except RecursionError as err:
        raise InvalidParameter(f"The request body nests deeper than {MAX_JSON_DEPTH} levels") from err
    except _Refused as err:
        raise InvalidParameter(f"the request body is not valid JSON ({err})") from err
    except ValueError as err:  # integers past Python's 4,300 digits (int_max_str_digits)
        raise InvalidParameter("the request body holds a number with too many digits") from err
    _check_json_structure(value)
    return value


def json_request_body(event: BaseProxyEvent) -> Any:
    """The parsed body of a route that takes JSON (None when there is none, as powertools gives it)."""
    if not event.get("body"):
        return None
    media_type = (event.headers.get("content-type") or "").split(";", 1)[0].strip()
    if media_type and not _JSON_MEDIA_TYPE.fullmatch(media_type):
        raise UnsupportedMediaType(f"This endpoint takes application/json, not '{_shown(media_type, 100)}'")
    return parse_json(_body_text(event))


def _refuse_if_throttled(event: BaseProxyEvent) -> None:
    """429 for a request the API-key authorizer counted over its tenant's requests-per-second quota."""
    context = (event.get("requestContext") or {}).get("authorizer") or {}
    if isinstance(context, dict) and context.get("throttled_retry_after"):
        from sandboxcp.services.quotas import refuse_if_throttled  # only when refusing: keeps imports light

        refuse_if_throttled(context)


class _RequestChecks(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, preceded by the path id checks, with the JSON body parsed here."""

    def handler(self, app: Any, next_middleware: NextMiddleware) -> Response[Any]:
        _refuse_if_throttled(app.current_event)
        check_path_ids(app.context.get("_route_args") or {})
        return super().handler(app, next_middleware)

    def _get_body(self, app: Any) -> Any:  # only called for routes with a Body() parameter
        return json_request_body(app.current_event)


class SandboxResolver(APIGatewayRestResolver):
    """APIGatewayRestResolver with validation, routing on the event's `resource` (see the module doc).

    It overrides powertools hooks that are not public API (`_resolve`, `_request_validation_middleware`,
    `_get_body`; powertools is pinned in pyproject.toml): tests/functional/test_bad_input_protocol.py fails
    if an upgrade moves them."""

    def __init__(self) -> None:
        super().__init__(enable_validation=True)
        self._request_validation_middleware = _RequestChecks()
        self._this_request = threading.local()

    # powertools keeps the event being resolved on its BaseRouter class, shared by every resolver of the
    # process: one event at a time is all a Lambda process has, but the local stack resolves requests
    # of different functions in threads of one process, where one request's handler would read another's
    # event (another tenant, another body). Here each thread sees the event it resolves.
    @property  # type: ignore[override]  # (powertools declares a plain attribute)
    def current_event(self) -> APIGatewayProxyEvent:
        return self._this_request.event

    @current_event.setter
    def current_event(self, value: APIGatewayProxyEvent) -> None:
        self._this_request.event = value

    @property
    def lambda_context(self) -> Any:
        return getattr(self._this_request, "context", None)

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._this_request.context = value

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        self._this_request.event = self._to_proxy_event(dict(event))
        self._this_request.context = context
        return super().resolve(event, context)

    def _resolve(self) -> ResponseBuilder:
        found = self._route_for_resource()
        if found is None:
            return super()._resolve()  # events without a known resource: powertools' own path matching
        route, arguments = found
        self.append_context(_route=route, _path=self.current_event.path)
        return self._call_route(route, arguments)

    def _route_for_resource(self) -> tuple[Any, dict[str, str]] | None:
        event = self.current_event
        resource = event.get("resource")
        if not isinstance(resource, str):
            return None
        method, rule = event.http_method.upper(), resolver_path(resource)
        params = event.path_parameters or {}
        for route in self._static_routes + self._dynamic_routes:
            if route.method == method and route.path == rule:
                if not all(name in params for name in route.rule.groupindex):
                    return None
                return route, {name: str(params[name]) for name in route.rule.groupindex}
        return None


def _describe_validation(errors: list[Any]) -> str:
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body",)) or "body"
        if e.get("type") == "json_invalid":
            parts.append("the request body is not valid JSON")
        elif e.get("type") == "missing":
            parts.append(f"'{loc}' is required")
        else:
            parts.append(f"'{loc}': {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def make_resolver() -> APIGatewayRestResolver:
    app = SandboxResolver()

    def request_id() -> str:
        return str(app.current_event.request_context.request_id or "")

    def respond(err: SandboxError) -> Response[Any]:
        return Response(
            err.status_code,
            content_types.APPLICATION_JSON,
            json.dumps(error_body(err, request_id())),
            headers=error_headers(err) or None,
        )

    @app.exception_handler(SandboxError)
    def _domain_error(err: SandboxError) -> Response[Any]:
        logger.info("request refused", extra={"error_code": err.error_code, "detail": err.detail})
        return respond(err)

    @app.not_found
    def _no_route(_: NotFoundError) -> Response[Any]:
        event = app.current_event
        err = no_route(ROUTES, event.http_method, event.get("resource"), event.path)
        logger.info("no route", extra={"error_code": err.error_code, "detail": err.detail})
        return respond(err)

    @app.exception_handler(RequestValidationError)
    def _validation_error(err: RequestValidationError) -> Response[Any]:
        return respond(InvalidParameter(_describe_validation(list(err.errors()))))

    @app.exception_handler(RequestUnsupportedContentType)
    def _media_type(_: RequestUnsupportedContentType) -> Response[Any]:
        return respond(UnsupportedMediaType("This endpoint takes application/json"))

    @app.exception_handler(Exception)
    def _unexpected(err: Exception) -> Response[Any]:
        logger.exception("unhandled error")
        return respond(SandboxError(f"An unexpected error occurred ({type(err).__name__})"))

    return app


def caller(app: APIGatewayRestResolver) -> Principal:
    """The tenant the authorizer resolved (API Gateway passes authorizer context values as strings)."""
    ctx = app.current_event.request_context.authorizer.raw_event
    principal = Principal(
        tenant_id=str(ctx["tenant_id"]), is_admin=str(ctx.get("is_admin", "false")) == "true"
    )
    bind_request(tenant_id=principal.tenant_id, **_path_ids(app))
    return principal


def _path_ids(app: APIGatewayRestResolver) -> dict[str, str]:
    params = app.current_event.path_parameters or {}
    return {k: v for k, v in params.items() if k in ("session_id", "execution_id")}


def callback_session(app: APIGatewayRestResolver) -> str:
    """The session whose callback token the internal authorizer accepted."""
    session_id = app.current_event.request_context.authorizer.raw_event.get("session_id")
    if not session_id:  # no authorizer ran (a misrouted call): refused, never a 500
        raise Unauthorized("No callback token was accepted for this request")
    session_id = str(session_id)
    bind_request(**{"session_id": session_id, **_path_ids(app)})
    return session_id


def lambda_entry(app: APIGatewayRestResolver) -> LambdaHandler:
    """The Lambda handler of an HTTP function: logging with correlation id, tracing (built at the first
    invocation: sandboxcp.observability.traced), metrics."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
    @traced
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    prepare_init()
    return handler
