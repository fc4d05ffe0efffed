"""What the control plane and the executor must agree on: one module, imported by both sides.

The executor imports it like any of its modules. The control plane (``sandboxcp``) imports it as
``sandbox_executor.contract``: the package is installed with the project, and the Lambda code layer ships
this module (and the package's side-effect-free ``__init__``) next to ``sandboxcp``
(infra/sandboxcp_infra/layers.py). So it must stay standard library only and import nothing else from
``sandbox_executor``. tests/unit/test_contract_constants.py checks that the modules that keep their own
copies of these values (the runtimes, the executor's config, bind and workspace code) still agree.

Sizes are bytes of UTF-8 unless said otherwise; docs/api.md's "Limits" table lists them for clients.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

TYPE_CHECKING = False  # not typing's: an idle agent does not import typing (docs/capacity.md)
if TYPE_CHECKING:
    from typing import Any

# -- the sandbox ------------------------------------------------------------------------------------------
SANDBOX_UID = 1000  # user code and the executor run as 1000:1000 on every runtime
SANDBOX_GID = 1000
EXECUTOR_PORT = 8080  # the executor's TCP port where it listens on TCP (ecs, eks, remote docker)
WORKSPACE_DIR = "/workspace"

# -- identifiers ------------------------------------------------------------------------------------------
SESSION_ID_PATTERN = r"^sess_[a-z0-9]{16}$"
EXECUTION_ID_PATTERN = r"^exec_[0-9]{8}_[a-z0-9]{8}$"

# -- executions -------------------------------------------------------------------------------------------
LANGUAGES = ("python", "javascript", "shell")
# The public contract's ExecuteRequest.code maxLength (102400), counted in UTF-8 bytes. The executor's own
# contract allows 1 MiB; it refuses more than this too, since the control plane never sends more.
MAX_CODE_BYTES = 100 * 1024
MIN_TIMEOUT_S, MAX_TIMEOUT_S, DEFAULT_TIMEOUT_S = 1, 3600, 30
# The event as compact JSON. An execution item holds the code, the event (stored with non-ASCII escaped:
# at most 3x this) and an inline outcome of at most 64 KiB, all within DynamoDB's 400 KB per item.
MAX_EVENT_BYTES = 64 * 1024
OUTPUT_LIMIT_BYTES = 1 << 20  # stdout and stderr kept per execution, each; the rest is cut (`*_truncated`)

# -- session environment variables ------------------------------------------------------------------------
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
RESERVED_ENV_PREFIXES = ("SANDBOXCP_", "AWS_")
MAX_ENV_VARS = 64
# Names and values together (as AWS Lambda counts them). Small on purpose: on ECS the variables travel in
# RunTask's container overrides, which AWS limits to 8,192 characters with everything else they hold.
MAX_ENV_BYTES = 4 * 1024

# -- workspace files --------------------------------------------------------------------------------------
# A file path relative to the workspace: not empty, at most this long, no leading '/', no backslash, no
# control character, no '.', '..' or empty segment once normalized.
MAX_PATH_BYTES = 1024
# Presigned GETs an executor asks for in one workspace-urls callback (internal-api): the files it lacks,
# in batches of this many (a batch's paths stay far below Lambda's 6 MB request payload).
MAX_PRESIGN_PATHS = 1000

# What an executor can do beyond the first release, announced in container_ready's `features` so that
# the control plane (deployed apart from the images) serves each executor what it understands.
# WORKSPACE_PRESIGN_ON_DEMAND: it takes a workspace listing without URLs and asks for the GETs it lacks.
WORKSPACE_PRESIGN_ON_DEMAND = "workspace-presign-on-demand"
EXECUTOR_FEATURES = (WORKSPACE_PRESIGN_ON_DEMAND,)
MAX_FEATURES = 16  # named in one container_ready, at most
MAX_FEATURE_CHARS = 64


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a plain relative workspace path, or None.

    The same rule for downloads and uploads (so that whatever an upload saves is downloadable), and for
    the paths an executor asks presigned GETs for.
    """
    import unicodedata  # on a sync's path only: an idle agent does not load it

    if not path:
        return "empty path"
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    if size > MAX_PATH_BYTES:
        return f"longer than {MAX_PATH_BYTES} bytes"
    if path.startswith("/"):
        return "absolute path"
    if any(unicodedata.category(ch) == "Cc" for ch in path):
        return "NUL or control characters in the name"
    if "\\" in path:
        return "backslash in the name"
    if any(segment in ("", ".", "..") for segment in path.split("/")):
        return "'..', '.' or empty path segments"
    return None


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (an unpaired surrogate counts as the 3 bytes it would take)."""
    return len(text.encode("utf-8", "surrogatepass"))


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON in UTF-8: how the event and other free-form objects are measured."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=True, default=str)
    return utf8_size(text)


def env_size(env: Mapping[str, str]) -> int:
    """The size counted against MAX_ENV_BYTES: every name and every value."""
    return sum(utf8_size(name) + utf8_size(value) for name, value in env.items())


def json_value_problem(value: Any, where: str = "") -> str | None:
    """Why ``value`` (parsed JSON) cannot be stored and passed on as JSON, or None: a number that is NaN,
    Infinity or out of range (``1e400`` parses as infinity), or a string that is not Unicode (an unpaired
    surrogate escape such as ``\\ud800``). Walked without recursion; ``where`` prefixes the path named."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return f"'{path or 'value'}' is {node!r}: JSON numbers must be finite"
        if isinstance(node, str):
            if _not_unicode(node):
                return f"'{path or 'value'}' is not valid Unicode (an unpaired surrogate)"
        elif isinstance(node, Mapping):
            for key, item in node.items():
                name = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and _not_unicode(key):
                    return f"a key in '{path or 'value'}' is not valid Unicode (an unpaired surrogate)"
                stack.append((item, name))
        elif isinstance(node, list | tuple):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node))
    return None


def _not_unicode(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
