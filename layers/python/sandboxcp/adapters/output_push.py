"""The live-output push channel in AWS: an API Gateway WebSocket API (infra/sandboxcp_infra/streaming.py).
Subscribers are rows of OutputSubscriberRecord (stream id -> connection ids); each stored batch is posted
to every subscriber with PostToConnection. Without the WebSocket API configured (local mode: SSE through
the gateway emulator) publishing does nothing. Message shapes: docs/streaming.md."""

from __future__ import annotations

import json
from typing import Any

from sandboxcp.domain.output import OutputChunk
from sandboxcp.observability import logger
from sandboxcp.settings import Settings

# API Gateway WebSocket frames are at most 128 KB; stay below with room for the envelope.
MAX_MESSAGE_BYTES = 120 * 1024
CONNECTION_MAX_S = 2 * 3600  # API Gateway closes a WebSocket connection after 2 h: its rows expire then


class NullOutputPush:
    def publish(self, stream_id: str, chunks: list[OutputChunk], *, complete: bool = False) -> None:
        return None

    def subscribe(self, stream_id: str, connection_id: str, tenant_id: str) -> None:
        raise RuntimeError("no push channel is configured (OUTPUT_PUSH_ENDPOINT)")

    def unsubscribe(self, connection_id: str, stream_id: str | None = None) -> None:
        return None

    def send(self, connection_id: str, payloads: list[bytes]) -> bool:
        return False


def chunk_json(chunk: OutputChunk) -> dict[str, Any]:
    from sandboxcp.api.schemas.output import OutputChunkResponse

    return dict(OutputChunkResponse.of(chunk).model_dump(mode="json"))


def messages(stream_id: str, chunks: list[OutputChunk], *, complete: bool) -> list[bytes]:
    """`output` messages of whole chunks, each under MAX_MESSAGE_BYTES; a chunk too large for any message
    becomes a `gap` (the client reads it with GET .../output?after=seq-1); then `complete` if it ended."""
    out: list[bytes] = []
    batch: list[dict[str, Any]] = []
    size = 0

    def flush() -> None:
        nonlocal batch, size
        if batch:
            out.append(json.dumps({"type": "output", "stream_id": stream_id, "chunks": batch}).encode())
        batch, size = [], 0

    for chunk in chunks:
        item = chunk_json(chunk)
        cost = len(json.dumps(item).encode())
        if cost + 200 > MAX_MESSAGE_BYTES:
            flush()
            out.append(json.dumps({"type": "gap", "stream_id": stream_id, "seq": chunk.seq}).encode())
            continue
        if size + cost + 200 > MAX_MESSAGE_BYTES:
            flush()
        batch.append(item)
        size += cost
    flush()
    if complete:
        out.append(json.dumps({"type": "complete", "stream_id": stream_id}).encode())
    return out


class WebSocketOutputPush:
    def __init__(self, endpoint: str, region: str) -> None:
        import boto3

        self._client: Any = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, region_name=region)

    def publish(self, stream_id: str, chunks: list[OutputChunk], *, complete: bool = False) -> None:
        from sandboxcp.adapters.tables import OutputSubscriberRecord

        subscribers = [r.connection_id for r in OutputSubscriberRecord.query(stream_id)]
        if not subscribers:
            return
        payloads = messages(stream_id, chunks, complete=complete)
        for connection_id in subscribers:
            for payload in payloads:
                if not self._post(connection_id, payload):
                    OutputSubscriberRecord(stream_id, connection_id).delete()
                    break
            else:
                if complete:
                    OutputSubscriberRecord(stream_id, connection_id).delete()

    def subscribe(self, stream_id: str, connection_id: str, tenant_id: str) -> None:
        from datetime import timedelta

        from sandboxcp.adapters.tables import OutputSubscriberRecord
        from sandboxcp.domain import clock

        expires = clock.now() + timedelta(seconds=CONNECTION_MAX_S)
        OutputSubscriberRecord(stream_id, connection_id, tenant_id=tenant_id, expires_at=expires).save()

    def unsubscribe(self, connection_id: str, stream_id: str | None = None) -> None:
        """One subscription, or (on $disconnect) all of the connection's, found on its index."""
        from sandboxcp.adapters.tables import OutputSubscriberRecord

        streams = (
            [stream_id]
            if stream_id
            else [r.stream_id for r in OutputSubscriberRecord.by_connection.query(connection_id)]
        )
        for sid in streams:
            OutputSubscriberRecord(sid, connection_id).delete()

    def send(self, connection_id: str, payloads: list[bytes]) -> bool:
        return all(self._post(connection_id, p) for p in payloads)

    def _post(self, connection_id: str, payload: bytes) -> bool:
        """False when the connection is gone (410): its subscription is dropped."""
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=payload)
        except self._client.exceptions.GoneException:
            return False
        except Exception:
            logger.warning("post to a live-output subscriber failed", extra={"connection_id": connection_id})
        return True


def build_output_push(settings: Settings) -> NullOutputPush | WebSocketOutputPush:
    if not (settings.output_push_endpoint and settings.output_subscribers_table):
        return NullOutputPush()
    from sandboxcp.adapters.tables import OutputSubscriberRecord

    OutputSubscriberRecord.Meta.table_name = settings.output_subscribers_table
    return WebSocketOutputPush(settings.output_push_endpoint, settings.aws_region)
