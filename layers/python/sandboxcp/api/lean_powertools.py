"""Two powertools packages, registered without running their `__init__`.

`aws_lambda_powertools/event_handler/__init__.py` imports every resolver powertools has, to re-export their
names: AppSync (with asyncio and ssl), AppSync events, Bedrock agents, VPC Lattice, function URLs...; and
`utilities/data_classes/__init__.py` every event class (Kinesis, S3 batch, Connect, CodePipeline, ...).
Python runs a package's `__init__` before any module of it, so importing the REST resolver alone paid for
all of them, on each HTTP function's cold start: the event handler's about 40 ms (median of 15:
executions_submit 346 -> 308 ms, beside `import boto3` at 215 ms; bench/cold_imports.py).

`lean_packages()` registers each package without running its `__init__`. A name the `__init__` exports is
imported from its own module on first use (read from the `__init__`'s import lines) and a submodule as
usual, so `from aws_lambda_powertools.event_handler import X` keeps working for every X, powertools' own
modules included.

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

PACKAGES = ("aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.data_classes")
_lock = threading.Lock()


def _exports(package: str, init_source: str) -> dict[str, str]:
    """Name -> the module it comes from, for each `from <package>.<module> import name` of the __init__
    (absolute or relative)."""
    exports: dict[str, str] = {}
    for node in ast.parse(init_source).body:
        if not isinstance(node, ast.ImportFrom) or node.module is None or node.level > 1:
            continue
        module = f"{package}.{node.module}" if node.level == 1 else node.module
        if module.startswith(package + "."):
            for alias in node.names:
                exports[alias.asname or alias.name] = module
    return exports


def _register(name: str) -> None:
    if name in sys.modules:
        return
    parent = importlib.import_module(name.rpartition(".")[0])
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.origin is None:
        return  # not a plain package on disk: let Python import it as usual
    with open(spec.origin, encoding="utf-8") as init:
        exports = _exports(name, init.read())
    package = importlib.util.module_from_spec(spec)

    def __getattr__(attr: str) -> Any:
        if attr in exports:
            value = getattr(importlib.import_module(exports[attr]), attr)
            setattr(package, attr, value)
            return value
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")  # submodules: imported

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    package.__all__ = list(exports)  # type: ignore[attr-defined]
    sys.modules[name] = package
    setattr(parent, name.rpartition(".")[2], package)  # as the import system does


def lean_packages() -> None:
    """Register each of PACKAGES without running its `__init__` (nothing to do for one imported already)."""
    with _lock:
        for name in PACKAGES:
            _register(name)
