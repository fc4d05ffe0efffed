"""The executor's routes for code contexts and background processes (behind the same executor key as
``/execute``; server.py authorizes, reads the body and sends what ``handle`` returns).

    POST /contexts                  {"context_id", "language", "cwd"}        -> 201 context
    GET|DELETE /contexts/{id}       POST /contexts/{id}/restart              -> 200 context
    POST /processes                 {"process_id", "cmd", "cwd", "env"}      -> 201 process
    GET /processes, GET /processes/{id}
    POST /processes/{id}/stdin      {"data", "eof"}                          -> 200 {"written"}
    POST /processes/{id}/signal     {"signal"}                               -> 200 process
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sandbox_executor.contexts import LANGUAGES, ContextError, Contexts
from sandbox_executor.processes import SIGNALS, Processes

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_CMD_BYTES = 64 * 1024
MAX_STDIN_BYTES = 1 << 20
MAX_ENV_VARS = 100
PREFIXES = ("/contexts", "/processes")

_STATUS = {
    "NotFound": 404,
    "Conflict": 409,
    "ProcessExited": 409,
    "TooManyContexts": 429,
    "TooManyProcesses": 429,
    "ValidationError": 400,
    "StartFailed": 500,
}


@dataclass
class Interactive:
    contexts: Contexts
    processes: Processes


def handles(route: str) -> bool:
    return any(route == p or route.startswith(p + "/") for p in PREFIXES)


def handle(service: Interactive, method: str, route: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
    try:
        parts = route.strip("/").split("/")
        payload = _json(body) if method == "POST" else {}
        if parts[0] == "contexts":
            return _contexts(service.contexts, method, parts[1:], payload)
        return _processes(service.processes, method, parts[1:], payload)
    except ContextError as exc:
        return _STATUS.get(exc.code, 400), _error(exc.code, str(exc))


def _contexts(
    contexts: Contexts, method: str, rest: list[str], body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    if not rest and method == "POST":
        context_id = _id(body.get("context_id"), "context_id")
        language = body.get("language")
        if language not in LANGUAGES:
            raise ContextError("ValidationError", f"Field 'language' must be one of {', '.join(LANGUAGES)}")
        kernel = contexts.create(context_id, language, _optional_str(body.get("cwd"), "cwd"))
        return 201, kernel.describe()
    if len(rest) == 1 and method in ("GET", "DELETE"):
        if method == "DELETE":
            contexts.delete(_id(rest[0], "context_id"))
            return 200, {"context_id": rest[0], "status": "deleted"}
        return 200, contexts.get(_id(rest[0], "context_id")).describe()
    if len(rest) == 2 and rest[1] == "restart" and method == "POST":
        kernel = contexts.get(_id(rest[0], "context_id"))
        kernel.restart()
        return 200, kernel.describe()
    raise ContextError("NotFound", f"No route for {method} /contexts/{'/'.join(rest)}")


def _processes(
    processes: Processes, method: str, rest: list[str], body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    if not rest and method == "POST":
        process_id = _id(body.get("process_id"), "process_id")
        cmd = body.get("cmd")
        if not isinstance(cmd, str) or not cmd.strip() or len(cmd.encode("utf-8", "replace")) > MAX_CMD_BYTES:
            raise _invalid(f"Field 'cmd' must be a non-empty string of at most {MAX_CMD_BYTES} bytes")
        cwd = _optional_str(body.get("cwd"), "cwd")
        started = processes.start(process_id, cmd, cwd, _env(body.get("env")))
        return 201, started.describe()
    if not rest and method == "GET":
        return 200, {"processes": [p.describe() for p in processes.list()]}
    if len(rest) == 1 and method == "GET":
        return 200, processes.get(_id(rest[0], "process_id")).describe()
    if len(rest) == 2 and method == "POST" and rest[1] == "stdin":
        target = processes.get(_id(rest[0], "process_id"))
        data = body.get("data", "")
        if not isinstance(data, str) or len(data.encode()) > MAX_STDIN_BYTES:
            raise _invalid(f"Field 'data' must be a string of at most {MAX_STDIN_BYTES} bytes")
        eof = body.get("eof", False)
        if not isinstance(eof, bool):
            raise ContextError("ValidationError", "Field 'eof' must be a boolean")
        return 200, {"process_id": target.process_id, "written": target.write_stdin(data.encode(), eof)}
    if len(rest) == 2 and method == "POST" and rest[1] == "signal":
        target = processes.get(_id(rest[0], "process_id"))
        name = body.get("signal")
        if name not in SIGNALS:
            raise ContextError("ValidationError", f"Field 'signal' must be one of {', '.join(SIGNALS)}")
        target.send_signal(name)
        return 200, target.describe()
    raise ContextError("NotFound", f"No route for {method} /processes/{'/'.join(rest)}")


def _json(body: bytes | None) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except ValueError as exc:
        raise ContextError("ValidationError", f"Body is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ContextError("ValidationError", "Request body must be a JSON object")
    return parsed


def _id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise ContextError("ValidationError", f"Field '{name}' must match {ID_RE.pattern}")
    return value


def _optional_str(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or "\x00" in value or len(value) > 4096:
        raise ContextError("ValidationError", f"Field '{name}' must be a string")
    return value


def _env(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_ENV_VARS:
        raise _invalid(f"Field 'env' must be an object of at most {MAX_ENV_VARS} strings")
    for name, item in value.items():
        if not ENV_NAME_RE.fullmatch(name) or name.startswith(("SANDBOXCP_", "AWS_")):
            raise ContextError("ValidationError", f"Environment variable name {name!r} is not allowed")
        if not isinstance(item, str) or "\x00" in item:
            raise ContextError("ValidationError", f"Environment variable {name} must be a string without NUL")
    return dict(value)


def _invalid(detail: str) -> ContextError:
    return ContextError("ValidationError", detail)


def _error(code: str, detail: str) -> dict[str, str]:
    return {
        "error_code": f"Executor.{code}",
        "description": code,
        "error_detail": detail,
        "solution": "Correct the request and retry" if code == "ValidationError" else "See error_detail",
    }
