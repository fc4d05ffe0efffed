"""Configuration and the HTTP layer shared by the sync and async clients: one request description
(`Call`), one retry decision, and two thin senders over httpx."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from sandboxcp_client import __version__
from sandboxcp_client.errors import SandboxConnectionError, error_from_response
from sandboxcp_client.retry import NOT_SENT_ERRORS, RetryPolicy, is_retry_safe

log = logging.getLogger("sandboxcp_client")

DEFAULT_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"
URL_ENV = "SANDBOXCP_URL"
API_KEY_ENV = "SANDBOXCP_API_KEY"


@dataclass(frozen=True)
class ClientConfig:
    """Where the API is and how to call it. `url` is the stack's base URL (`/api/v1` is added)."""

    url: str = DEFAULT_URL
    api_key: str | None = None
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ClientConfig:
        """Arguments first, then `SANDBOXCP_URL` / `SANDBOXCP_API_KEY`, then the local default URL."""
        base = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        base = base.removesuffix(API_PREFIX)
        return cls(
            url=base,
            api_key=api_key or os.environ.get(API_KEY_ENV) or None,
            timeout=30.0 if timeout is None else timeout,
            retry=retry or RetryPolicy(),
            headers=dict(headers or {}),
        )

    @property
    def api_url(self) -> str:
        return self.url + API_PREFIX


ContentFactory = Callable[[], dict[str, Any]]


@dataclass
class Call:
    """One API request. `path` is relative to /api/v1, or an absolute URL (presigned S3 URLs: sent
    without the API key). `idempotent` overrides the method-based retry rule. `content` builds the body
    arguments (`files`, `data`, `content`) afresh for every attempt, so a retried upload starts over."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool | None = None
    timeout: float | httpx.Timeout | None = None
    content: ContentFactory | None = None
    ok_statuses: tuple[int, ...] = ()  # non-2xx answers that are not errors (e.g. 307)


def _build(http: httpx.Client | httpx.AsyncClient, config: ClientConfig, call: Call) -> httpx.Request:
    absolute = call.path.startswith(("http://", "https://"))
    url = call.path if absolute else config.api_url + call.path
    headers = {"User-Agent": f"sandboxcp-client/{__version__}", **config.headers, **call.headers}
    if not absolute and config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    # None, not {}: httpx replaces a URL's own query with `params` (a presigned URL's signature lives there).
    params = {k: v for k, v in (call.params or {}).items() if v is not None} or None
    body = call.content() if call.content else {}
    if call.json is not None:
        body["json"] = call.json
    timeout = call.timeout if call.timeout is not None else config.timeout
    return http.build_request(call.method, url, params=params, headers=headers, timeout=timeout, **body)


def _retry_after_error(config: ClientConfig, call: Call, attempt: int, err: httpx.TransportError) -> float:
    """Seconds to wait before retrying after a transport error; raises when no retry is allowed."""
    not_sent = isinstance(err, NOT_SENT_ERRORS)
    safe = not_sent or is_retry_safe(call.method, call.headers, call.idempotent)
    if safe and attempt < config.retry.max_retries:
        delay = config.retry.backoff(attempt)
        log.info("retrying %s %s after %s (%.2fs)", call.method, call.path, type(err).__name__, delay)
        return delay
    raise SandboxConnectionError(
        f"{call.method} {call.path}: {type(err).__name__}: {err or 'connection failed'}"
    ) from err


def _retry_after_response(
    config: ClientConfig, call: Call, attempt: int, resp: httpx.Response
) -> float | None:
    """Seconds to wait before retrying this answer, or None to hand it back (or raise it)."""
    if not config.retry.may_retry_status(resp.status_code) or attempt >= config.retry.max_retries:
        return None
    if not is_retry_safe(call.method, call.headers, call.idempotent):
        return None
    delay = config.retry.delay_for(attempt, resp)
    if delay is not None:
        log.info("retrying %s %s after HTTP %s (%.2fs)", call.method, call.path, resp.status_code, delay)
    return delay


def _is_error(call: Call, resp: httpx.Response) -> bool:
    return resp.status_code >= 300 and resp.status_code not in call.ok_statuses


class SyncTransport:
    """Sends `Call`s with retries; raises the typed error of an error answer."""

    def __init__(self, config: ClientConfig, http: httpx.Client | None = None) -> None:
        self.config = config
        self._owned = http is None
        self.http = http or httpx.Client(timeout=config.timeout)

    def send(self, call: Call, *, stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            request = _build(self.http, self.config, call)
            try:
                resp = self.http.send(request, stream=stream, follow_redirects=False)
            except httpx.TransportError as err:
                time.sleep(_retry_after_error(self.config, call, attempt, err))
                attempt += 1
                continue
            delay = _retry_after_response(self.config, call, attempt, resp)
            if delay is not None:
                resp.close()
                time.sleep(delay)
                attempt += 1
                continue
            if _is_error(call, resp):
                if stream:
                    resp.read()
                    resp.close()
                raise error_from_response(resp)
            return resp

    def close(self) -> None:
        if self._owned:
            self.http.close()


class AsyncTransport:
    """The async twin of :class:`SyncTransport`."""

    def __init__(self, config: ClientConfig, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._owned = http is None
        self.http = http or httpx.AsyncClient(timeout=config.timeout)

    async def send(self, call: Call, *, stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            request = _build(self.http, self.config, call)
            try:
                resp = await self.http.send(request, stream=stream, follow_redirects=False)
            except httpx.TransportError as err:
                await asyncio.sleep(_retry_after_error(self.config, call, attempt, err))
                attempt += 1
                continue
            delay = _retry_after_response(self.config, call, attempt, resp)
            if delay is not None:
                await resp.aclose()
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if _is_error(call, resp):
                if stream:
                    await resp.aread()
                    await resp.aclose()
                raise error_from_response(resp)
            return resp

    async def aclose(self) -> None:
        if self._owned:
            await self.http.aclose()
