"""One line per event on stderr, as ``<time> sandbox-executor <event> key=value ...``.

Callers pass only identifiers, states and numbers: never the callback token and never user code,
since executor logs end up in places (container logs, CloudWatch) that are readable more widely.
"""

from __future__ import annotations

import json
import sys
import threading

from sandbox_executor.clock import utc_now_iso

_lock = threading.Lock()  # keeps lines from concurrent threads from interleaving


def _fmt(value: object) -> str:
    text = str(value)
    if text == "" or any(ch.isspace() or ch in '"=' for ch in text):
        return json.dumps(text)
    return text


def log(event: str, **fields: object) -> None:
    parts = [utc_now_iso(), "sandbox-executor", event]
    parts.extend(f"{key}={_fmt(value)}" for key, value in fields.items() if value is not None)
    line = " ".join(parts) + "\n"
    with _lock:
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must never take the executor down
