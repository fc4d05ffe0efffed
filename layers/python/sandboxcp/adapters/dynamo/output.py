"""Live-output chunks (OutputChunkRecord): one item per chunk under its stream id, the stream's accounting at
seq 0. Chunk writes are conditional (one item per seq, ever); the accounting is a compare-and-set on its
version, so concurrent batches never store more than the limit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.update import Action

from sandboxcp.adapters.dynamo.common import condition_failed
from sandboxcp.adapters.tables import OutputChunkRecord
from sandboxcp.domain.output import OUTPUT_STREAMS, OutputChunk, OutputStream, OutputUsage

USAGE_SEQ = 0  # chunks start at 1


class DynamoOutputRepository:
    def existing_seqs(self, stream_id: str, first: int, last: int) -> set[int]:
        items = OutputChunkRecord.query(
            stream_id,
            OutputChunkRecord.seq.between(first, last),
            consistent_read=True,
            attributes_to_get=["seq"],
        )
        return {int(r.seq) for r in items}

    def usage(self, stream_id: str) -> OutputUsage:
        try:
            r = OutputChunkRecord.get(stream_id, USAGE_SEQ, consistent_read=True)
        except OutputChunkRecord.DoesNotExist:
            return OutputUsage()
        return OutputUsage(
            version=int(r.version or 0),
            bytes={"stdout": int(r.bytes_stdout or 0), "stderr": int(r.bytes_stderr or 0)},
            markers={s: int(m) for s in OUTPUT_STREAMS if (m := getattr(r, f"marker_{s}")) is not None},
        )

    def reserve(
        self, stream_id: str, usage: OutputUsage, *, expected_version: int, expires_at: datetime
    ) -> bool:
        R = OutputChunkRecord
        actions: list[Action] = [
            R.version.set(usage.version),
            R.bytes_stdout.set(usage.bytes["stdout"]),
            R.bytes_stderr.set(usage.bytes["stderr"]),
            R.expires_at.set(expires_at),
        ]
        actions += [getattr(R, f"marker_{s}").set(seq) for s, seq in usage.markers.items()]
        condition = R.version.does_not_exist() if expected_version == 0 else R.version == expected_version
        try:
            R(stream_id, USAGE_SEQ).update(actions=actions, condition=condition)
        except UpdateError as err:
            if condition_failed(err):
                return False
            raise
        return True

    def release(self, stream_id: str, stream: str, size: int) -> None:
        R = OutputChunkRecord
        attr = R.bytes_stdout if stream == "stdout" else R.bytes_stderr
        # A new version too: a concurrent compare-and-set computed from the old bytes must fail and retry.
        R(stream_id, USAGE_SEQ).update(
            actions=[attr.add(-size), R.version.add(1)], condition=R.version.exists()
        )

    def put_new(self, stream_id: str, chunks: list[OutputChunk], *, expires_at: datetime) -> list[bool]:
        """Store each chunk unless its seq is taken; per chunk, whether this call stored it. One conditional
        put per chunk, in seq order, so a reader never sees a later seq before an earlier one. (Not
        TransactWriteItems: moto copies every table per transaction, which local mode cannot afford; a
        batch holds a few chunks, the executor merging what one stream printed between flushes.)"""
        return [self._put(self._record(stream_id, c, expires_at)) for c in chunks]

    @staticmethod
    def _record(stream_id: str, chunk: OutputChunk, expires_at: datetime) -> OutputChunkRecord:
        return OutputChunkRecord(
            stream_id,
            chunk.seq,
            stream=chunk.stream,
            data=chunk.data,
            at=chunk.at,
            truncated=True if chunk.truncated else None,
            expires_at=expires_at,
        )

    @staticmethod
    def _put(record: OutputChunkRecord) -> bool:
        try:
            record.save(condition=OutputChunkRecord.seq.does_not_exist())
        except PutError as err:
            if condition_failed(err):
                return False
            raise
        return True

    def after(self, stream_id: str, after: int, *, limit: int) -> Iterator[OutputChunk]:
        """Lazily, a DynamoDB page (1 MB) at a time: the caller stops reading when its page is full."""
        items = OutputChunkRecord.query(
            stream_id, OutputChunkRecord.seq > after, consistent_read=True, limit=limit
        )
        for r in items:
            stream: OutputStream = "stderr" if r.stream == "stderr" else "stdout"
            yield OutputChunk(
                seq=int(r.seq), stream=stream, data=r.data or "", at=r.at, truncated=bool(r.truncated)
            )
