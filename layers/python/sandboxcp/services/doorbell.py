"""The long polls' doorbell: one per process, keyed by what is waited on (an output stream's id, a session's
id). Ringing is an optimisation, never needed for correctness: a waiter also looks again every pause."""

from __future__ import annotations

import threading


class Doorbell:
    """Wakes readers waiting in this process as soon as a writer in this process changed what they wait on
    (a chunk stored, a stream ended, a session left `creating`): the local stack runs every function in one
    process. Elsewhere (a Lambda per function) nobody rings, and readers look again after their pause."""

    MAX_STREAMS = 10_000

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._rings: dict[str, int] = {}

    def rings(self, stream_id: str) -> int:
        with self._changed:
            return self._rings.get(stream_id, 0)

    def ring(self, stream_id: str) -> None:
        with self._changed:
            if len(self._rings) >= self.MAX_STREAMS:
                self._rings.clear()
            self._rings[stream_id] = self._rings.get(stream_id, 0) + 1
            self._changed.notify_all()

    def wait(self, stream_id: str, seen: int, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._rings.get(stream_id, 0) != seen, timeout)


doorbell = Doorbell()
