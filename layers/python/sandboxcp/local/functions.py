"""In-process Lambda functions: load a module from functions/ and invoke its handler as Lambda would."""

from __future__ import annotations

import importlib
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FUNCTIONS_DIR = Path(__file__).resolve().parents[4] / "functions"


@dataclass
class LocalContext:
    """The attributes of Lambda's context object that powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class LocalFunctions:
    """Each function module is loaded once. Calls to one function are serialized, as one Lambda instance
    handles one event at a time (the powertools resolver keeps the current event on the module's app)."""

    def __init__(self, functions_dir: Path = FUNCTIONS_DIR) -> None:
        if str(functions_dir) not in sys.path:
            sys.path.insert(0, str(functions_dir))
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, module: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(module, threading.Lock())

    def invoke(self, module: str, event: dict[str, Any]) -> Any:
        with self._lock(module):
            handler = importlib.import_module(module).handler
            return handler(event, LocalContext(function_name=module))
