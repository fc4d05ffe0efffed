"""In-process Lambda functions: load a module from functions/ and invoke its handler as Lambda would."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from sandboxcp.local.access_guard import acting_as

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
    """Each function module is loaded once per instance. One instance handles one event at a time (the
    powertools resolver keeps the current event on the module's app); a call that finds every instance of
    its function busy (a long poll holds one for up to 20 s) loads another copy of the module, as Lambda
    scales out. The first instance is the module itself, so what tests patch on it applies."""

    def __init__(self, functions_dir: Path = FUNCTIONS_DIR) -> None:
        if str(functions_dir) not in sys.path:
            sys.path.insert(0, str(functions_dir))
        self._functions_dir = functions_dir
        self._idle: dict[str, list[ModuleType]] = {}
        self._count: dict[str, int] = {}
        self._guard = threading.Lock()

    def _acquire(self, module: str) -> ModuleType:
        with self._guard:
            idle = self._idle.setdefault(module, [])
            if idle:
                return idle.pop()
            n = self._count.get(module, 0)
            self._count[module] = n + 1
        if n == 0:
            return importlib.import_module(module)
        return self._load_copy(module, n)

    def _load_copy(self, module: str, n: int) -> ModuleType:
        name = f"{module}__instance{n}"
        spec = importlib.util.spec_from_file_location(name, self._functions_dir / f"{module}.py")
        assert spec is not None and spec.loader is not None
        copy = importlib.util.module_from_spec(spec)
        sys.modules[name] = copy
        spec.loader.exec_module(copy)
        return copy

    def invoke(self, module: str, event: dict[str, Any]) -> Any:
        instance = self._acquire(module)
        try:
            with acting_as(module):  # its grants, as its role would have them
                return instance.handler(event, LocalContext(function_name=module))
        finally:
            with self._guard:
                self._idle[module].append(instance)
