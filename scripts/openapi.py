#!/usr/bin/env python3
"""Generate the OpenAPI 3.1 documents from the handlers: docs/openapi.json (public API, /api/v1) and
docs/openapi-internal.json (executor callbacks, /internal).

    python3 scripts/openapi.py            # write both documents
    python3 scripts/openapi.py --check    # exit 1 (with a diff) when the committed ones differ

Every route of the route table (sandboxcp.routes.ROUTES) is served by one module under functions/, whose
powertools resolver knows its parameters, request body and return model. Each module's own resolver
renders its one-operation document (`get_openapi_json_schema`, public powertools API); this script merges them
into one document per API and adds, centrally, what a handler's signature cannot say:

- the path as the route table spells it, relative to the API's base URL (`/api/v1`, `/internal`); the
  greedy `{path+}` becomes the `{path}` parameter;
- the success status (201, 202, 204, 307) and the media type of non-JSON bodies (text/plain, octet-stream,
  multipart/form-data uploads), and headers a handler reads itself (Idempotency-Key);
- the error responses, all with the contract's error body (`Error`), in place of powertools' 422 (the
  resolver turns validation errors into 400 Sandbox.InvalidParameter): 400 when the operation takes input,
  401 unless it is open, 403 for admin and callback routes, 404 when it names a resource, 413 when it has
  a body, 415 when that body is JSON, 500 always, and the statuses listed per module in EXTRA_ERRORS;
- security (bearer API keys; callback tokens on the internal API; none on /health), operation ids (the
  module names), tags, summaries and descriptions (each module's docstring).
"""

from __future__ import annotations

import argparse
import ast
import copy
import difflib
import importlib
import json
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "layers" / "python", ROOT / "functions"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from sandboxcp.routes import ROUTES, Api, Route  # noqa: E402

OUTPUTS: dict[Api, Path] = {
    "public": ROOT / "docs" / "openapi.json",
    "internal": ROOT / "docs" / "openapi-internal.json",
}
BASE_PATHS: dict[Api, str] = {"public": "/api/v1", "internal": "/internal"}
REF = "#/components/schemas/"
ERROR_REF = {"$ref": f"{REF}Error"}


class Error(BaseModel):
    """The body of every 4xx and 5xx answer, from the handlers and from the gateway alike."""

    error_code: str = Field(description="e.g. Sandbox.InvalidParameter, Sandbox.SessionNotFound")
    description: str = Field(description="What went wrong, in a few words")
    error_detail: str = Field(description="What went wrong with this request")
    solution: str = Field(description="What to do about it")
    request_id: str = Field(description="The API Gateway request id (quote it in support requests)")


class HealthCheck(BaseModel):
    status: Literal["healthy", "unhealthy"]
    latency_ms: float
    error: str | None = Field(default=None, description="The failure's exception class")
    runtime: str | None = Field(default=None, description="The runtime's name (the `runtime` check only)")


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    checks: dict[str, HealthCheck] = Field(description="`dynamodb`, `s3` and `runtime`")


# --- what a handler's signature does not say ------------------------------------------------------------
TEXT = {"text/plain": {"schema": {"type": "string"}}}
SSE_EVENT = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string", "enum": ["message", "complete"]},
        "data": {"type": "string"},
        "retry": {"type": "integer"},
    },
}

SUCCESS: dict[str, dict[int, dict[str, Any]]] = {
    # status -> {"description", "content" or "model" (a component's name; else the handler's return
    # model), optional "headers"}
    "health": {
        200: {"description": "Healthy, or degraded (S3 or the runtime failed)", "model": "HealthResponse"},
        503: {"description": "Unhealthy: DynamoDB failed its check", "model": "HealthResponse"},
    },
    "sessions_create": {
        200: {"description": "A replay: the session the first request with this Idempotency-Key created"},
        201: {"description": "Session recorded (`creating`); its launch has started"},
    },
    "executions_submit_sync": {
        200: {
            "description": "The execution ended within 25 s: its result",
            "model": "ExecutionResultResponse",
        },
        202: {"description": "Still running after 25 s: poll its status", "model": "ExecuteResponse"},
    },
    "files_download": {
        200: {
            "description": "The file (4 MB at most inline)",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
        },
        307: {
            "description": "Larger files: a presigned S3 GET (1 h)",
            "headers": {"Location": {"description": "The presigned URL", "schema": {"type": "string"}}},
        },
    },
    "templates_create": {201: {"description": "Template created"}},
    "templates_delete": {204: {"description": "Template deleted"}},
    "containers_logs": {200: {"description": "The last `tail` log lines", "content": TEXT}},
    "metrics_prometheus": {200: {"description": "Prometheus text format 0.0.4", "content": TEXT}},
    "keys_create": {201: {"description": "Key issued; the secret is shown only in this answer"}},
    "executions_output": {
        200: {
            "description": "A page of chunks (JSON), or with `stream=sse` the same as Server-Sent Events",
            "content": {
                "application/json": {"schema": {"$ref": REF + "ExecutionOutput"}},
                # One schema per event (how OpenAPI 3.1 tools read a stream): `id` is the chunk's seq,
                # `data` the chunk as JSON; `event: complete` ends the stream.
                "text/event-stream": {"schema": SSE_EVENT},
            },
        }
    },
    "contexts_create": {201: {"description": "Context ready in the sandbox"}},
    "processes_create": {201: {"description": "Process started in the sandbox"}},
}

SUMMARIES = {
    "health": "Health of DynamoDB, S3 and the runtime",
    "sessions_create": "Create a session",
    "sessions_list": "List sessions",
    "sessions_get": "Get a session",
    "sessions_terminate": "Terminate a session",
    "executions_submit": "Submit code to run",
    "executions_submit_sync": "Run code and wait for its result (up to 25 s)",
    "executions_list": "List a session's executions",
    "executions_get": "Get an execution",
    "executions_status": "Get an execution's status",
    "executions_result": "Get an execution's result",
    "executions_output": "Read an execution's live output (long poll or SSE)",
    "files_upload": "Upload a file (multipart, up to 4 MB)",
    "files_presign_upload": "Get a presigned upload (up to 100 MB)",
    "files_list": "List the workspace's files",
    "files_download": "Download a file",
    "templates_list": "List templates",
    "templates_create": "Create a template (admin)",
    "templates_get": "Get a template",
    "templates_update": "Update a template (admin)",
    "templates_delete": "Delete a template (admin)",
    "containers_list": "List containers",
    "containers_get": "Get a container",
    "containers_logs": "Get a container's logs",
    "metrics_prometheus": "Prometheus metrics",
    "keys_create": "Issue an API key (admin)",
    "tenants_quotas_get": "Get a tenant's quotas and usage",
    "tenants_quotas_put": "Set a tenant's quotas (admin)",
    "internal_execution_artifacts": "Report an execution's artifacts",
    "contexts_create": "Create a code context",
    "contexts_list": "List a session's code contexts",
    "contexts_get": "Get a code context",
    "contexts_delete": "Delete a code context",
    "contexts_restart": "Restart a code context's interpreter",
    "processes_create": "Start a background process",
    "processes_list": "List a session's background processes",
    "processes_get": "Get a background process",
    "processes_stdin": "Write to a process's stdin",
    "processes_signal": "Signal a process",
    "processes_output": "Read a process's output",
    "internal_process_output": "Report a process's output and exit",
    "internal_container_ready": "Report the executor ready",
    "internal_container_exited": "Report the sandbox exited",
    "internal_workspace_urls": "Get fresh workspace URLs",
    "internal_execution_status": "Report an execution's status",
    "internal_heartbeat": "Heartbeat of a running execution",
    "internal_execution_result": "Report an execution's result",
    "internal_execution_output": "Post a batch of live output",
}

# Error statuses beyond the derived ones (400/401/403/404/413/500, see the module docstring).
EXTRA_ERRORS: dict[str, dict[int, str]] = {
    "sessions_create": {
        409: "The first request with this Idempotency-Key is still in progress: retry with the same key",
        422: "This Idempotency-Key was used with another body (Sandbox.IdempotencyKeyReused)",
        503: "The launch workflow could not be started",
    },
    "sessions_terminate": {503: "The runtime could not destroy the sandbox"},
    "executions_submit": {
        409: "The session is not running",
        503: "The session's executor is unreachable",
    },
    "executions_submit_sync": {
        409: "The session is not running",
        503: "The session's executor is unreachable",
    },
    "executions_result": {409: "The execution has not ended yet: poll its status"},
    "sessions_list": {400: "Invalid parameter, or a next_token this listing did not issue"},
    "tenants_quotas_get": {403: "Another tenant's quotas, without an admin key"},
    "executions_list": {400: "Invalid parameter, or a next_token this listing did not issue"},
    "templates_list": {400: "Invalid parameter, or a next_token this listing did not issue"},
    "contexts_create": {
        409: "The session is not running",
        429: "The session already has 8 code contexts (Retry-After)",
        503: "The session's executor is unreachable",
    },
    "contexts_delete": {503: "The session's executor is unreachable"},
    "contexts_restart": {409: "The session is not running", 503: "The session's executor is unreachable"},
    "processes_create": {
        409: "The session is not running",
        429: "The session already has 16 processes running (Retry-After)",
        503: "The session's executor is unreachable",
    },
    "processes_stdin": {
        409: "The session is not running, or the process exited or closed its stdin",
        503: "The session's executor is unreachable",
    },
    "processes_signal": {
        409: "The session is not running, or the process exited",
        503: "The session's executor is unreachable",
    },
    "files_upload": {409: "The session has ended: its workspace is read-only"},
    "files_presign_upload": {409: "The session has ended: its workspace is read-only"},
    "templates_create": {409: "A template with this id exists"},
    "templates_update": {409: "A concurrent update won: read the template again"},
    "containers_logs": {503: "The runtime could not read the sandbox's logs"},
    "internal_container_ready": {409: "The session is no longer waiting for its executor"},
    "internal_container_exited": {409: "The session changed state meanwhile"},
    "internal_workspace_urls": {409: "The session has ended"},
    "internal_execution_status": {409: "The execution cannot move to this status"},
    "internal_heartbeat": {409: "The execution is not running"},
    "internal_execution_result": {409: "The execution ended already, or the same result is being recorded"},
    "internal_execution_output": {409: "The execution ended: its output is closed"},
}

# Per-tenant quotas (docs/api.md "Quotas"): every keyed request counts against requests per second.
RATE_429 = "Over the tenant's quota of API requests per second; retry after Retry-After"
SUBMIT_429 = (
    "The session already has 32 executions pending or running, or the tenant is over its quota of executions "
    "in flight or of requests per second; retry after Retry-After"
)
QUOTA_429 = {
    "sessions_create": "Over the tenant's quota of live sessions, CPU or memory, or of requests per second; "
    "retry after Retry-After",
    "executions_submit": SUBMIT_429,
    "executions_submit_sync": SUBMIT_429,
}
RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}

ERROR_CODES = {
    400: "Sandbox.InvalidParameter",
    401: "Sandbox.Unauthorized",
    403: "Sandbox.Forbidden",
    409: "Sandbox.StateConflict",
    413: "Sandbox.InvalidParameter",
    415: "Sandbox.InvalidParameter",
    429: "Sandbox.TooManyRequestsExection",
    500: "Sandbox.InternalError",
    503: "Sandbox.TooManyRequestsExection",
}
ERROR_TEXT = {
    400: "Invalid parameter: malformed JSON, missing fields, wrong types, values out of range",
    401: "Missing or unknown bearer token",
    413: "Payload too large: the body is over 10 MB",
    415: "Unsupported media type: the body must be application/json",
    500: "Unexpected error, logged with the request id",
}
FORBIDDEN = {
    "admin": "Not an admin key",
    "callback": "The callback token belongs to another session",
}
NOT_FOUND = {
    "session_id": "Sandbox.SessionNotFound",
    "execution_id": "Sandbox.ExecutionNotFound",
    "template_id": "Sandbox.TemplateNotFound",
    "container_id": "Sandbox.ContainerNotFound",
    "tenant_id": "Sandbox.NotFound",
    "context_id": "Sandbox.ContextNotFound",
    "process_id": "Sandbox.ProcessNotFound",
    "path": "Sandbox.FileNotFound, Sandbox.NotFound",
}
EXTRA_PARAMETERS: dict[str, list[dict[str, Any]]] = {
    "sessions_create": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Create at most once per tenant and key within 24 h",
            "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
        }
    ],
    "internal_execution_result": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": True,
            "description": "The execution id: a replay with the same key gets the first answer",
            "schema": {"type": "string", "minLength": 1},
        }
    ],
}
REQUEST_BODIES: dict[str, dict[str, Any]] = {
    "files_upload": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "Up to 4 MB"},
                        "path": {
                            "type": "string",
                            "description": "Where in the workspace (relative); default: the file's name",
                        },
                    },
                }
            }
        },
    }
}

SECURITY_SCHEMES: dict[Api, dict[str, Any]] = {
    "public": {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`sk_...`): `Authorization: Bearer <api key>`. Admin keys issue keys "
            "(POST /keys) and change templates.",
        }
    },
    "internal": {
        "callbackToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "The session's callback token, valid for that session's resources only",
        }
    },
}
INFO: dict[Api, dict[str, str]] = {
    "public": {
        "title": "Sandbox Control Plane API",
        "description": "Sessions, code execution, workspace files, templates and containers. Limits and "
        "differences from the reference contract: docs/api.md. Every 4xx/5xx body is an `Error`.",
    },
    "internal": {
        "title": "Sandbox Control Plane internal API",
        "description": "The executor's callbacks, each with its session's callback token. "
        "Every 4xx/5xx body is an `Error`.",
    },
}
SERVERS: dict[Api, list[dict[str, Any]]] = {
    "public": [
        {"url": "/api/v1", "description": "This host (e.g. the Swagger UI of `sandboxcp local`)"},
        {"url": "http://127.0.0.1:8000/api/v1", "description": "`sandboxcp local` on its default port"},
        {
            "url": "https://{api_id}.execute-api.{region}.amazonaws.com/prod/api/v1",
            "description": "The deployed stack (API Gateway)",
            "variables": {"api_id": {"default": "api-id"}, "region": {"default": "us-east-1"}},
        },
    ],
    "internal": [
        {"url": "/internal", "description": "This host"},
        {"url": "http://127.0.0.1:8000/internal", "description": "`sandboxcp local` on its default port"},
    ],
}


# --- building -------------------------------------------------------------------------------------------
def _import_environment() -> None:
    """The settings the handler modules read at import (table names, region): local defaults, never
    overriding what the environment sets."""
    from sandboxcp.local.aws import REGION, local_settings_env

    defaults = {
        **local_settings_env("/tmp/sandboxcp-openapi", "process"),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def _version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def _description(module: str) -> str:
    """The module's docstring, on one line."""
    doc = ast.get_docstring(ast.parse((ROOT / "functions" / f"{module}.py").read_text())) or module
    return " ".join(doc.split())


def _module_document(route: Route, api: Api) -> dict[str, Any]:
    """The one-operation document the module's own resolver renders."""
    module = importlib.import_module(route.module)
    rendered = module.app.get_openapi_json_schema(title=INFO[api]["title"], version=_version())
    return dict(json.loads(rendered))


def _tag(route: Route, path: str) -> str:
    kind = route.module.split("_", 1)[0]
    return path.split("/")[1] if kind == "internal" else kind


def _content_for(spec: dict[str, Any], generated: dict[str, Any] | None) -> dict[str, Any] | None:
    """The content of a success response: the table's, a named model's (e.g. one member of the handler's
    `A | B` return type), or the handler's return model."""
    if "content" in spec:
        return dict(copy.deepcopy(spec["content"]))
    if "model" in spec:  # _prune fails on a name that is no component
        return {"application/json": {"schema": {"$ref": REF + spec["model"]}}}
    return generated


def _error(text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": ERROR_REF}}}


def _path_parameters(route: Route, generated: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The route table's path variables, in order, with the handler's schema where it declares one. A
    path variable is never empty (API Gateway matches no empty segment); the greedy `{path+}` (read from
    pathParameters, not a handler argument) may contain '/'."""
    declared = {p["name"]: p for p in generated if p["in"] == "path"}
    out = []
    for name, greedy in re.findall(r"\{(\w+)(\+?)\}", route.path):
        param = copy.deepcopy(declared.get(name, {"name": name, "in": "path", "schema": {"type": "string"}}))
        param["required"] = True
        param["schema"].setdefault("minLength", 1)
        if greedy:
            param.setdefault("description", "A file path relative to the workspace; it may contain '/'")
        out.append(param)
    return out


def _operation(route: Route, api: Api, path: str, components: dict[str, Any]) -> dict[str, Any]:
    generated_doc = _module_document(route, api)
    for name, schema in generated_doc.get("components", {}).get("schemas", {}).items():
        if name in components and components[name] != schema:
            raise SystemExit(f"two different models are both named {name!r} (seen in {route.module})")
        components[name] = schema
    ((_, item),) = generated_doc["paths"].items()
    operation = dict(item[route.method.lower()])
    operation.update(
        operationId=route.module, summary=SUMMARIES[route.module], description=_description(route.module)
    )
    operation["tags"] = [_tag(route, path)]
    operation["security"] = [] if route.auth == "none" else [{next(iter(SECURITY_SCHEMES[api])): []}]

    generated_params = operation.pop("parameters", [])
    path_params = _path_parameters(route, generated_params)
    params = [p for p in generated_params if p["in"] != "path"]
    params = path_params + params + EXTRA_PARAMETERS.get(route.module, [])
    if params:
        operation["parameters"] = params
    if route.module in REQUEST_BODIES:
        operation["requestBody"] = copy.deepcopy(REQUEST_BODIES[route.module])

    generated = operation.pop("responses")
    default_content = generated.get("200", {}).get("content")
    responses: dict[str, Any] = {}
    for status, spec in SUCCESS.get(route.module, {200: {"description": "OK"}}).items():
        response: dict[str, Any] = {"description": spec["description"]}
        if status not in (204, 307):
            content = _content_for(spec, default_content)
            if content:
                response["content"] = content
        if "headers" in spec:
            response["headers"] = copy.deepcopy(spec["headers"])
        responses[str(status)] = response

    errors: dict[int, str] = {}
    if params or "requestBody" in operation:
        errors[400] = ERROR_TEXT[400]
    if route.auth != "none":
        errors[401] = ERROR_TEXT[401]
    if route.auth in FORBIDDEN:
        errors[403] = FORBIDDEN[route.auth]
    if path_params:
        codes = ", ".join(NOT_FOUND[p["name"]] for p in path_params)
        errors[404] = f"No such resource for this caller, or no route for the path ({codes})"
    if "requestBody" in operation:
        errors[413] = ERROR_TEXT[413]
    if "application/json" in operation.get("requestBody", {}).get("content", {}):
        errors[415] = ERROR_TEXT[415]
    errors[500] = ERROR_TEXT[500]
    if route.auth in ("api_key", "admin"):
        errors[429] = QUOTA_429.get(route.module, RATE_429)
    errors.update(EXTRA_ERRORS.get(route.module, {}))
    for status, text in errors.items():
        if str(status) not in responses:
            code = f" ({ERROR_CODES[status]})" if status in ERROR_CODES else ""
            responses[str(status)] = _error(text + code)
            if status == 429:
                responses[str(status)]["headers"] = copy.deepcopy(RETRY_AFTER_HEADER)
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _referenced(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF):
            found.add(ref[len(REF) :])
        for value in node.values():
            _referenced(value, found)
    elif isinstance(node, list):
        for value in node:
            _referenced(value, found)


def _prune(schemas: dict[str, Any], roots: Any) -> dict[str, Any]:
    """Only the schemas the operations reach (drops powertools' validation-error models)."""
    keep: set[str] = set()
    _referenced(roots, keep)
    while True:
        more: set[str] = set()
        for name in keep:
            _referenced(schemas[name], more)
        if more <= keep:
            break
        keep |= more
    return {name: schemas[name] for name in sorted(keep)}


def build(api: Api) -> dict[str, Any]:
    """The OpenAPI document of one API, from the route table and the handler modules."""
    _import_environment()
    base = BASE_PATHS[api]
    components: dict[str, Any] = {}
    for model in (Error, HealthResponse):
        schema = model.model_json_schema(ref_template=REF + "{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        if route.api != api:
            continue
        assert route.path.startswith(base + "/"), route.path
        path = re.sub(r"\{(\w+)\+\}", r"{\1}", route.path[len(base) :])
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, api, path, components)
    return {
        "openapi": "3.1.0",
        "info": {**INFO[api], "version": _version()},
        "servers": SERVERS[api],
        "security": [{next(iter(SECURITY_SCHEMES[api])): []}],
        "tags": [
            {"name": tag}
            for tag in dict.fromkeys(op["tags"][0] for ops in paths.values() for op in ops.values())
        ],
        "paths": paths,
        "components": {"schemas": _prune(components, paths), "securitySchemes": SECURITY_SCHEMES[api]},
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def drift() -> list[str]:
    """A unified diff (first lines) for each committed document that differs from the generated one."""
    problems = []
    for api, out in OUTPUTS.items():
        want = render(build(api))
        have = out.read_text() if out.exists() else ""
        if have != want:
            diff = difflib.unified_diff(
                have.splitlines(),
                want.splitlines(),
                f"{out.name} (committed)",
                f"{out.name} (from the code)",
                lineterm="",
            )
            problems.append("\n".join(list(diff)[:60]))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift()
        for problem in problems:
            print(problem)
        if problems:
            print("The OpenAPI documents are out of date: run `python3 scripts/openapi.py` and commit them.")
        return 1 if problems else 0
    for api, out in OUTPUTS.items():
        out.write_text(render(build(api)))
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
