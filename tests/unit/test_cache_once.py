"""sandboxcp.once.cache_once: concurrent first calls build once (functools.cache builds once per caller)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandboxcp.once import cache_once


def test_concurrent_first_calls_run_the_function_once_and_share_its_result() -> None:
    calls: list[str] = []
    start = threading.Barrier(16)

    @cache_once
    def build(name: str) -> object:
        calls.append(name)
        time.sleep(0.05)  # long enough for every other caller to arrive meanwhile
        return object()

    def first_call(_: int) -> object:
        start.wait()
        return build("table")

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(first_call, range(16)))
    assert calls == ["table"]
    assert all(r is results[0] for r in results)
    assert build("other") is not results[0] and calls == ["table", "other"]  # per arguments


def test_a_failed_build_is_not_cached() -> None:
    attempts = []

    @cache_once
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first time")
        return "built"

    with pytest.raises(RuntimeError):
        flaky()
    assert flaky() == "built" and len(attempts) == 2
