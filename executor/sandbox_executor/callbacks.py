"""Callbacks to the control plane (``{base}/internal/...``), with the retry policy of each.

Every request carries ``Authorization: Bearer <token>``; the token is never logged.
Retries happen on connection errors, 5xx and 429; any other status is final: 2xx is success,
4xx means the control plane refused (for a result, 409 means it is already stored).
"""

from __future__ import annotations

import enum
import json
import threading
import time
from collections.abc import Callable, Iterator

from sandbox_executor import __version__
from sandbox_executor.clock import utc_now_iso
from sandbox_executor.http_client import Endpoint, request
from sandbox_executor.logs import log
from sandbox_executor.records import Record

TYPE_CHECKING = False  # not typing's: an idle agent does not import typing (docs/capacity.md)
if TYPE_CHECKING:
    from typing import Any


class Outcome(enum.Enum):
    DELIVERED = "delivered"  # 2xx
    REJECTED = "rejected"  # a final non-2xx status (4xx other than 429, 3xx, ...)
    GAVE_UP = "gave_up"  # retry budget spent, or the executor is shutting down


class Delivery(Record):
    __slots__ = __match_args__ = ("outcome", "status", "body")
    outcome: Outcome
    status: int | None  # last HTTP status seen, None if the last try never got an answer
    body: bytes  # the answer's body, when delivered

    def __init__(self, outcome: Outcome, status: int | None = None, body: bytes = b"") -> None:
        self._init(outcome=outcome, status=status, body=body)


class Backoff(Record):
    """Exponential backoff: ``first_s``, doubling, capped at ``max_s``, within ``budget_s`` in total."""

    __slots__ = __match_args__ = ("first_s", "max_s", "budget_s")
    first_s: float
    max_s: float
    budget_s: float

    def __init__(self, first_s: float, max_s: float, budget_s: float) -> None:
        self._init(first_s=first_s, max_s=max_s, budget_s=budget_s)

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * 2, self.max_s)


# contract.EXECUTOR_FEATURES, copied: an idle agent does not import the contract module (docs/capacity.md;
# tests/unit/test_contract_constants.py checks that they agree).
FEATURES = ("workspace-presign-on-demand",)
# container_ready: the sandbox is useless until the control plane knows it is up, so try for a minute.
READY_BACKOFF = Backoff(first_s=0.2, max_s=5.0, budget_s=60.0)
# status=running is informative only (the result is what counts), so give up quietly after ~10 s.
STATUS_BACKOFF = Backoff(first_s=0.2, max_s=5.0, budget_s=10.0)
# the workspace listing a run needs before it starts: without it the run fails, so it waits longer than a
# status report would (a control plane under a burst answers late; 1,000 sessions on 2 cores did).
LISTING_BACKOFF = Backoff(first_s=0.2, max_s=5.0, budget_s=30.0)
# live output: one quick retry; the stream keeps what was not delivered for its next batch.
OUTPUT_BACKOFF = Backoff(first_s=0.1, max_s=0.5, budget_s=1.0)


def result_backoff(base_s: float) -> Backoff:
    """1, 2, 4, 8, 10, 10... seconds (scaled by ``base_s``) for up to 15 minutes, to ride out an outage."""
    return Backoff(first_s=base_s, max_s=10 * base_s, budget_s=15 * 60.0)


def _retryable(status: int) -> bool:
    return status >= 500 or status == 429


def _retry_after_s(headers: dict[str, str]) -> float | None:
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return None  # absent, or an HTTP date: fall back to our own backoff


# A workspace listing: up to 5,000 presigned GETs (the control plane's MAX_SYNCED_FILES).
LISTING_MAX_BYTES = 8 << 20


class CallbackClient:
    """Posts JSON to the control plane; ``stop`` (set on SIGTERM) cuts retry waits short.

    ``token`` is the token itself or a function returning it, read at each request (a warm-pool
    executor learns its token when it is bound, see identity.py).
    """

    def __init__(self, base_url: str, token: str | Callable[[], str], stop: threading.Event) -> None:
        self._endpoint = Endpoint.parse(base_url)
        self._token = token
        self._stop = stop

    def post(
        self,
        path: str,
        payload: dict[str, Any],
        *,
        backoff: Backoff | None,
        timeout: float,
        extra_headers: dict[str, str] | None = None,
        quiet: bool = False,
        max_response_bytes: int = 1 << 20,
    ) -> Delivery:
        """POST ``payload`` to ``/internal{path}``; retry per ``backoff`` (None: a single try).

        The body is encoded once so every retry sends exactly the same bytes. ``quiet`` drops the
        per-retry log lines (the final failure is still logged).
        """
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"User-Agent": f"sandbox-executor/{__version__}", **(extra_headers or {})}
        token = self._token() if callable(self._token) else self._token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url_path = "/internal" + path
        deadline = time.monotonic() + (backoff.budget_s if backoff else 0.0)
        delays = backoff.delays() if backoff else iter(())
        attempt = 0
        while True:
            attempt += 1
            status: int | None = None
            error = ""
            wait_hint: float | None = None
            try:
                resp = request(
                    self._endpoint,
                    "POST",
                    url_path,
                    body=body,
                    headers=headers,
                    timeout=timeout,
                    max_response_bytes=max_response_bytes,
                )
                status = resp.status
                if 200 <= status < 300:
                    return Delivery(Outcome.DELIVERED, status, resp.body)
                if not _retryable(status):
                    log("callback_rejected", path=url_path, status=status, attempt=attempt)
                    return Delivery(Outcome.REJECTED, status)
                wait_hint = _retry_after_s(resp.headers)
            except OSError as exc:
                error = type(exc).__name__
            delay = next(delays, None)
            remaining = deadline - time.monotonic()
            if delay is None or remaining <= 0 or self._stop.is_set():
                log("callback_failed", path=url_path, status=status, error=error or None, attempt=attempt)
                return Delivery(Outcome.GAVE_UP, status)
            if wait_hint is not None and backoff is not None:
                delay = min(max(delay, wait_hint), backoff.max_s)
            if not quiet:
                log(
                    "callback_retry",
                    path=url_path,
                    status=status,
                    error=error or None,
                    attempt=attempt,
                    retry_in_s=round(min(delay, remaining), 3),
                )
            if self._stop.wait(min(delay, remaining)):
                log("callback_abandoned", path=url_path, reason="shutdown", attempt=attempt)
                return Delivery(Outcome.GAVE_UP, status)

    # -- the callbacks of internal-api.yaml -------------------------------------------------------

    def container_ready(
        self, session_id: str, container_id: str | None, port: int | None, executor_url: str | None = None
    ) -> Delivery:
        """Any 2xx will do: a restarted agent re-announces a session that is already running."""
        payload: dict[str, Any] = {
            "container_id": container_id,
            "executor_port": port,
            "ready_at": utc_now_iso(),
            "features": list(FEATURES),
        }
        if executor_url:
            payload["executor_url"] = executor_url
        return self.post(
            f"/sessions/{session_id}/container_ready", payload, backoff=READY_BACKOFF, timeout=5.0
        )

    def container_exited(self, session_id: str, exit_code: int, reason: str) -> Delivery:
        payload = {"exit_code": exit_code, "exit_reason": reason, "exited_at": utc_now_iso()}
        return self.post(f"/sessions/{session_id}/container_exited", payload, backoff=None, timeout=2.0)

    def execution_running(self, execution_id: str, started_at: str) -> Delivery:
        payload = {"status": "running", "started_at": started_at}
        return self.post(
            f"/executions/{execution_id}/status", payload, backoff=STATUS_BACKOFF, timeout=5.0, quiet=True
        )

    def heartbeat(self, execution_id: str, timeout: float) -> Delivery:
        payload = {"timestamp": utc_now_iso()}
        return self.post(f"/executions/{execution_id}/heartbeat", payload, backoff=None, timeout=timeout)

    def execution_result(self, execution_id: str, report: dict[str, Any], base_s: float) -> Delivery:
        return self.post(
            f"/executions/{execution_id}/result",
            report,
            backoff=result_backoff(base_s),
            timeout=30.0,  # the body can be several MiB
            extra_headers={"Idempotency-Key": execution_id},
        )

    def workspace_listing(self, session_id: str) -> dict[str, Any] | None:
        """The workspace's current plan, its files listed without presigned GETs (internal-api:
        workspace-urls with ``urls: false``; ``presigned_gets`` fetches those of the files this agent
        lacks); None when it cannot be had."""
        return self._workspace_urls(session_id, {"urls": False})

    def presigned_gets(self, session_id: str, paths: list[str]) -> dict[str, str] | None:
        """A presigned GET for each of ``paths`` (internal-api: workspace-urls with ``paths``, at most
        MAX_PRESIGN_PATHS); None when they cannot be had."""
        answer = self._workspace_urls(session_id, {"paths": paths})
        urls = answer.get("urls") if answer is not None else None
        if not isinstance(urls, dict) or not all(
            isinstance(path, str) and isinstance(url, str) and url for path, url in urls.items()
        ):
            log("workspace_urls_unreadable", paths=len(paths))
            return None
        return urls

    def _workspace_urls(self, session_id: str, request: dict[str, Any]) -> dict[str, Any] | None:
        delivery = self.post(
            f"/sessions/{session_id}/workspace-urls",
            request,
            backoff=LISTING_BACKOFF,
            timeout=10.0,
            max_response_bytes=LISTING_MAX_BYTES,
        )
        if delivery.outcome is not Outcome.DELIVERED:
            return None
        try:
            answer = json.loads(delivery.body)
        except ValueError:  # cut at the response bound, or not JSON
            log("workspace_listing_unreadable", bytes=len(delivery.body))
            return None
        return answer if isinstance(answer, dict) else None

    def output(self, path: str, payload: dict[str, Any]) -> bool:
        """One batch of live output (streaming.py): True once the control plane has it or refused it
        for good, False to keep it and try again with the next batch. A short try: a live chunk that
        comes late is worth little, and the result carries the whole output anyway."""
        delivery = self.post(path, payload, backoff=OUTPUT_BACKOFF, timeout=2.0, quiet=True)
        return delivery.outcome is not Outcome.GAVE_UP
