"""`Sandbox`: one session as an object, terminated when its `with` block ends.

```python
from sandboxcp_client import Sandbox

with Sandbox.create(template="python-datascience", timeout=600) as sbx:
    r = sbx.run_code("import pandas as pd; pd.__version__")
    sbx.files.write("data.csv", b"a,b\\n1,2\\n")
```

Each `run_code` is a fresh process in the same sandbox: files in /workspace persist between runs,
variables do not. Stateful contexts, live output and background processes are not part of this API yet;
they will be added as new methods beside these (the request/transport layers already separate what a
call sends from how it is sent), never by changing what these return.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from sandboxcp_client._files import FileSource, Progress
from sandboxcp_client.client import SandboxClient
from sandboxcp_client.errors import SandboxLaunchError, SessionNotFoundError
from sandboxcp_client.models import (
    ContainerInfo,
    ExecutionList,
    ExecutionResult,
    Language,
    ResourceLimit,
    SessionInfo,
    SubmittedExecution,
    UploadedFile,
    WorkspaceFile,
)
from sandboxcp_client.retry import RetryPolicy

__all__ = ["Sandbox", "SandboxFiles"]


class SandboxFiles:
    """The sandbox's workspace, `/workspace` inside it; paths are relative to it."""

    def __init__(self, client: SandboxClient, session_id: str) -> None:
        self._client = client
        self._sid = session_id

    def write(self, path: str, data: FileSource, *, progress: Progress | None = None) -> UploadedFile:
        """Write bytes, text (UTF-8), a local file (`pathlib.Path`) or a binary file object to `path`.
        Up to 4 MB through the API, up to 100 MB through a presigned upload; streamed either way."""
        return self._client.files.upload(self._sid, path, data, progress=progress)

    def read(self, path: str, *, progress: Progress | None = None) -> bytes:
        return self._client.files.read(self._sid, path, progress=progress)

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read(path).decode(encoding)

    def download(
        self, path: str, destination: str | Path | IO[bytes], *, progress: Progress | None = None
    ) -> int:
        """Stream `path` to a local file; returns the bytes written."""
        return self._client.files.download(self._sid, path, destination, progress=progress)

    def iter_bytes(self, path: str, *, progress: Progress | None = None) -> Iterator[bytes]:
        return self._client.files.iter_bytes(self._sid, path, progress=progress)

    def list(self) -> list[WorkspaceFile]:
        return self._client.files.list(self._sid)


class Sandbox:
    """A sandbox session. Make one with :meth:`create` (waits until it runs) or :meth:`connect`."""

    def __init__(self, client: SandboxClient, info: SessionInfo, *, owns_client: bool = False) -> None:
        self.client = client
        self.info = info
        self._owns_client = owns_client
        self.files = SandboxFiles(client, info.session_id)

    # -- lifecycle ------------------------------------------------------------------------------------------
    @classmethod
    def create(
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
        client: SandboxClient | None = None,
    ) -> Sandbox:
        """Create a session from `template` with a lifetime of `timeout` seconds and (unless `wait=False`)
        wait until its sandbox runs. A sandbox that fails to start raises :class:`SandboxLaunchError`."""
        own = client is None
        api = client or SandboxClient(url, api_key, retry=retry, headers=headers)
        try:
            info = api.sessions.create(
                template,
                timeout=timeout,
                resources=resources,
                env_vars=env_vars,
                idempotency_key=idempotency_key,
            )
            sandbox = cls(api, info, owns_client=own)
            if wait:
                sandbox.wait_until_running(timeout=launch_timeout)
            return sandbox
        except BaseException:
            if own:
                api.close()
            raise

    @classmethod
    def connect(
        cls,
        session_id: str,
        *,
        url: str | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        client: SandboxClient | None = None,
    ) -> Sandbox:
        """Attach to an existing session (e.g. one made by another process)."""
        own = client is None
        api = client or SandboxClient(url, api_key, retry=retry)
        try:
            return cls(api, api.sessions.get(session_id), owns_client=own)
        except BaseException:
            if own:
                api.close()
            raise

    @property
    def id(self) -> str:
        return self.info.session_id

    session_id = id

    @property
    def status(self) -> str:
        """The status as last read; :meth:`refresh` reads it again."""
        return self.info.status

    def refresh(self) -> SessionInfo:
        self.info = self.client.sessions.get(self.id)
        return self.info

    def wait_until_running(self, *, timeout: float = 90.0) -> SessionInfo:
        self.info = self.client.sessions.wait_until_running(self.id, timeout=timeout)
        if self.info.status != "running":
            raise SandboxLaunchError(self.info)
        return self.info

    def terminate(self) -> None:
        """Destroy the sandbox (files are kept 24 h). Terminating an ended session is harmless."""
        with contextlib.suppress(SessionNotFoundError):
            self.client.sessions.terminate(self.id)
        with contextlib.suppress(Exception):
            self.refresh()

    kill = terminate

    def close(self) -> None:
        """Close the HTTP client if this sandbox made it (the session keeps running)."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.terminate()
        finally:
            self.close()

    # -- code ------------------------------------------------------------------------------------------------
    def run_code(
        self,
        code: str,
        *,
        language: Language = "python",
        event: dict[str, Any] | None = None,
        timeout: int | None = None,
        wait_timeout: float | None = None,
    ) -> ExecutionResult:
        """Run code and return its result (it does not raise when the code fails: check `.ok`, or call
        `.raise_for_error()`).

        - Python without a `handler` and without `event` runs as a script: `stdout`/`stderr` as printed,
          `result` the value of a last expression, `images` the matplotlib figures left open;
        - Python defining `handler(event)`, or any code given an `event`, runs handler-style:
          `return_value` is what the handler returned;
        - JavaScript and shell run as they are (JavaScript exporting a handler is called with `event`).

        `timeout` is the run's limit in the sandbox (1-3600 s, default 30)."""
        return self.client.executions.run(
            self.id, code, language=language, event=event, timeout=timeout, wait_timeout=wait_timeout
        )

    def submit(
        self,
        code: str,
        *,
        language: Language = "python",
        event: dict[str, Any] | None = None,
        timeout: int | None = None,
    ) -> SubmittedExecution:
        """Submit without waiting (for long jobs); then :meth:`wait` or poll `client.executions.status`."""
        return self.client.executions.submit(self.id, code, language=language, event=event, timeout=timeout)

    def wait(self, execution_id: str, *, timeout: float | None = None) -> ExecutionResult:
        return self.client.executions.wait(execution_id, timeout=timeout)

    def executions(self, *, status: str | None = None, limit: int = 50) -> ExecutionList:
        return self.client.executions.list(self.id, status=status, limit=limit)

    # -- operations ----------------------------------------------------------------------------------------
    def container(self) -> ContainerInfo:
        return self.client.containers.get(self.id)

    def logs(self, *, tail: int = 100, since: datetime | str | None = None) -> str:
        """The sandbox's log (executor lines and what the sandbox wrote to stdout/stderr)."""
        return self.client.containers.logs(self.id, tail=tail, since=since)

    def __repr__(self) -> str:
        return f"Sandbox({self.id!r}, status={self.status!r}, template={self.info.template_id!r})"
