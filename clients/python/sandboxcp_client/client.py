"""The synchronous client: every endpoint of the public API, grouped by resource.

```python
from sandboxcp_client import SandboxClient

with SandboxClient() as client:                      # SANDBOXCP_URL / SANDBOXCP_API_KEY
    s = client.sessions.create("python-basic")
    client.sessions.wait_until_running(s.session_id)
    r = client.executions.run(s.session_id, "print(6 * 7)")
    client.sessions.terminate(s.session_id)
```
For sandboxes as objects (context managers, `run_code`, `files`), see :class:`sandboxcp_client.Sandbox`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from sandboxcp_client import _api
from sandboxcp_client._files import (
    CHUNK,
    INLINE_LIMIT,
    FileSource,
    Progress,
    check_size,
    open_source,
    total_from,
)
from sandboxcp_client._http import Call, ClientConfig, SyncTransport
from sandboxcp_client.errors import SandboxTimeoutError
from sandboxcp_client.models import (
    ApiKey,
    ContainerInfo,
    ContainerList,
    ExecutionDetail,
    ExecutionList,
    ExecutionResult,
    ExecutionStatus,
    Language,
    PresignedUpload,
    ResourceLimit,
    SessionInfo,
    SessionList,
    SubmittedExecution,
    Template,
    TemplateList,
    UploadedFile,
    WorkspaceFile,
)
from sandboxcp_client.retry import RetryPolicy

__all__ = ["SandboxClient"]

POLL_START, POLL_MAX = 0.05, 1.0


class _Resource:
    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport

    def _json(self, call: Call) -> Any:
        return self._t.send(call).json()


class Sessions(_Resource):
    """`/sessions`: create, read, list, terminate."""

    def create(
        self,
        template: str = "python-basic",
        *,
        timeout: int | None = None,
        resources: ResourceLimit | dict[str, Any] | None = None,
        env_vars: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> SessionInfo:
        """Create a session (status `creating`; see :meth:`wait_until_running`). `timeout` is its lifetime
        in seconds (60-3600, default 300). An `Idempotency-Key` is always sent (a new UUID unless given),
        so retries after a lost answer or a 503 never start a second sandbox; pass your own key to make a
        create safe to repeat across processes."""
        call = _api.create_session(template, timeout, resources, env_vars, idempotency_key)
        return SessionInfo.model_validate(self._json(call))

    def get(self, session_id: str) -> SessionInfo:
        return SessionInfo.model_validate(self._json(_api.get_session(session_id)))

    def list(
        self, *, status: str | None = None, template: str | None = None, limit: int = 50, offset: int = 0
    ) -> SessionList:
        return SessionList.model_validate(self._json(_api.list_sessions(status, template, limit, offset)))

    def terminate(self, session_id: str) -> str:
        """Terminate the session and destroy its sandbox (its files are kept 24 h). Returns the message."""
        return str(self._json(_api.terminate_session(session_id)).get("message", ""))

    def wait_until_running(self, session_id: str, *, timeout: float = 90.0) -> SessionInfo:
        """Wait until the session leaves `creating` and return it: `running`, or `failed` when its launch
        failed (check `.status` and `.error_message`). Raises :class:`SandboxTimeoutError` after
        `timeout` seconds. Each request waits on the server (`?wait=`, up to 20 s), which answers as soon
        as the session changes; a server that answers at once is polled as before."""
        deadline = time.monotonic() + timeout
        delay = POLL_START
        while True:
            wait = max(0.0, deadline - time.monotonic())
            asked = time.monotonic()
            info = SessionInfo.model_validate(self._json(_api.get_session(session_id, wait)))
            if info.status != "creating":
                return info
            if time.monotonic() >= deadline:
                raise SandboxTimeoutError(f"session {session_id} still creating after {timeout:.0f} s")
            if _answered_without_waiting(asked, wait):
                time.sleep(delay)
                delay = min(delay * 1.5, POLL_MAX)


def _answered_without_waiting(asked: float, wait: float) -> bool:
    """An older server ignores `wait` and answers at once: then the client paces its own polling."""
    return time.monotonic() - asked < 0.5 * min(wait, _api.MAX_SESSION_WAIT_S)


class Executions(_Resource):
    """Running code: submit (async), execute-sync, wait, and the execution's status, result and detail.

    Python code that defines no `handler` and gets no `event` runs as a script (the value of its last
    expression comes back in `result`); code with a `handler` runs `handler(event)`."""

    def submit(
        self,
        session_id: str,
        code: str,
        *,
        language: Language = "python",
        event: dict[str, Any] | None = None,
        timeout: int | None = None,
    ) -> SubmittedExecution:
        """Submit and return at once (`pending`); follow with :meth:`wait`."""
        sent, _ = _api.prepare_code(code, language, event)
        body = _api.execution_body(sent, language, event, timeout)
        return SubmittedExecution.model_validate(self._json(_api.submit(session_id, body)))

    def execute_sync(
        self,
        session_id: str,
        code: str,
        *,
        language: Language = "python",
        event: dict[str, Any] | None = None,
        timeout: int | None = None,
    ) -> ExecutionResult | SubmittedExecution:
        """`execute-sync`: the result if the run ends within about 25 s, else the execution to poll."""
        sent, snippet = _api.prepare_code(code, language, event)
        body = _api.execution_body(sent, language, event, timeout)
        return _api.read_sync_answer(self._t.send(_api.execute_sync(session_id, body)), snippet)

    def run(
        self,
        session_id: str,
        code: str,
        *,
        language: Language = "python",
        event: dict[str, Any] | None = None,
        timeout: int | None = None,
        wait_timeout: float | None = None,
    ) -> ExecutionResult:
        """Run code and return its result: `execute-sync`, then polling if the run is longer."""
        answer = self.execute_sync(session_id, code, language=language, event=event, timeout=timeout)
        if isinstance(answer, ExecutionResult):
            return answer
        return self.wait(answer.execution_id, timeout=wait_timeout or _default_wait(timeout))

    def wait(self, execution_id: str, *, timeout: float | None = None) -> ExecutionResult:
        """Poll the status until the execution ends, then return its result. `timeout` (seconds, default
        the execution's own timeout plus a margin) bounds the wait: past it, SandboxTimeoutError."""
        limit = timeout if timeout is not None else _default_wait(None)
        deadline = time.monotonic() + limit
        delay = POLL_START
        while not self.status(execution_id).done:
            if time.monotonic() >= deadline:
                raise SandboxTimeoutError(f"execution {execution_id} not finished after {limit:.0f} s")
            time.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX)
        return self.result(execution_id)

    def status(self, execution_id: str) -> ExecutionStatus:
        return ExecutionStatus.model_validate(self._json(_api.execution_status(execution_id)))

    def result(self, execution_id: str) -> ExecutionResult:
        """The outcome of an ended execution (409 ConflictError while it runs)."""
        return _api.read_result(self._json(_api.execution_result(execution_id)), snippet=True)

    def get(self, execution_id: str) -> ExecutionDetail:
        detail = ExecutionDetail.model_validate(self._json(_api.get_execution(execution_id)))
        if detail.result is not None:
            detail.result = _api.unwrap_result(detail.result)
        return detail

    def list(self, session_id: str, *, status: str | None = None, limit: int = 50) -> ExecutionList:
        return ExecutionList.model_validate(self._json(_api.list_executions(session_id, status, limit)))


class Files(_Resource):
    """A session's workspace (`/workspace` in the sandbox): upload, download, list.

    Files up to 4 MB go through the API; larger ones (up to 100 MB) through a presigned S3 POST, chosen
    automatically. Both stream from and to disk and report progress."""

    def upload(
        self,
        session_id: str,
        path: str,
        data: FileSource,
        *,
        progress: Progress | None = None,
    ) -> UploadedFile:
        """Write `data` (bytes, str, a `pathlib.Path` or a binary file) to `path` in the workspace."""
        source = open_source(data)
        try:
            check_size(source.size)
            if source.size <= INLINE_LIMIT:
                call = _api.upload_inline(session_id, path, source, progress)
                return UploadedFile.model_validate(self._json(call))
            grant = self.upload_url(session_id, path, source.size)
            self._t.send(_api.presigned_post(grant, path, source, progress))
            return UploadedFile(path=grant.path, size=source.size)
        finally:
            source.close()

    def upload_url(self, session_id: str, path: str, size: int) -> PresignedUpload:
        """A presigned POST for one file of exactly `size` bytes (up to 100 MB), valid 1 h."""
        return PresignedUpload.model_validate(self._json(_api.upload_url(session_id, path, size)))

    def list(self, session_id: str) -> list[WorkspaceFile]:
        body = self._json(_api.list_files(session_id))
        return [WorkspaceFile.model_validate(f) for f in body.get("files", [])]

    def read(self, session_id: str, path: str, *, progress: Progress | None = None) -> bytes:
        """The file's bytes (inline up to 4 MB, else from the presigned URL the API redirects to)."""
        return b"".join(self.iter_bytes(session_id, path, progress=progress))

    def download(
        self,
        session_id: str,
        path: str,
        destination: str | Path | IO[bytes],
        *,
        progress: Progress | None = None,
    ) -> int:
        """Stream the file to a local path or binary file object; returns the number of bytes written."""
        written = 0
        if isinstance(destination, str | Path):
            target = Path(destination)
            partial = target.with_name(target.name + ".part")
            with partial.open("wb") as out:
                for chunk in self.iter_bytes(session_id, path, progress=progress):
                    out.write(chunk)
                    written += len(chunk)
            partial.replace(target)
            return written
        for chunk in self.iter_bytes(session_id, path, progress=progress):
            destination.write(chunk)
            written += len(chunk)
        return written

    def iter_bytes(self, session_id: str, path: str, *, progress: Progress | None = None) -> Iterator[bytes]:
        """The file as a stream of chunks."""
        resp = self._t.send(_api.download(session_id, path), stream=True)
        if resp.status_code == 307:
            resp.close()
            resp = self._t.send(Call("GET", resp.headers["location"], idempotent=True), stream=True)
        total, done = total_from(resp.headers), 0
        try:
            for chunk in resp.iter_bytes(CHUNK):
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
                yield chunk
        finally:
            resp.close()


class Templates(_Resource):
    """Sandbox templates; writes need an admin key."""

    def list(self, *, limit: int = 50, offset: int = 0) -> TemplateList:
        return TemplateList.model_validate(self._json(_api.list_templates(limit, offset)))

    def get(self, template_id: str) -> Template:
        return Template.model_validate(self._json(_api.get_template(template_id)))

    def create(
        self,
        id: str,
        *,
        name: str,
        image: str,
        default_resources: ResourceLimit | dict[str, Any],
        **fields: Any,
    ) -> Template:
        """Create a template (admin). Further fields: base_image, pre_installed_packages,
        security_context, languages, deprecated."""
        body = {"id": id, "name": name, "image": image, **fields}
        body["default_resources"] = _api.resources_body(default_resources)
        return Template.model_validate(self._json(_api.create_template(body)))

    def update(self, template_id: str, **fields: Any) -> Template:
        """Partial update (admin); `deprecated=True` hides the template from new sessions."""
        if isinstance(fields.get("default_resources"), ResourceLimit):
            fields["default_resources"] = _api.resources_body(fields["default_resources"])
        return Template.model_validate(self._json(_api.update_template(template_id, fields)))

    def delete(self, template_id: str) -> None:
        """Delete a template (admin); refused while live sessions use it (deprecate it first)."""
        self._t.send(_api.delete_template(template_id))


class Containers(_Resource):
    """The sandboxes behind sessions, and their logs."""

    def list(
        self,
        *,
        status: str | None = None,
        runtime_type: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> ContainerList:
        call = _api.list_containers(status, runtime_type, limit, offset)
        return ContainerList.model_validate(self._json(call))

    def get(self, container_id: str) -> ContainerInfo:
        """A container by its id or by its session's id."""
        return ContainerInfo.model_validate(self._json(_api.get_container(container_id)))

    def logs(self, container_id: str, *, tail: int = 100, since: datetime | str | None = None) -> str:
        """The last `tail` lines (1-10,000) of the sandbox's log, optionally only those since a time."""
        return self._t.send(_api.container_logs(container_id, tail, since)).text

    def follow(
        self,
        container_id: str,
        *,
        tail: int = 100,
        poll_interval: float = 1.0,
        stop_when_ended: bool = True,
    ) -> Iterator[str]:
        """The last `tail` lines, then new lines as they come (polling). Ends when the container has
        ended (after its last lines) if `stop_when_ended`, else runs until the caller stops iterating."""
        window = max(tail, 1000)
        previous: list[str] = []
        first = True
        while True:
            # Read the state before the lines: an ended container's last lines are still printed.
            ended = stop_when_ended and self.get(container_id).status not in ("creating", "running")
            current = self.logs(container_id, tail=window).splitlines()
            fresh = _api.new_log_lines(previous, current)
            yield from (fresh[-tail:] if first else fresh)
            previous, first = current, False
            if ended:
                return
            time.sleep(poll_interval)


class Keys(_Resource):
    def create(self, tenant: str, *, admin: bool = False) -> ApiKey:
        """Issue an API key for a tenant (needs an admin key); the secret is shown only here."""
        return ApiKey.model_validate(self._json(_api.create_key(tenant, admin)))


class SandboxClient:
    """A client of the Sandbox Control Plane API.

    `url` and `api_key` default to `SANDBOXCP_URL` (else http://127.0.0.1:8000) and `SANDBOXCP_API_KEY`.
    `retry` sets the retry policy (see :class:`RetryPolicy`); `http_client` lets you bring your own
    `httpx.Client` (proxies, TLS, transports; it is not closed by `close()`)."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.config = ClientConfig.resolve(url, api_key, timeout=timeout, retry=retry, headers=headers)
        self._transport = SyncTransport(self.config, http_client)
        self.sessions = Sessions(self._transport)
        self.executions = Executions(self._transport)
        self.files = Files(self._transport)
        self.templates = Templates(self._transport)
        self.containers = Containers(self._transport)
        self.keys = Keys(self._transport)

    def health(self) -> dict[str, Any]:
        """`/health` (no key needed): `status` healthy, degraded or unhealthy, and each check."""
        body: dict[str, Any] = self._transport.send(_api.health()).json()
        return body

    def metrics(self) -> str:
        """Prometheus text: the figures the key may see."""
        return self._transport.send(_api.metrics()).text

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _default_wait(timeout: int | None) -> float:
    return float((timeout or 30) + 60)
