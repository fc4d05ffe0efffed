"""Every HTTP function is built from `make_resolver()`: validation on, and the single place where domain
errors, validation errors and unexpected failures become the contract's error body with request_id."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths

from sandboxcp.domain.errors import InvalidParameter, SandboxError
from sandboxcp.domain.models import Principal
from sandboxcp.observability import bind_request, logger, metrics, tracer

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def error_body(err: SandboxError, request_id: str) -> dict[str, str]:
    return {
        "error_code": err.error_code,
        "description": err.description,
        "error_detail": err.detail,
        "solution": err.solution,
        "request_id": request_id,
    }


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
    app = APIGatewayRestResolver(enable_validation=True)

    def request_id() -> str:
        return str(app.current_event.request_context.request_id or "")

    def respond(err: SandboxError) -> Response[Any]:
        return Response(
            err.status_code, content_types.APPLICATION_JSON, json.dumps(error_body(err, request_id()))
        )

    @app.exception_handler(SandboxError)
    def _domain_error(err: SandboxError) -> Response[Any]:
        logger.info("request refused", extra={"error_code": err.error_code, "detail": err.detail})
        return respond(err)

    @app.exception_handler(RequestValidationError)
    def _validation_error(err: RequestValidationError) -> Response[Any]:
        return respond(InvalidParameter(_describe_validation(list(err.errors()))))

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
    session_id = str(app.current_event.request_context.authorizer.raw_event["session_id"])
    bind_request(**{"session_id": session_id, **_path_ids(app)})
    return session_id


def lambda_entry(app: APIGatewayRestResolver) -> LambdaHandler:
    """The Lambda handler of an HTTP function: logging with correlation id, tracing, metrics."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    return handler
