"""The executor's HTTP API (reference/executor-api.yaml) over httpx: TCP for containers, a unix socket
for the process runtime (`unix:///path/executor.sock`)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Mapping
from typing import Any

import httpx

from sandboxcp.domain.errors import SandboxUnavailable, TooManyRequests
from sandboxcp.domain.models import Execution

_TIMEOUT = httpx.Timeout(5.0, connect=2.0)


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
        transport = httpx.HTTPTransport(uds=path)
        return httpx.Client(transport=transport, timeout=_TIMEOUT), "http://sandbox"
    return httpx.Client(timeout=_TIMEOUT), executor_url.rstrip("/")


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
        while True:
            try:
                client, base = _client_for(executor_url)
                with client:
                    resp = client.post(f"{base}/bind", json=body)
                break
            except (httpx.HTTPError, SandboxUnavailable) as err:
                # Not listening yet (a cold sandbox still booting): connection refused or reset, or
                # its socket not made yet. The bind itself is never half-applied, so retrying is safe.
                if time.monotonic() >= deadline:
                    raise SandboxUnavailable(f"The executor is unreachable: {type(err).__name__}") from err
                time.sleep(0.02)
        if resp.status_code != 200:
            raise SandboxUnavailable(f"The executor refused the binding (HTTP {resp.status_code})")

    def submit(
        self,
        executor_url: str,
        execution: Execution,
        workspace: Mapping[str, Any] | None = None,
        *,
        executor_key: str = "",
    ) -> None:
        client, base = _client_for(executor_url)
        payload = {
            "execution_id": execution.execution_id,
            "code": execution.code,
            "language": execution.language,
            "timeout": execution.timeout,
            "event": execution.event,
            "workspace": dict(workspace) if workspace is not None else None,
        }
        try:
            with client:
                resp = client.post(
                    f"{base}/execute", json=payload, headers={"Authorization": f"Bearer {executor_key}"}
                )
        except httpx.HTTPError as err:
            raise SandboxUnavailable(f"The session's executor is unreachable: {type(err).__name__}") from err
        if resp.status_code == 503:
            raise TooManyRequests("The session's executor queue is full")
        if resp.status_code >= 300:
            raise SandboxUnavailable(
                f"The session's executor refused the execution (HTTP {resp.status_code})"
            )
