"""Live output: a run's stdout and stderr reach the control plane while it runs, not only in its result.

Chunks are numbered (``seq`` from 1, across both streams, in the order they were read) and batched: a
batch leaves after ``interval_s`` (100 ms) or once ``batch_bytes`` (16 KiB) are waiting, whichever comes
first. A sender thread posts them, so the pump that reads the child's pipes never waits for the network;
a control plane that is slow or down costs dropped live chunks (the result still carries the full
output), never a stalled child. Each stream is bounded like the result's output (1 MiB): past that, one
marker chunk says the rest was cut.

``close()`` flushes what is left and waits (bounded) for it to be delivered, so the control plane holds
every chunk before it learns the run ended.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Callable

from sandbox_executor.clock import utc_now_iso
from sandbox_executor.logs import log

TYPE_CHECKING = False  # not typing's: an idle agent does not import typing (docs/capacity.md)
if TYPE_CHECKING:
    from typing import Any

INTERVAL_S = 0.1
BATCH_BYTES = 16 * 1024
STREAM_LIMIT = 1 << 20  # bytes per stream, like the result's stdout/stderr
MAX_CHUNK_BYTES = 64 * 1024  # the control plane refuses bigger chunks
MAX_BATCH_CHUNKS = 256
CLOSE_WAIT_S = 10.0
TRUNCATED_NOTE = "\n[live output truncated: over 1 MiB on this stream; the result keeps the first 1 MiB]\n"

# post(chunks) -> True when delivered (or finally refused: nothing more to do), False to keep and retry.
Post = Callable[[list[dict[str, "Any"]]], bool]


class OutputStream:
    def __init__(
        self,
        post: Post,
        *,
        interval_s: float = INTERVAL_S,
        batch_bytes: int = BATCH_BYTES,
        stream_limit: int = STREAM_LIMIT,
    ) -> None:
        self._post = post
        self._interval_s = interval_s
        self._batch_bytes = batch_bytes
        self._limit = stream_limit
        self._cond = threading.Condition()
        self._pending: list[dict[str, Any]] = []
        self._pending_bytes = 0
        self._first_pending_at: float | None = None
        self._seq = 0
        self._fed = {"stdout": 0, "stderr": 0}
        self._cut = {"stdout": False, "stderr": False}
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in self._fed}
        self._closing = False
        self._in_flight = 0  # chunks at the head of _pending that the sender is posting
        self._thread = threading.Thread(target=self._run, name="output-stream", daemon=True)
        self._thread.start()

    @property
    def last_seq(self) -> int:
        with self._cond:
            return self._seq

    def feed(self, stream: str, data: bytes) -> None:
        """Called by the pump for every read; never blocks on the network."""
        with self._cond:
            if self._closing or self._cut[stream]:
                return
            room = self._limit - self._fed[stream]
            part = data[:room]
            self._fed[stream] += len(part)
            text = self._decoders[stream].decode(part, final=False)
            if text:
                self._add(stream, text)
            if len(data) > room:
                self._cut[stream] = True
                self._add(stream, self._decoders[stream].decode(b"", final=True) + TRUNCATED_NOTE)

    def _add(self, stream: str, text: str) -> None:
        # Reads of one stream waiting in the same batch become one chunk (the control plane stores
        # each chunk with a write of its own), within its per-chunk limit (4 bytes per character at
        # most). A chunk already handed to the sender is never touched again.
        step = MAX_CHUNK_BYTES // 4
        last = self._pending[-1] if len(self._pending) > self._in_flight else None
        if last is not None and last["stream"] == stream and len(last["data"]) + len(text) <= step:
            last["data"] += text
            self._pending_bytes += len(text)
            text = ""
        for start in range(0, len(text), step):
            self._seq += 1
            piece = text[start : start + step]
            self._pending.append({"seq": self._seq, "stream": stream, "data": piece, "at": utc_now_iso()})
            self._pending_bytes += len(piece)
        if self._first_pending_at is None:
            self._first_pending_at = time.monotonic()
        if self._pending_bytes >= self._batch_bytes:
            self._cond.notify_all()

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Flush the rest (a character cut at the end becomes U+FFFD) and wait for delivery."""
        with self._cond:
            for stream, decoder in self._decoders.items():
                if not self._cut[stream] and (tail := decoder.decode(b"", final=True)):
                    self._add(stream, tail)
            self._closing = True
            self._cond.notify_all()
        self._thread.join(wait_s)
        if self._thread.is_alive():
            log("live_output_unflushed", chunks=len(self._pending))

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._pending and (
                        self._closing
                        or self._pending_bytes >= self._batch_bytes
                        or time.monotonic() - (self._first_pending_at or 0) >= self._interval_s
                    ):
                        break
                    if self._closing and not self._pending:
                        return
                    timeout = self._interval_s
                    if self._first_pending_at is not None:
                        timeout = max(0.0, self._first_pending_at + self._interval_s - time.monotonic())
                    self._cond.wait(timeout)
                batch = self._pending[:MAX_BATCH_CHUNKS]
                self._in_flight = len(batch)
            delivered = self._deliver(batch)
            with self._cond:
                self._in_flight = 0
                if delivered:
                    del self._pending[: len(batch)]
                    self._pending_bytes = sum(len(c["data"]) for c in self._pending)
                    self._first_pending_at = time.monotonic() if self._pending else None
                elif self._closing:
                    log("live_output_dropped", chunks=len(self._pending))
                    return

    def _deliver(self, batch: list[dict[str, Any]]) -> bool:
        try:
            if self._post(batch):
                return True
        except Exception as exc:  # the sender must outlive any failure
            log("live_output_error", error=type(exc).__name__)
        time.sleep(self._interval_s)  # back off one interval, then retry with whatever piled up
        return False
