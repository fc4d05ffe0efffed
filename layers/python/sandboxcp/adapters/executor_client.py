"""The executor's HTTP API (reference/executor-api.yaml) over httpx: TCP for containers, a unix socket
for the process runtime (`unix:///path/executor.sock`)."""

from __future__ import annotations

import json
import os
import ssl
import stat
import time
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from sandboxcp.domain.errors import (
    ContextNotFound,
    InvalidParameter,
    ProcessNotFound,
    SandboxError,
    SandboxUnavailable,
    SessionLimitReached,
    StateConflict,
    TooManyRequests,
)
from sandboxcp.domain.models import Execution
from sandboxcp.domain.ports import ExecutorContext, ExecutorProcess

_CONNECT_S, _READ_S = 2.0, 5.0
# A result answered by the executor (execute-sync) is at most what API Gateway lets its callback carry.
MAX_ANSWER_BYTES = 10 * 1024 * 1024
_TIMEOUT = httpx.Timeout(_READ_S, connect=_CONNECT_S)
_TLS: list[ssl.SSLContext] = []


def _read_bounded(resp: httpx.Response, limit: int) -> bytes | None:
    """The body, or None past `limit` bytes (not read further)."""
    body = bytearray()
    for chunk in resp.iter_bytes():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _tls() -> ssl.SSLContext:
    """One TLS context for every client: httpx builds a new one per client otherwise (~15 ms each, on the
    path of every execution), even for a unix socket that never uses it."""
    if not _TLS:
        _TLS.append(httpx.create_ssl_context())
    return _TLS[0]


def _client_for(executor_url: str) -> tuple[httpx.Client, str]:
    if executor_url.startswith("unix://"):
        path = executor_url.removeprefix("unix://")
        # The socket lives in a directory the sandbox can write: never follow what user code put there
        # (a symlink to another host socket) - connect only to a real socket.
        try:
            mode = os.lstat(path).st_mode
        except OSError as err:
            raise SandboxUnavailable("The session's executor socket is gone") from err
        if not stat.S_ISSOCK(mode):
            raise SandboxUnavailable("The session's executor socket was replaced; refusing to follow it")
        transport = httpx.HTTPTransport(uds=path, verify=_tls())
        return httpx.Client(transport=transport, timeout=_TIMEOUT, verify=_tls()), "http://sandbox"
    return httpx.Client(timeout=_TIMEOUT, verify=_tls()), executor_url.rstrip("/")


class HttpExecutorClient:
    def bind(
        self,
        executor_url: str,
        session_id: str,
        callback_token: str,
        env: Mapping[str, str],
        *,
        wait_s: float = 0.0,
    ) -> None:
        body = {"session_id": session_id, "callback_token": callback_token, "env": dict(env)}
        deadline = time.monotonic() + wait_s
        # Over TCP (ecs, remote docker) one client serves every attempt: making one costs ~35 ms (its TLS
        # context). A unix socket is looked at afresh each time (it may not exist yet, or be replaced).
        tcp = None if executor_url.startswith("unix://") else _client_for(executor_url)
        try:
            while True:
                try:
                    client, base = tcp or _client_for(executor_url)
                    try:
                        resp = client.post(f"{base}/bind", json=body)
                    finally:
                        if tcp is None:
                            client.close()
                    break
                except (httpx.HTTPError, SandboxUnavailable) as err:
                    # Not listening yet (a cold sandbox still booting): connection refused or reset, or
                    # its socket not made yet. The bind itself is never half-applied, so retrying is safe.
                    if time.monotonic() >= deadline:
                        reason = type(err).__name__
                        raise SandboxUnavailable(f"The executor is unreachable: {reason}") from err
                    time.sleep(0.02)
        finally:
            if tcp is not None:
                tcp[0].close()
        if resp.status_code != 200:
            raise SandboxUnavailable(f"The executor refused the binding (HTTP {resp.status_code})")

    def submit(
        self,
        executor_url: str,
        execution: Execution,
        workspace: Mapping[str, Any] | None = None,
        *,
        executor_key: str = "",
        wait_s: float = 0.0,
    ) -> dict[str, Any] | None:
        client, base = _client_for(executor_url)
        payload: dict[str, Any] = {
            "execution_id": execution.execution_id,
            "code": execution.code,
            "language": execution.language,
            "timeout": execution.timeout,
            "event": execution.event,
            "workspace": dict(workspace) if workspace is not None else None,
        }
        if execution.context_id:  # a cell in a code context; handler-style executions send no key
            payload["context_id"] = execution.context_id
        timeout = _TIMEOUT
        if wait_s > 0:  # the executor holds its answer until the run ends, up to wait_ms
            payload["wait_ms"] = int(wait_s * 1000)
            timeout = httpx.Timeout(wait_s + _READ_S, connect=_CONNECT_S)
        headers = {"Authorization": f"Bearer {executor_key}"}
        try:
            with (
                client,
                client.stream(
                    "POST", f"{base}/execute", json=payload, headers=headers, timeout=timeout
                ) as resp,
            ):
                status = resp.status_code
                # Read whole (an executor still writing to a closed connection logs a broken pipe), but
                # the answer is the sandbox's word: no more of it than the callback could carry.
                body = _read_bounded(resp, MAX_ANSWER_BYTES)
        except httpx.HTTPError as err:
            raise SandboxUnavailable(f"The session's executor is unreachable: {type(err).__name__}") from err
        if status == 503:
            raise TooManyRequests("The session's executor queue is full")
        if status >= 300:
            raise SandboxUnavailable(f"The session's executor refused the execution (HTTP {status})")
        if status == 200:  # ended within wait_s: the result callback's body, not posted
            try:
                result = json.loads(body).get("result") if body is not None else None
            except (ValueError, AttributeError):
                result = None
            return result if isinstance(result, dict) else {}  # {}: fails validation, saying so
        return None

    # -- code contexts and background processes (issue #12) -----------------------------------------------
    def create_context(
        self, executor_url: str, context_id: str, language: str, cwd: str | None, *, executor_key: str
    ) -> ExecutorContext:
        body = {"context_id": context_id, "language": language, "cwd": cwd}
        answer = request(executor_url, "POST", "/contexts", body, executor_key=executor_key)
        return _parse(ExecutorContext, answer)

    def get_context(self, executor_url: str, context_id: str, *, executor_key: str) -> ExecutorContext:
        answer = request(executor_url, "GET", f"/contexts/{context_id}", executor_key=executor_key)
        return _parse(ExecutorContext, answer)

    def delete_context(self, executor_url: str, context_id: str, *, executor_key: str) -> None:
        request(executor_url, "DELETE", f"/contexts/{context_id}", executor_key=executor_key)

    def restart_context(self, executor_url: str, context_id: str, *, executor_key: str) -> ExecutorContext:
        path = f"/contexts/{context_id}/restart"
        answer = request(executor_url, "POST", path, {}, executor_key=executor_key)
        return _parse(ExecutorContext, answer)

    def start_process(
        self,
        executor_url: str,
        process_id: str,
        cmd: str,
        cwd: str | None,
        env: Mapping[str, str],
        *,
        executor_key: str,
    ) -> ExecutorProcess:
        body = {"process_id": process_id, "cmd": cmd, "cwd": cwd, "env": dict(env)}
        answer = request(executor_url, "POST", "/processes", body, executor_key=executor_key, kind="process")
        return _parse(ExecutorProcess, answer)

    def get_process(self, executor_url: str, process_id: str, *, executor_key: str) -> ExecutorProcess:
        path = f"/processes/{process_id}"
        answer = request(executor_url, "GET", path, executor_key=executor_key, kind="process")
        return _parse(ExecutorProcess, answer)

    def list_processes(self, executor_url: str, *, executor_key: str) -> list[ExecutorProcess]:
        answer = request(executor_url, "GET", "/processes", executor_key=executor_key, kind="process")
        items = answer.get("processes") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise SandboxUnavailable("The executor answered GET /processes with an unexpected body")
        return [_parse(ExecutorProcess, item) for item in items]

    def write_stdin(
        self, executor_url: str, process_id: str, data: str, eof: bool, *, executor_key: str
    ) -> int:
        path, body = f"/processes/{process_id}/stdin", {"data": data, "eof": eof}
        answer = request(executor_url, "POST", path, body, executor_key=executor_key, kind="process")
        written = answer.get("written") if isinstance(answer, dict) else None
        return written if isinstance(written, int) and not isinstance(written, bool) and written >= 0 else 0

    def signal_process(self, executor_url: str, process_id: str, signal: str, *, executor_key: str) -> None:
        path = f"/processes/{process_id}/signal"
        request(executor_url, "POST", path, {"signal": signal}, executor_key=executor_key, kind="process")


_M = TypeVar("_M", bound=BaseModel)
_NOT_FOUND: dict[str, type[SandboxError]] = {"context": ContextNotFound, "process": ProcessNotFound}
_RETRY_AFTER_S = 5  # the executor's own 429s carry no Retry-After


def request(
    executor_url: str,
    method: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    *,
    executor_key: str,
    kind: Literal["context", "process"] = "context",
) -> Any:
    """One call to the executor's API: the JSON of a 2xx answer. A refusal becomes the domain error a client
    should see (see domain.ports.ExecutorClient); the executor's own explanation, which code in the sandbox
    could have written, is passed on only cut short and without control characters."""
    client, base = _client_for(executor_url)
    try:
        with client:
            resp = client.request(
                method,
                f"{base}{path}",
                json=dict(body) if body is not None else None,
                headers={"Authorization": f"Bearer {executor_key}"},
            )
    except httpx.HTTPError as err:
        raise SandboxUnavailable(f"The session's executor is unreachable: {type(err).__name__}") from err
    what = f"{kind} '{path.split('/')[2]}'" if path.count("/") >= 2 else f"{kind}s"
    if resp.status_code < 300:
        try:
            return resp.json() if resp.content else {}
        except ValueError as err:
            raise SandboxUnavailable(f"The executor's answer to {method} {path} is not JSON") from err
    detail = _executor_detail(resp)
    if resp.status_code == 404:
        raise _NOT_FOUND[kind](f"The sandbox has no {what}{detail}")
    if resp.status_code == 409:
        raise StateConflict(f"The executor refused this for {what}{detail}")
    if resp.status_code in (429, 503):
        raise SessionLimitReached(f"The sandbox has too many {kind}s{detail}", retry_after=_RETRY_AFTER_S)
    if resp.status_code in (400, 422):
        raise InvalidParameter(f"The executor refused the request for {what}{detail}")
    raise SandboxUnavailable(
        f"The session's executor failed on {method} {path} (HTTP {resp.status_code}){detail}"
    )


def _executor_detail(resp: httpx.Response) -> str:
    try:
        answer = resp.json()
    except ValueError:
        return ""
    detail = answer.get("error_detail") if isinstance(answer, dict) else None
    if not isinstance(detail, str) or not detail:
        return ""
    clean = "".join(ch if ch.isprintable() else " " for ch in detail[:300])
    return f": {clean}"


def _parse(model: type[_M], answer: Any) -> _M:
    try:
        return model.model_validate(answer)
    except ValidationError as err:
        raise SandboxUnavailable(f"The executor answered with an unexpected {model.__name__} body") from err
