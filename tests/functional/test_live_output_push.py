"""The AWS push channel (API Gateway WebSocket API, docs/streaming.md) on moto: the $connect authorizer,
a subscription with its backlog, chunks fanned out with PostToConnection as the executor posts them,
`complete` at the end, tenant isolation, and the clean-up of $disconnect."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandboxcp.adapters.output_push import WebSocketOutputPush
from sandboxcp.adapters.tables import OutputSubscriberRecord
from sandboxcp.services.auth import ensure_api_key
from tests.functional.conftest import SAMPLE_EXECUTION, invoke, sample_event, seed_session
from tests.functional.test_live_output import _chunk, _end, _seed_execution, post

ENDPOINT = "https://abcdef1234.execute-api.us-east-1.amazonaws.com/prod"
CONNECTION = "L0SM9cOFvHcCIhw="


@pytest.fixture
def push(deps: Any) -> Any:
    seed_session(deps)
    _seed_execution(deps)
    running = deps
    OutputSubscriberRecord.Meta.table_name = "sandboxcp-output-subscribers"
    OutputSubscriberRecord.create_table(wait=True)
    running.output_push = WebSocketOutputPush(ENDPOINT, "us-east-1")
    return running


def _received(connection_id: str = CONNECTION) -> list[dict[str, Any]]:
    """What was posted to the connection (moto concatenates the frames)."""
    from urllib.parse import quote

    from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

    connections = apigatewaymanagementapi_backends["123456789012"]["us-east-1"].connections
    data = connections[quote(connection_id, safe="")].data  # moto keys them as they appear in the URL
    text, out, decoder, i = data.decode(), [], json.JSONDecoder(), 0
    while i < len(text):
        value, i = decoder.raw_decode(text, i)
        out.append(value)
    return out


def _subscribe(**fields: Any) -> dict[str, Any]:
    event = sample_event("ws_subscribe")
    body = json.loads(event["body"])
    tenant = fields.pop("tenant", None)
    event["body"] = json.dumps({**body, **fields})
    if tenant:
        event["requestContext"]["authorizer"]["tenant_id"] = tenant
    return dict(invoke("ws_subscribe", event))


def _subscribers() -> list[str]:
    return [r.connection_id for r in OutputSubscriberRecord.query(SAMPLE_EXECUTION)]


def test_the_authorizer_allows_a_known_key_for_this_connect_only(push: Any) -> None:
    ensure_api_key(push, "sk_sample", "tenant-a", admin=False)
    policy = invoke("ws_authorizer", sample_event("ws_authorizer"))
    assert policy["context"] == {"tenant_id": "tenant-a"}
    (statement,) = policy["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Resource"].endswith("/prod/$connect")
    event = sample_event("ws_authorizer")
    event["headers"]["Authorization"] = "Bearer sk_unknown"
    with pytest.raises(Exception, match="Unauthorized"):
        invoke("ws_authorizer", event)
    assert invoke("ws_connect", sample_event("ws_connect")) == {"statusCode": 200}


def test_subscribe_sends_the_backlog_then_pushes_each_batch_then_complete(push: Any) -> None:
    post([_chunk(1, "one\n"), _chunk(2, "two\n", stream="stderr")])
    assert _subscribe(after=1) == {"statusCode": 200}
    assert _received() == [
        {
            "type": "output",
            "stream_id": SAMPLE_EXECUTION,
            "chunks": [
                {**_chunk(2, "two\n", "stderr"), "at": "2026-01-01T00:00:01.500000Z", "truncated": False}
            ],
        }
    ]
    assert _subscribers() == [CONNECTION]

    assert json.loads(post([_chunk(3, "three\n")])["body"]) == {"stored": 1}
    assert post([_chunk(3, "three\n")])["statusCode"] == 200  # a re-sent batch pushes nothing
    pushed = _received()[1:]
    assert [[c["seq"] for c in m["chunks"]] for m in pushed] == [[3]]

    # the executor's result ends the execution: subscribers get `complete` and are dropped
    result = sample_event("internal_execution_result")
    from sandboxcp.domain import clock
    from sandboxcp.domain.states import ExecutionStatus

    push.executions.transition(SAMPLE_EXECUTION, ExecutionStatus.RUNNING, now=clock.now())
    assert invoke("internal_execution_result", result)["statusCode"] == 200
    assert _received()[-1] == {"type": "complete", "stream_id": SAMPLE_EXECUTION}
    assert _subscribers() == []


def test_subscribing_to_an_ended_execution_sends_everything_and_complete(push: Any) -> None:
    post([_chunk(1, "a"), _chunk(2, "b")])
    _end(push)
    _subscribe()
    messages = _received()
    assert [c["seq"] for c in messages[0]["chunks"]] == [1, 2]
    assert messages[-1]["type"] == "complete"
    assert _subscribers() == []


def test_another_tenant_gets_an_error_message_and_no_subscription(push: Any) -> None:
    post([_chunk(1, "secret")])
    assert _subscribe(tenant="tenant-b") == {"statusCode": 200}
    (message,) = _received()
    assert message["type"] == "error" and message["error_code"] == "Sandbox.ExecutionNotFound"
    assert {"description", "error_detail", "solution", "request_id"} <= set(message)
    assert "secret" not in json.dumps(message)
    assert _subscribers() == []


@pytest.mark.parametrize(
    "fields", [{"action": "unsubscribe"}, {"after": -1}, {"after": "1"}, {"execution_id": ""}, {"extra": 1}]
)
def test_bad_subscribe_messages_get_an_error_message(push: Any, fields: dict[str, Any]) -> None:
    _subscribe(**fields)
    (message,) = _received()
    assert message["type"] == "error" and message["error_code"] == "Sandbox.InvalidParameter"
    assert _subscribers() == []


def test_disconnect_drops_the_connections_subscriptions(push: Any) -> None:
    _subscribe()
    assert _subscribers() == [CONNECTION]
    assert invoke("ws_disconnect", sample_event("ws_disconnect")) == {"statusCode": 200}
    assert _subscribers() == []


def test_a_gone_connection_is_dropped_on_the_next_push(push: Any) -> None:
    _subscribe()
    client = push.output_push._client

    def gone(**_: Any) -> None:
        raise client.exceptions.GoneException({"Error": {"Code": "GoneException", "Message": "gone"}}, "Post")

    client.post_to_connection = gone
    assert post([_chunk(1, "x")])["statusCode"] == 200  # the executor's post never fails for it
    assert _subscribers() == []


def test_large_chunks_are_split_over_frames_or_sent_as_gaps(push: Any) -> None:
    from sandboxcp.adapters.output_push import MAX_MESSAGE_BYTES, messages
    from sandboxcp.domain.output import OutputChunk

    at = "2026-01-01T00:00:00Z"
    chunks = [
        OutputChunk.model_validate({"seq": 1, "stream": "stdout", "data": "a" * 70_000, "at": at}),
        OutputChunk.model_validate({"seq": 2, "stream": "stdout", "data": "b" * 70_000, "at": at}),
        OutputChunk.model_validate({"seq": 3, "stream": "stdout", "data": "\x00" * 30_000, "at": at}),
    ]
    frames = [json.loads(m) for m in messages(SAMPLE_EXECUTION, chunks, complete=True)]
    assert all(len(m) <= MAX_MESSAGE_BYTES for m in messages(SAMPLE_EXECUTION, chunks, complete=True))
    assert [f["type"] for f in frames] == ["output", "output", "gap", "complete"]
    assert frames[2] == {"type": "gap", "stream_id": SAMPLE_EXECUTION, "seq": 3}
