"""The asyncio client: the same operations as :mod:`sandboxcp_client.client` and
:mod:`sandboxcp_client.sandbox`, awaited.

```python
from sandboxcp_client import AsyncSandbox

async with await AsyncSandbox.create(template="python-basic") as sbx:
    r = await sbx.run_code("print(6 * 7)")
```
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
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
from sandboxcp_client._http import AsyncTransport, Call, ClientConfig
from sandboxcp_client.client import POLL_MAX, POLL_START, _answered_without_waiting, _default_wait
from sandboxcp_client.errors import SandboxLaunchError, SandboxTimeoutError, SessionNotFoundError
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

__all__ = ["AsyncSandbox", "AsyncSandboxClient"]


class _Resource:
    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def _json(self, call: Call) -> Any:
        return (await self._t.send(call)).json()


class AsyncSessions(_Resource):
    async def create(
        self,
        template: str = "python-basic",
        *,
        timeout: int | None = None,
        resources: ResourceLimit | dict[str, Any] | None = None,
        env_vars: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> SessionInfo:
        """See :meth:`sandboxcp_client.client.Sessions.create` (always sends an Idempotency-Key)."""
        call = _api.create_session(template, timeout, resources, env_vars, idempotency_key)
        return SessionInfo.model_validate(await self._json(call))

    async def get(self, session_id: str) -> SessionInfo:
        return SessionInfo.model_validate(await self._json(_api.get_session(session_id)))

    async def list(
        self, *, status: str | None = None, template: str | None = None, limit: int = 50, offset: int = 0
    ) -> SessionList:
        call = _api.list_sessions(status, template, limit, offset)
        return SessionList.model_validate(await self._json(call))

    async def terminate(self, session_id: str) -> str:
        return str((await self._json(_api.terminate_session(session_id))).get("message", ""))

    async def wait_until_running(self, session_id: str, *, timeout: float = 90.0) -> SessionInfo:
        deadline = time.monotonic() + timeout
        delay = POLL_START
        while True:
            wait = max(0.0, deadline - time.monotonic())
            asked = time.monotonic()
            info = SessionInfo.model_validate(await self._json(_api.get_session(session_id, wait)))
            if info.status != "creating":
                return info
            if time.monotonic() >= deadline:
                raise SandboxTimeoutError(f"session {session_id} still creating after {timeout:.0f} s")
            if _answered_without_waiting(asked, wait):
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, POLL_MAX)


class AsyncExecutions(_Resource):
    async def submit(
        self,
        session_id: str,
        code: str,
        *,
        language: Language = "python",
        event: dict[str, Any] | None = None,
        timeout: int | None = None,
    ) -> SubmittedExecution:
        sent, _ = _api.prepare_code(code, language, event)
        body = _api.execution_body(sent, language, event, timeout)
        return SubmittedExecution.model_validate(await self._json(_api.submit(session_id, body)))

    async def execute_sync(
        self,
        session_id: str,
        code: str,
        *,
        language: Language = "python",
        event: dict[str, Any] | None = None,
        timeout: int | None = None,
    ) -> ExecutionResult | SubmittedExecution:
        sent, snippet = _api.prepare_code(code, language, event)
        body = _api.execution_body(sent, language, event, timeout)
        return _api.read_sync_answer(await self._t.send(_api.execute_sync(session_id, body)), snippet)

    async def run(
        self,
        session_id: str,
        code: str,
        *,
        language: Language = "python",
        event: dict[str, Any] | None = None,
        timeout: int | None = None,
        wait_timeout: float | None = None,
    ) -> ExecutionResult:
        answer = await self.execute_sync(session_id, code, language=language, event=event, timeout=timeout)
        if isinstance(answer, ExecutionResult):
            return answer
        return await self.wait(answer.execution_id, timeout=wait_timeout or _default_wait(timeout))

    async def wait(self, execution_id: str, *, timeout: float | None = None) -> ExecutionResult:
        limit = timeout if timeout is not None else _default_wait(None)
        deadline = time.monotonic() + limit
        delay = POLL_START
        while not (await self.status(execution_id)).done:
            if time.monotonic() >= deadline:
                raise SandboxTimeoutError(f"execution {execution_id} not finished after {limit:.0f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX)
        return await self.result(execution_id)

    async def status(self, execution_id: str) -> ExecutionStatus:
        return ExecutionStatus.model_validate(await self._json(_api.execution_status(execution_id)))

    async def result(self, execution_id: str) -> ExecutionResult:
        return _api.read_result(await self._json(_api.execution_result(execution_id)), snippet=True)

    async def get(self, execution_id: str) -> ExecutionDetail:
        detail = ExecutionDetail.model_validate(await self._json(_api.get_execution(execution_id)))
        if detail.result is not None:
            detail.result = _api.unwrap_result(detail.result)
        return detail

    async def list(self, session_id: str, *, status: str | None = None, limit: int = 50) -> ExecutionList:
        call = _api.list_executions(session_id, status, limit)
        return ExecutionList.model_validate(await self._json(call))


class AsyncFiles(_Resource):
    async def upload(
        self, session_id: str, path: str, data: FileSource, *, progress: Progress | None = None
    ) -> UploadedFile:
        source = open_source(data)
        try:
            check_size(source.size)
            if source.size <= INLINE_LIMIT:
                call = _api.upload_inline(session_id, path, source, progress)
                return UploadedFile.model_validate(await self._json(call))
            grant = await self.upload_url(session_id, path, source.size)
            await self._t.send(_api.presigned_post(grant, path, source, progress))
            return UploadedFile(path=grant.path, size=source.size)
        finally:
            source.close()

    async def upload_url(self, session_id: str, path: str, size: int) -> PresignedUpload:
        return PresignedUpload.model_validate(await self._json(_api.upload_url(session_id, path, size)))

    async def list(self, session_id: str) -> list[WorkspaceFile]:
        body = await self._json(_api.list_files(session_id))
        return [WorkspaceFile.model_validate(f) for f in body.get("files", [])]

    async def read(self, session_id: str, path: str, *, progress: Progress | None = None) -> bytes:
        return b"".join([chunk async for chunk in self.iter_bytes(session_id, path, progress=progress)])

    async def download(
        self,
        session_id: str,
        path: str,
        destination: str | Path | IO[bytes],
        *,
        progress: Progress | None = None,
    ) -> int:
        written = 0
        if isinstance(destination, str | Path):
            target = Path(destination)
            partial = target.with_name(target.name + ".part")
            with partial.open("wb") as out:
                async for chunk in self.iter_bytes(session_id, path, progress=progress):
                    out.write(chunk)
                    written += len(chunk)
            partial.replace(target)
            return written
        async for chunk in self.iter_bytes(session_id, path, progress=progress):
            destination.write(chunk)
            written += len(chunk)
        return written

    async def iter_bytes(
        self, session_id: str, path: str, *, progress: Progress | None = None
    ) -> AsyncIterator[bytes]:
        resp = await self._t.send(_api.download(session_id, path), stream=True)
        if resp.status_code == 307:
            await resp.aclose()
            resp = await self._t.send(Call("GET", resp.headers["location"], idempotent=True), stream=True)
        total, done = total_from(resp.headers), 0
        try:
            async for chunk in resp.aiter_bytes(CHUNK):
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
                yield chunk
        finally:
            await resp.aclose()


class AsyncTemplates(_Resource):
    async def list(self, *, limit: int = 50, offset: int = 0) -> TemplateList:
        return TemplateList.model_validate(await self._json(_api.list_templates(limit, offset)))

    async def get(self, template_id: str) -> Template:
        return Template.model_validate(await self._json(_api.get_template(template_id)))

    async def create(
        self,
        id: str,
        *,
        name: str,
        image: str,
        default_resources: ResourceLimit | dict[str, Any],
        **fields: Any,
    ) -> Template:
        body = {"id": id, "name": name, "image": image, **fields}
        body["default_resources"] = _api.resources_body(default_resources)
        return Template.model_validate(await self._json(_api.create_template(body)))

    async def update(self, template_id: str, **fields: Any) -> Template:
        if isinstance(fields.get("default_resources"), ResourceLimit):
            fields["default_resources"] = _api.resources_body(fields["default_resources"])
        return Template.model_validate(await self._json(_api.update_template(template_id, fields)))

    async def delete(self, template_id: str) -> None:
        await self._t.send(_api.delete_template(template_id))


class AsyncContainers(_Resource):
    async def list(
        self,
        *,
        status: str | None = None,
        runtime_type: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> ContainerList:
        call = _api.list_containers(status, runtime_type, limit, offset)
        return ContainerList.model_validate(await self._json(call))

    async def get(self, container_id: str) -> ContainerInfo:
        return ContainerInfo.model_validate(await self._json(_api.get_container(container_id)))

    async def logs(self, container_id: str, *, tail: int = 100, since: datetime | str | None = None) -> str:
        return (await self._t.send(_api.container_logs(container_id, tail, since))).text

    async def follow(
        self,
        container_id: str,
        *,
        tail: int = 100,
        poll_interval: float = 1.0,
        stop_when_ended: bool = True,
    ) -> AsyncIterator[str]:
        window = max(tail, 1000)
        previous: list[str] = []
        first = True
        while True:
            ended = stop_when_ended and (await self.get(container_id)).status not in ("creating", "running")
            current = (await self.logs(container_id, tail=window)).splitlines()
            fresh = _api.new_log_lines(previous, current)
            for line in fresh[-tail:] if first else fresh:
                yield line
            previous, first = current, False
            if ended:
                return
            await asyncio.sleep(poll_interval)


class AsyncKeys(_Resource):
    async def create(self, tenant: str, *, admin: bool = False) -> ApiKey:
        return ApiKey.model_validate(await self._json(_api.create_key(tenant, admin)))


class AsyncSandboxClient:
    """The asyncio twin of :class:`sandboxcp_client.SandboxClient` (same arguments; `http_client` is an
    `httpx.AsyncClient`)."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = ClientConfig.resolve(url, api_key, timeout=timeout, retry=retry, headers=headers)
        self._transport = AsyncTransport(self.config, http_client)
        self.sessions = AsyncSessions(self._transport)
        self.executions = AsyncExecutions(self._transport)
        self.files = AsyncFiles(self._transport)
        self.templates = AsyncTemplates(self._transport)
        self.containers = AsyncContainers(self._transport)
        self.keys = AsyncKeys(self._transport)

    async def health(self) -> dict[str, Any]:
        body: dict[str, Any] = (await self._transport.send(_api.health())).json()
        return body

    async def metrics(self) -> str:
        return (await self._transport.send(_api.metrics())).text

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncSandboxClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class AsyncSandboxFiles:
    def __init__(self, client: AsyncSandboxClient, session_id: str) -> None:
        self._client = client
        self._sid = session_id

    async def write(self, path: str, data: FileSource, *, progress: Progress | None = None) -> UploadedFile:
        return await self._client.files.upload(self._sid, path, data, progress=progress)

    async def read(self, path: str, *, progress: Progress | None = None) -> bytes:
        return await self._client.files.read(self._sid, path, progress=progress)

    async def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return (await self.read(path)).decode(encoding)

    async def download(
        self, path: str, destination: str | Path | IO[bytes], *, progress: Progress | None = None
    ) -> int:
        return await self._client.files.download(self._sid, path, destination, progress=progress)

    def iter_bytes(self, path: str, *, progress: Progress | None = None) -> AsyncIterator[bytes]:
        return self._client.files.iter_bytes(self._sid, path, progress=progress)

    async def list(self) -> list[WorkspaceFile]:
        return await self._client.files.list(self._sid)


class AsyncSandbox:
    """The asyncio twin of :class:`sandboxcp_client.Sandbox`: `async with await AsyncSandbox.create()`."""

    def __init__(self, client: AsyncSandboxClient, info: SessionInfo, *, owns_client: bool = False) -> None:
        self.client = client
        self.info = info
        self._owns_client = owns_client
        self.files = AsyncSandboxFiles(client, info.session_id)

    @classmethod
    async def create(
        cls,
        template: str = "python-basic",
        timeout: int | None = None,
        *,
        resources: ResourceLimit | dict[str, Any] | None = None,
        env_vars: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        wait: bool = True,
        launch_timeout: float = 90.0,
        url: str | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        client: AsyncSandboxClient | None = None,
    ) -> AsyncSandbox:
        own = client is None
        api = client or AsyncSandboxClient(url, api_key, retry=retry, headers=headers)
        try:
            info = await api.sessions.create(
                template,
                timeout=timeout,
                resources=resources,
                env_vars=env_vars,
                idempotency_key=idempotency_key,
            )
            sandbox = cls(api, info, owns_client=own)
            if wait:
                await sandbox.wait_until_running(timeout=launch_timeout)
            return sandbox
        except BaseException:
            if own:
                await api.aclose()
            raise

    @classmethod
    async def connect(
        cls,
        session_id: str,
        *,
        url: str | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        client: AsyncSandboxClient | None = None,
    ) -> AsyncSandbox:
        own = client is None
        api = client or AsyncSandboxClient(url, api_key, retry=retry)
        try:
            return cls(api, await api.sessions.get(session_id), owns_client=own)
        except BaseException:
            if own:
                await api.aclose()
            raise

    @property
    def id(self) -> str:
        return self.info.session_id

    session_id = id

    @property
    def status(self) -> str:
        return self.info.status

    async def refresh(self) -> SessionInfo:
        self.info = await self.client.sessions.get(self.id)
        return self.info

    async def wait_until_running(self, *, timeout: float = 90.0) -> SessionInfo:
        self.info = await self.client.sessions.wait_until_running(self.id, timeout=timeout)
        if self.info.status != "running":
            raise SandboxLaunchError(self.info)
        return self.info

    async def terminate(self) -> None:
        with contextlib.suppress(SessionNotFoundError):
            await self.client.sessions.terminate(self.id)
        with contextlib.suppress(Exception):
            await self.refresh()

    kill = terminate

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncSandbox:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.terminate()
        finally:
            await self.aclose()

    async def run_code(
        self,
        code: str,
        *,
        language: Language = "python",
        event: dict[str, Any] | None = None,
        timeout: int | None = None,
        wait_timeout: float | None = None,
    ) -> ExecutionResult:
        """See :meth:`sandboxcp_client.Sandbox.run_code`."""
        return await self.client.executions.run(
            self.id, code, language=language, event=event, timeout=timeout, wait_timeout=wait_timeout
        )

    async def submit(
        self,
        code: str,
        *,
        language: Language = "python",
        event: dict[str, Any] | None = None,
        timeout: int | None = None,
    ) -> SubmittedExecution:
        return await self.client.executions.submit(
            self.id, code, language=language, event=event, timeout=timeout
        )

    async def wait(self, execution_id: str, *, timeout: float | None = None) -> ExecutionResult:
        return await self.client.executions.wait(execution_id, timeout=timeout)

    async def executions(self, *, status: str | None = None, limit: int = 50) -> ExecutionList:
        return await self.client.executions.list(self.id, status=status, limit=limit)

    async def container(self) -> ContainerInfo:
        return await self.client.containers.get(self.id)

    async def logs(self, *, tail: int = 100, since: datetime | str | None = None) -> str:
        return await self.client.containers.logs(self.id, tail=tail, since=since)

    def __repr__(self) -> str:
        return f"AsyncSandbox({self.id!r}, status={self.status!r}, template={self.info.template_id!r})"
