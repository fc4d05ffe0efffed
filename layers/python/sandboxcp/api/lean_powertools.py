"""powertools' event handler package, registered without running its `__init__`.

`aws_lambda_powertools/event_handler/__init__.py` imports every resolver powertools has to re-export their
names: AppSync (with asyncio and ssl), AppSync events, Bedrock agents, VPC Lattice, function URLs... Python
runs it before any module of the package, so importing the REST resolver alone paid for all of them: about
40 ms of each HTTP function's cold start (median of 15: executions_submit 346 -> 308 ms, beside
`import boto3` at 215 ms; bench/cold_imports.py). `lean_event_handler()` registers the package without
running its `__init__`. A name the `__init__` exports is imported from its own module on first use (read
from the `__init__`'s import lines) and a submodule as usual, so `from aws_lambda_powertools.event_handler
import X` keeps working for every X, powertools' own modules included.

`sandboxcp.api` calls it on import, so every HTTP function gets it by importing powertools' names through
`sandboxcp.api.params` (tests/unit/test_cold_imports.py checks that AppSync stays unloaded).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import threading
from typing import Any

PACKAGE = "aws_lambda_powertools.event_handler"
_lock = threading.Lock()


def _exports(init_source: str) -> dict[str, str]:
    """Name -> the module it comes from, for each `from <PACKAGE>.<module> import name` of the __init__."""
    exports: dict[str, str] = {}
    for node in ast.parse(init_source).body:
        if not isinstance(node, ast.ImportFrom) or node.level != 0 or node.module is None:
            continue
        if node.module.startswith(PACKAGE + "."):
            for alias in node.names:
                exports[alias.asname or alias.name] = node.module
    return exports


def lean_event_handler() -> None:
    """Register PACKAGE without running its `__init__` (nothing to do if it is imported already)."""
    with _lock:
        if PACKAGE in sys.modules:
            return
        import aws_lambda_powertools

        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or spec.loader is None or spec.origin is None:
            return  # not a plain package on disk: let Python import it as usual
        with open(spec.origin, encoding="utf-8") as init:
            exports = _exports(init.read())
        package = importlib.util.module_from_spec(spec)

        def __getattr__(name: str) -> Any:
            if name in exports:
                value = getattr(importlib.import_module(exports[name]), name)
                setattr(package, name, value)
                return value
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")  # submodules: imported

        package.__getattr__ = __getattr__  # type: ignore[method-assign]
        package.__all__ = list(exports)  # type: ignore[attr-defined]
        sys.modules[PACKAGE] = package
        aws_lambda_powertools.event_handler = package  # type: ignore[attr-defined]  # as the import system does
