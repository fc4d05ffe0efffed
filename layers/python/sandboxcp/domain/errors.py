"""Domain errors. Each carries the contract's error body fields; the API layer maps them to HTTP
in one place (sandboxcp.api.resolver)."""

from __future__ import annotations


class SandboxError(Exception):
    """Base of every error that reaches a client with the contract's error body."""

    status_code = 500
    error_code = "Sandbox.InternalError"
    description = "Internal server error"
    solution = "Please retry later; if it persists, contact support with the request_id"

    def __init__(self, detail: str, *, solution: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if solution is not None:
            self.solution = solution


class InvalidParameter(SandboxError):
    status_code = 400
    error_code = "Sandbox.InvalidParameter"
    description = "Invalid parameter"
    solution = "Please check your request parameters against the API contract"


class PayloadTooLarge(InvalidParameter):
    status_code = 413


class Unauthorized(SandboxError):
    status_code = 401
    error_code = "Sandbox.Unauthorized"
    description = "Authentication failed"
    solution = "Send 'Authorization: Bearer <api key>' with a valid key"


class Forbidden(SandboxError):
    status_code = 403
    error_code = "Sandbox.Forbidden"
    description = "Access denied"
    solution = "Use credentials that own this resource"


class SessionNotFound(SandboxError):
    status_code = 404
    error_code = "Sandbox.SessionNotFound"
    description = "Session not found"
    solution = "Please check the session_id; list your sessions with GET /api/v1/sessions"


class ExecutionNotFound(SandboxError):
    status_code = 404
    error_code = "Sandbox.ExecutionNotFound"
    description = "Execution not found"
    solution = "Please check the execution_id; list executions with GET /api/v1/sessions/{id}/executions"


class TemplateNotFound(SandboxError):
    status_code = 404
    error_code = "Sandbox.TemplateNotFound"
    description = "Template not found"
    solution = "List the available templates with GET /api/v1/templates"


class ContextNotFound(SandboxError):
    status_code = 404
    error_code = "Sandbox.ContextNotFound"
    description = "Code context not found"
    solution = "Check the context_id; list the session's contexts with GET /api/v1/sessions/{id}/contexts"


class ProcessNotFound(SandboxError):
    status_code = 404
    error_code = "Sandbox.ProcessNotFound"
    description = "Process not found"
    solution = "Check the process_id; list a session's processes with GET /api/v1/sessions/{id}/processes"


class StateConflict(SandboxError):
    status_code = 409
    error_code = "Sandbox.StateConflict"
    description = "State conflict"
    solution = "Read the resource again; its state changed or does not allow this operation"


class ContextUnavailable(StateConflict):
    """A cell's code context is not live in its session in the cell's language (the write that records
    the execution checks it; the service then says which)."""

    solution = "Read the context (GET /api/v1/sessions/{id}/contexts/{context_id}); restart or create one"


class SessionChanged(StateConflict):
    """The session is no longer as the caller read it (another executor address or token, another
    workspace revision): a write conditioned on that read refused it. The service reads it again."""

    solution = "Retry the request"


class TooManyRequests(SandboxError):
    status_code = 429
    error_code = "Sandbox.TooManyRequestsExection"
    description = "Too many requests"
    solution = "Please retry later"


class SessionLimitReached(TooManyRequests):
    """429 with `Retry-After` (the resolver adds it from `retry_after`): a per-session limit such as code
    contexts or background processes is reached."""

    def __init__(self, detail: str, *, retry_after: int, solution: str | None = None) -> None:
        super().__init__(detail, solution=solution)
        self.retry_after = retry_after


class SandboxUnavailable(SandboxError):
    status_code = 503
    error_code = "Sandbox.TooManyRequestsExection"
    description = "No available sandbox"
    solution = "Please retry later"


class ExecTimeout(SandboxError):
    status_code = 504
    error_code = "Sandbox.ExecTimeout"
    description = "Execution timed out"
    solution = "Raise the execution timeout (1-3600 s) or make the code faster"
