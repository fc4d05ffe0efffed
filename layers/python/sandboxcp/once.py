"""`cache_once`: functools.cache for what must be built once per process.

functools.cache does not stop concurrent first calls from each running the function: in the local stack,
where every function serves requests on threads of one process, a burst of first requests then builds one
powertools persistence layer (a new boto3 Session and client, tens of milliseconds of CPU each) per
request. Lambda sends one request at a time to an instance, so there it makes no difference."""

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
