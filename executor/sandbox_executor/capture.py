"""Bounded output capture: keep the first ``limit`` bytes, count (but drop) the rest."""

from __future__ import annotations


class BoundedBuffer:
    """Keeps at most ``limit`` bytes, so a chatty child can never exhaust executor memory.

    The caller keeps reading past the limit (and feeding here) so the child never blocks on a
    full pipe; only the storage is bounded.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self.truncated = False
        self._data = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - len(self._data)
        if room > 0:
            self._data += chunk[:room]
        if len(chunk) > room:
            self.truncated = True

    def data(self) -> bytes:
        return bytes(self._data)

    def text(self) -> str:
        # A cut in the middle of a multi-byte character becomes one U+FFFD, never an error.
        return self._data.decode("utf-8", errors="replace")
