"""A long-lived thread that starts the children HTTP requests ask for (code contexts, background processes).

Every child asks for SIGKILL when the *thread* that forked it exits (PR_SET_PDEATHSIG, see linux.py),
so that user code never outlives its agent. Request handler threads end with their request: a child
started from one would be killed a moment later. This thread lives as long as the agent.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


class Spawner:
    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[[], object], Future[object]]] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="spawner", daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the spawner thread and return (or raise) what it did."""
        future: Future[object] = Future()
        self._queue.put((fn, future))
        return future.result()  # type: ignore[return-value]

    def _loop(self) -> None:
        while True:
            fn, future = self._queue.get()
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)
