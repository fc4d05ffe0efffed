"""Python SDK of the Sandbox Control Plane.

```python
from sandboxcp_client import Sandbox

with Sandbox.create(template="python-basic", timeout=600) as sbx:   # terminated on exit
    r = sbx.run_code("sum(range(10))")
    sbx.files.write("data.csv", b"a,b\\n1,2\\n")
```

- :class:`Sandbox` / :class:`AsyncSandbox`: one session as an object;
- :class:`SandboxClient` / :class:`AsyncSandboxClient`: every endpoint, grouped by resource;
- :mod:`sandboxcp_client.errors`: one exception per error code, with `description`, `solution` and
  `request_id`;
- :class:`RetryPolicy`: retries on 429/503 and connection errors, only where repeating is harmless.

Configuration: `SANDBOXCP_URL` (default http://127.0.0.1:8000) and `SANDBOXCP_API_KEY`, or arguments.
"""

from __future__ import annotations

__version__ = "0.1.0"

from sandboxcp_client.aio import AsyncSandbox, AsyncSandboxClient
from sandboxcp_client.client import SandboxClient
from sandboxcp_client.errors import (
    ApiError,
    ConflictError,
    ExecutionFailedError,
    ExecutionNotFoundError,
    ForbiddenError,
    IdempotencyKeyReusedError,
    InvalidParameterError,
    NotFoundError,
    SandboxConnectionError,
    SandboxError,
    SandboxLaunchError,
    SandboxTimeoutError,
    ServiceUnavailableError,
    SessionNotFoundError,
    TemplateNotFoundError,
    TooManyRequestsError,
    UnauthorizedError,
    WorkspaceFileNotFoundError,
)
from sandboxcp_client.models import ExecutionResult, ImageOutput, SessionInfo
from sandboxcp_client.retry import RetryPolicy
from sandboxcp_client.sandbox import Sandbox

__all__ = [
    "ApiError",
    "AsyncSandbox",
    "AsyncSandboxClient",
    "ConflictError",
    "ExecutionFailedError",
    "ExecutionNotFoundError",
    "ExecutionResult",
    "ForbiddenError",
    "IdempotencyKeyReusedError",
    "ImageOutput",
    "InvalidParameterError",
    "NotFoundError",
    "RetryPolicy",
    "Sandbox",
    "SandboxClient",
    "SandboxConnectionError",
    "SandboxError",
    "SandboxLaunchError",
    "SandboxTimeoutError",
    "ServiceUnavailableError",
    "SessionInfo",
    "SessionNotFoundError",
    "TemplateNotFoundError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "WorkspaceFileNotFoundError",
    "__version__",
]
