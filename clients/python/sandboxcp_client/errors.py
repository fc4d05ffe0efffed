"""Typed exceptions. Every error the API answers carries the contract's body (`error_code`, `description`,
`error_detail`, `solution`, `request_id`); each error code has its own exception class, all under
:class:`SandboxError`."""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = [
    "ApiError",
    "ConflictError",
    "ContainerNotFoundError",
    "ExecutionFailedError",
    "ExecutionNotFoundError",
    "ForbiddenError",
    "IdempotencyKeyReusedError",
    "InternalServerError",
    "InvalidParameterError",
    "NotFoundError",
    "PayloadTooLargeError",
    "QuotaExceededError",
    "SandboxConnectionError",
    "SandboxError",
    "SandboxLaunchError",
    "SandboxTimeoutError",
    "ServiceUnavailableError",
    "SessionNotFoundError",
    "TemplateNotFoundError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "WorkspaceFileNotFoundError",
    "error_from_response",
]


class SandboxError(Exception):
    """Base of every exception this SDK raises."""


class ApiError(SandboxError):
    """The API answered an error (4xx/5xx).

    Attributes mirror the contract's error body; `status_code` is the HTTP status and `body` the parsed
    body (a dict when it was JSON)."""

    def __init__(
        self,
        status_code: int,
        error_code: str,
        description: str,
        detail: str,
        solution: str = "",
        request_id: str = "",
        body: Any = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        self.status_code = status_code
        self.error_code = error_code
        self.description = description
        self.detail = detail
        self.solution = solution
        self.request_id = request_id
        self.body = body
        self.headers = headers or httpx.Headers()
        super().__init__(self._message())

    @property
    def error_detail(self) -> str:
        """The contract's name for `detail`."""
        return self.detail

    def _message(self) -> str:
        text = f"{self.status_code} {self.error_code}: {self.detail or self.description}"
        if self.request_id:
            text += f" (request_id {self.request_id})"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (
                self.status_code,
                self.error_code,
                self.description,
                self.detail,
                self.solution,
                self.request_id,
                self.body,
            ),
        )


class InvalidParameterError(ApiError):
    """400 `Sandbox.InvalidParameter`: the request does not match the contract or its limits."""


class PayloadTooLargeError(InvalidParameterError):
    """413: the request body is over the API's 10 MB (upload large files with the presigned path)."""


class UnauthorizedError(ApiError):
    """401 `Sandbox.Unauthorized`: no API key, or an unknown one."""


class ForbiddenError(ApiError):
    """403 `Sandbox.Forbidden`: the key may not do this (e.g. template writes need an admin key)."""


class NotFoundError(ApiError):
    """404: base of the not-found errors."""


class SessionNotFoundError(NotFoundError):
    """404 `Sandbox.SessionNotFound` (another tenant's session looks exactly like a missing one)."""


class ExecutionNotFoundError(NotFoundError):
    """404 `Sandbox.ExecutionNotFound`."""


class TemplateNotFoundError(NotFoundError):
    """404 `Sandbox.TemplateNotFound`."""


class ContainerNotFoundError(NotFoundError):
    """404 `Sandbox.ContainerNotFound`."""


class WorkspaceFileNotFoundError(NotFoundError):
    """404 `Sandbox.FileNotFound`: no such file in the session's workspace."""


class ConflictError(ApiError):
    """409 `Sandbox.StateConflict`: the resource's state does not allow this (yet)."""


class IdempotencyKeyReusedError(ApiError):
    """422 `Sandbox.IdempotencyKeyReused`: the Idempotency-Key was used with another request body."""


class QuotaExceededError(ApiError):
    """`Sandbox.QuotaExceeded`: the workspace would grow past the session's disk."""


class TooManyRequestsError(ApiError):
    """429 `Sandbox.TooManyRequestsExection`: e.g. 32 executions already pending on the session."""


class ServiceUnavailableError(ApiError):
    """503: no sandbox available or the launch could not start; retried automatically where safe."""


class InternalServerError(ApiError):
    """500 `Sandbox.InternalError`: quote `request_id` when reporting it."""


class SandboxConnectionError(SandboxError):
    """The API could not be reached (after the retries the policy allows)."""


class SandboxTimeoutError(SandboxError):
    """A client-side wait ended before the awaited state (session running, execution finished)."""


class SandboxLaunchError(SandboxError):
    """The session's sandbox did not start (the session ended `failed`); `session` holds its last state."""

    def __init__(self, session: Any) -> None:
        self.session = session
        reason = getattr(session, "error_message", None) or getattr(session, "status", "?")
        super().__init__(f"session {getattr(session, 'session_id', '?')} did not start: {reason}")


class ExecutionFailedError(SandboxError):
    """Raised by `ExecutionResult.raise_for_error()` when the code failed, timed out or crashed."""

    def __init__(self, result: Any) -> None:
        self.result = result
        stderr = (getattr(result, "stderr", "") or "").strip().splitlines()
        last = stderr[-1] if stderr else ""
        super().__init__(
            f"execution {getattr(result, 'execution_id', '?')} {getattr(result, 'status', '?')}"
            + (f": {last}" if last else "")
        )


_BY_CODE: dict[str, type[ApiError]] = {
    "Sandbox.InvalidParameter": InvalidParameterError,
    "Sandbox.Unauthorized": UnauthorizedError,
    "Sandbox.Forbidden": ForbiddenError,
    "Sandbox.SessionNotFound": SessionNotFoundError,
    "Sandbox.ExecutionNotFound": ExecutionNotFoundError,
    "Sandbox.TemplateNotFound": TemplateNotFoundError,
    "Sandbox.ContainerNotFound": ContainerNotFoundError,
    "Sandbox.FileNotFound": WorkspaceFileNotFoundError,
    "Sandbox.NotFound": NotFoundError,
    "Sandbox.StateConflict": ConflictError,
    "Sandbox.IdempotencyKeyReused": IdempotencyKeyReusedError,
    "Sandbox.QuotaExceeded": QuotaExceededError,
    "Sandbox.InternalError": InternalServerError,
}
_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidParameterError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: IdempotencyKeyReusedError,
    429: TooManyRequestsError,
    503: ServiceUnavailableError,
}


def _exception_class(status: int, code: str) -> type[ApiError]:
    # The contract's one code for "no capacity" is used by 429 and 503 alike: the status tells them apart.
    if status in (413, 429, 503):
        return _BY_STATUS[status]
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return InternalServerError if status >= 500 else ApiError


def error_from_response(response: httpx.Response) -> ApiError:
    """The typed exception for an error response (any body: the contract's JSON, or a gateway's text)."""
    body: Any = None
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        body = response.text
    fields = body if isinstance(body, dict) else {}
    code = str(fields.get("error_code") or f"HTTP.{response.status_code}")
    description = str(fields.get("description") or fields.get("message") or response.reason_phrase or "")
    detail = str(fields.get("error_detail") or (body if isinstance(body, str) else "") or description)
    request_id = str(
        fields.get("request_id")
        or response.headers.get("x-amzn-requestid")
        or response.headers.get("x-request-id")
        or ""
    )
    cls = _exception_class(response.status_code, code)
    return cls(
        response.status_code,
        code,
        description,
        detail,
        str(fields.get("solution") or ""),
        request_id,
        body,
        response.headers,
    )
