"""`cache_once`: functools.cache for what must be built once per process.

functools.cache does not stop concurrent first calls from each running the function. A layer module is
shared by every copy of a function module the local stack loads for concurrent requests (threads of one
process, sandboxcp.local.functions), so what it builds once per process (a boto3 client, a powertools
idempotent wrapper) must not be built by each of a burst of first requests. Lambda sends one request at
a time to an instance, so there it makes no difference."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def cache_once(fn: Callable[P, T]) -> Callable[P, T]:
    """Cache `fn`'s result per positional arguments; concurrent first callers wait for the first."""
    results: dict[tuple[Hashable, ...], T] = {}
    lock = threading.Lock()

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        key = tuple(args)
        try:
            return results[key]
        except KeyError:
            pass
        with lock:
            if key not in results:
                results[key] = fn(*args, **kwargs)
            return results[key]

    return wrapper
