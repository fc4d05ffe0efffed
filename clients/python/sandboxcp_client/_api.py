"""Each API operation as a `Call` plus how to read its answer: the one place the sync and async clients
share, so the two cannot drift."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from sandboxcp_client import _snippet
from sandboxcp_client._files import OpenedSource, Progress, file_name
from sandboxcp_client._http import Call
from sandboxcp_client.models import (
    ExecutionResult,
    ImageOutput,
    Language,
    PresignedUpload,
    ResourceLimit,
    SubmittedExecution,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
SYNC_WAIT_TIMEOUT = httpx.Timeout(30.0, read=45.0)  # execute-sync holds the request up to 25 s


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def resources_body(resources: ResourceLimit | dict[str, Any] | None) -> dict[str, Any] | None:
    if resources is None:
        return None
    if isinstance(resources, ResourceLimit):
        return resources.model_dump(exclude_none=True, exclude_unset=False)
    return dict(resources)


def _file_path(path: str) -> str:
    return quote(path.lstrip("/"), safe="/")


# -- sessions ----------------------------------------------------------------------------------------------
def create_session(
    template: str,
    timeout: int | None,
    resources: ResourceLimit | dict[str, Any] | None,
    env_vars: dict[str, str] | None,
    idempotency_key: str | None,
) -> Call:
    body: dict[str, Any] = {"template_id": template}
    if timeout is not None:
        body["timeout"] = timeout
    if (res := resources_body(resources)) is not None:
        body["resources"] = res
    if env_vars:
        body["env_vars"] = dict(env_vars)
    # Always keyed: a retried create (lost answer, 503) returns the first session instead of a second one.
    key = idempotency_key or new_idempotency_key()
    return Call("POST", "/sessions", json=body, headers={IDEMPOTENCY_HEADER: key})


MAX_SESSION_WAIT_S = 20.0  # the server's bound on `GET /sessions/{id}?wait=`


def get_session(session_id: str, wait: float | None = None) -> Call:
    """With `wait`, the server answers a `creating` session once it leaves that state (or after `wait` s)."""
    path = f"/sessions/{quote(session_id, safe='')}"
    if not wait:
        return Call("GET", path)
    wait = min(wait, MAX_SESSION_WAIT_S)
    return Call("GET", path, params={"wait": wait}, timeout=wait + 10)


def list_sessions(status: str | None, template: str | None, limit: int, offset: int) -> Call:
    params = {"status": status, "template_id": template, "limit": limit, "offset": offset}
    return Call("GET", "/sessions", params=params)


def terminate_session(session_id: str) -> Call:
    return Call("DELETE", f"/sessions/{quote(session_id, safe='')}")


# -- executions --------------------------------------------------------------------------------------------
def execution_body(
    code: str, language: Language, event: dict[str, Any] | None, timeout: int | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "language": language}
    if timeout is not None:
        body["timeout"] = timeout
    if event is not None:
        body["event"] = event
    return body


def prepare_code(code: str, language: Language, event: dict[str, Any] | None) -> tuple[str, bool]:
    """The code to send and whether it is a wrapped Python snippet. Python without a `handler` and
    without an event runs as a script (see _snippet); everything else is sent as is."""
    if language == "python" and event is None and not _snippet.defines_handler(code):
        return _snippet.wrap_snippet(code), True
    return code, False


def submit(session_id: str, body: dict[str, Any]) -> Call:
    # Not idempotent (each submit is a new execution): never retried once it may have been sent.
    return Call("POST", f"/sessions/{quote(session_id, safe='')}/execute", json=body)


def execute_sync(session_id: str, body: dict[str, Any]) -> Call:
    return Call(
        "POST",
        f"/sessions/{quote(session_id, safe='')}/execute-sync",
        json=body,
        timeout=SYNC_WAIT_TIMEOUT,
        ok_statuses=(),
    )


def read_sync_answer(resp: httpx.Response, snippet: bool) -> ExecutionResult | SubmittedExecution:
    """execute-sync: 200 carries the result, 202 the execution to poll."""
    if resp.status_code == 202:
        return SubmittedExecution.model_validate(resp.json())
    return read_result(resp.json(), snippet)


def read_result(body: Any, snippet: bool) -> ExecutionResult:
    result = ExecutionResult.model_validate(body)
    return unwrap_result(result) if snippet else result


def unwrap_result(result: ExecutionResult) -> ExecutionResult:
    """Turn a snippet's envelope into `return_value`, `text` and `images` (no-op for anything else)."""
    found = _snippet.unwrap(result.return_value)
    if found is None:
        return result
    value, text, images = found
    return result.model_copy(
        update={
            "return_value": value,
            "text": text,
            "images": [ImageOutput.model_validate(i) for i in images],
        }
    )


def get_execution(execution_id: str) -> Call:
    return Call("GET", f"/executions/{quote(execution_id, safe='')}")


def execution_status(execution_id: str) -> Call:
    return Call("GET", f"/executions/{quote(execution_id, safe='')}/status")


def execution_result(execution_id: str) -> Call:
    return Call("GET", f"/executions/{quote(execution_id, safe='')}/result")


def list_executions(session_id: str, status: str | None, limit: int) -> Call:
    params = {"status": status, "limit": limit}
    return Call("GET", f"/sessions/{quote(session_id, safe='')}/executions", params=params)


# -- files -------------------------------------------------------------------------------------------------
def upload_url(session_id: str, path: str, size: int) -> Call:
    # Only signs a policy: idempotent in effect.
    body = {"path": path, "size": size}
    return Call(
        "POST", f"/sessions/{quote(session_id, safe='')}/files/upload-url", json=body, idempotent=True
    )


def upload_inline(session_id: str, path: str, source: OpenedSource, progress: Progress | None) -> Call:
    """Multipart upload through the API (files up to 4 MB)."""
    return Call(
        "POST",
        f"/sessions/{quote(session_id, safe='')}/files/upload",
        # Writing the same bytes to the same path again changes nothing: safe to retry.
        idempotent=True,
        content=lambda: {
            "files": {"file": (file_name(path), source.reader(progress))},
            "data": {"path": path},
        },
        timeout=httpx.Timeout(30.0, write=300.0),
    )


def presigned_post(
    grant: PresignedUpload, path: str, source: OpenedSource, progress: Progress | None
) -> Call:
    """The file POSTed straight to S3 with the presigned policy's fields (`file` last, as S3 requires)."""
    return Call(
        "POST",
        grant.url,
        # The policy pins one key: repeating the POST writes the same object again.
        idempotent=True,
        content=lambda: {
            "data": dict(grant.fields),
            "files": {"file": (file_name(path), source.reader(progress))},
        },
        timeout=httpx.Timeout(30.0, write=600.0),
    )


def list_files(session_id: str) -> Call:
    return Call("GET", f"/sessions/{quote(session_id, safe='')}/files")


def download(session_id: str, path: str) -> Call:
    # API Gateway hands binary bodies back as bytes only with this Accept header.
    return Call(
        "GET",
        f"/sessions/{quote(session_id, safe='')}/files/{_file_path(path)}",
        headers={"Accept": "application/octet-stream"},
        ok_statuses=(307,),
    )


# -- templates, containers, keys, health -------------------------------------------------------------------
def list_templates(limit: int, offset: int) -> Call:
    return Call("GET", "/templates", params={"limit": limit, "offset": offset})


def get_template(template_id: str) -> Call:
    return Call("GET", f"/templates/{quote(template_id, safe='')}")


def create_template(body: dict[str, Any]) -> Call:
    return Call("POST", "/templates", json=body)


def update_template(template_id: str, fields: dict[str, Any]) -> Call:
    return Call("PUT", f"/templates/{quote(template_id, safe='')}", json=fields)


def delete_template(template_id: str) -> Call:
    return Call("DELETE", f"/templates/{quote(template_id, safe='')}")


def list_containers(status: str | None, runtime_type: str | None, limit: int, offset: int) -> Call:
    params = {"status": status, "runtime_type": runtime_type, "limit": limit, "offset": offset}
    return Call("GET", "/containers", params=params)


def get_container(container_id: str) -> Call:
    return Call("GET", f"/containers/{quote(container_id, safe='')}")


def container_logs(container_id: str, tail: int, since: datetime | str | None) -> Call:
    when = since.isoformat() if isinstance(since, datetime) else since
    return Call(
        "GET", f"/containers/{quote(container_id, safe='')}/logs", params={"tail": tail, "since": when}
    )


def create_key(tenant: str, admin: bool) -> Call:
    return Call("POST", "/keys", json={"tenant_id": tenant, "admin": admin})


def health() -> Call:
    # 503 means "unhealthy" here: an answer to report, not a reason to retry.
    return Call("GET", "/health", ok_statuses=(503,), idempotent=False)


def metrics() -> Call:
    return Call("GET", "/metrics")


def new_log_lines(previous: list[str], current: list[str]) -> list[str]:
    """The lines of `current` not yet seen, given the batch before (log follow without clocks: the
    longest tail of `previous` that starts `current` is the overlap)."""
    if not previous:
        return current
    for k in range(min(len(previous), len(current)), 0, -1):
        if previous[-k:] == current[:k]:
            return current[k:]
    return current
