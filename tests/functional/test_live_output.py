"""Live output (docs/streaming.md): the executor's output callback (ownership, idempotency, limits,
truncation, TTL), the public read with its long poll, tenant isolation, and the SSE form of the read."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from sandboxcp.domain.states import ExecutionStatus
from tests.functional.conftest import (
    ERROR_FIELDS,
    SAMPLE_EXECUTION,
    SAMPLE_SESSION,
    body,
    invoke,
    sample_event,
    seed_session,
    with_path,
)

MIB = 1 << 20


def _seed_execution(deps: Any, execution_id: str = SAMPLE_EXECUTION, *, tenant: str = "tenant-a") -> None:
    from sandboxcp.domain import clock
    from sandboxcp.domain.models import Execution

    deps.executions.create(
        Execution(
            execution_id=execution_id,
            session_id=SAMPLE_SESSION,
            tenant_id=tenant,
            status=ExecutionStatus.PENDING,
            code="print(1)",
            language="python",
            timeout=30,
            created_at=clock.now(),
        )
    )


@pytest.fixture
def running(deps: Any) -> Any:
    seed_session(deps)
    _seed_execution(deps)
    return deps


def _chunk(seq: int, data: str, stream: str = "stdout") -> dict[str, Any]:
    return {"seq": seq, "stream": stream, "data": data, "at": "2026-01-01T00:00:01.500Z"}


def post(chunks: list[dict[str, Any]] | Any, *, session: str = SAMPLE_SESSION, raw: str | None = None) -> Any:
    event = sample_event("internal_execution_output")
    event["requestContext"]["authorizer"]["session_id"] = session
    event["body"] = raw if raw is not None else json.dumps({"chunks": chunks})
    return invoke("internal_execution_output", event)


def read(
    *,
    after: int | None = None,
    wait: float | None = None,
    tenant: str = "tenant-a",
    execution_id: str = SAMPLE_EXECUTION,
    stream: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    event = with_path(sample_event("executions_output"), execution_id=execution_id)
    query = {"after": after, "wait": wait, "stream": stream}
    params = {k: str(v) for k, v in query.items() if v is not None}
    event["queryStringParameters"] = params or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in params.items()} or None
    event["requestContext"]["authorizer"]["tenant_id"] = tenant
    event["headers"].update(headers or {})
    return invoke("executions_output", event)


def _error(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp["statusCode"] == status, resp["body"][:500]
    answer = body(resp)
    assert set(answer) == ERROR_FIELDS and all(answer.values()), answer
    if code:
        assert answer["error_code"] == code, answer
    return dict(answer)


def _end(deps: Any, status: ExecutionStatus = ExecutionStatus.COMPLETED) -> None:
    from sandboxcp.domain import clock

    deps.executions.transition(SAMPLE_EXECUTION, ExecutionStatus.RUNNING, now=clock.now())
    deps.executions.transition(
        SAMPLE_EXECUTION, status, now=clock.now(), fields={"completed_at": clock.now()}
    )


# --- the callback ---------------------------------------------------------------------------------------


def test_the_sample_batch_is_stored_and_read_back_in_order(running: Any) -> None:
    resp = invoke("internal_execution_output", sample_event("internal_execution_output"))
    assert resp["statusCode"] == 200, resp["body"]
    assert body(resp) == {"stored": 2}

    page = body(read())
    assert page["execution_id"] == SAMPLE_EXECUTION
    assert [(c["seq"], c["stream"], c["data"]) for c in page["chunks"]] == [
        (1, "stdout", "step 1 of 3\n"),
        (2, "stderr", "warning: slow disk\n"),
    ]
    assert page["chunks"][0]["at"] == "2026-01-01T00:00:01.100000Z"
    assert page["next_after"] == 2 and page["complete"] is False
    assert body(read(after=1))["chunks"][0]["seq"] == 2
    assert body(read(after=2)) == {
        "execution_id": SAMPLE_EXECUTION,
        "chunks": [],
        "next_after": 2,
        "complete": False,
    }


def test_a_resent_batch_stores_nothing_twice(running: Any) -> None:
    batch = [_chunk(1, "a"), _chunk(2, "b"), _chunk(3, "c")]
    assert body(post(batch)) == {"stored": 3}
    assert body(post(batch)) == {"stored": 0}
    # overlapping: 2 and 3 again, 4 new, with other data (the stored chunk wins)
    assert body(post([_chunk(2, "X"), _chunk(3, "Y"), _chunk(4, "d")])) == {"stored": 1}
    chunks = body(read())["chunks"]
    assert [c["data"] for c in chunks] == ["a", "b", "c", "d"]
    usage = running.output.usage(SAMPLE_EXECUTION)
    assert usage.bytes == {"stdout": 4, "stderr": 0}  # re-sent bytes are not counted


class _Racing:
    """The output repository, with a competing writer let in at one step of `append` (once): the races of
    concurrent copies of a batch, made deterministic (moto's in-process DynamoDB is not atomic under
    threads)."""

    def __init__(self, real: Any, step: str, rival: Any) -> None:
        self._real, self._step, self._rival = real, step, rival

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name != self._step:
            return attr

        def racing(*args: Any, **kwargs: Any) -> Any:
            rival, self._rival = self._rival, None
            if rival is not None:
                rival()
            return attr(*args, **kwargs)

        return racing


@pytest.mark.parametrize("step", ["usage", "reserve", "put_new"])
def test_a_copy_of_the_batch_stored_meanwhile_is_neither_stored_nor_counted_twice(
    running: Any, step: str
) -> None:
    from sandboxcp.services import output

    batch = [_chunk(seq, f"line {seq}\n") for seq in range(1, 21)]
    chunks = output.OutputBatch.model_validate({"chunks": batch}).to_chunks()
    real = running.output
    rival_stored: list[Any] = []
    running.output = _Racing(
        real, step, lambda: rival_stored.extend(output.append(_with(running, real), SAMPLE_EXECUTION, chunks))
    )
    ours = output.append(running, SAMPLE_EXECUTION, chunks)
    assert len(rival_stored) + len(ours) == 20
    assert len(rival_stored) == 20  # the rival went first
    running.output = real
    assert [c["seq"] for c in body(read())["chunks"]] == list(range(1, 21))
    expected = sum(len(f"line {s}\n") for s in range(1, 21))
    assert real.usage(SAMPLE_EXECUTION).bytes["stdout"] == expected


def _with(deps: Any, repo: Any) -> Any:
    """`deps` with another output repository (the rival writer uses the plain one)."""
    import copy

    other = copy.copy(deps)
    other.output = repo
    return other


def test_a_writer_that_keeps_losing_the_compare_and_set_gets_409(running: Any) -> None:
    class Losing:
        def __init__(self, real: Any) -> None:
            self._real = real

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

        def reserve(self, *args: Any, **kwargs: Any) -> bool:
            return False

    running.output = Losing(running.output)
    _error(post([_chunk(1, "x")]), 409, "Sandbox.StateConflict")
    running.output = running.output._real
    assert body(read())["chunks"] == []


def test_another_sessions_token_is_refused_and_stores_nothing(running: Any) -> None:
    other = "sess_0000000000000002"
    seed_session(running, other)
    _error(post([_chunk(1, "x")], session=other), 403, "Sandbox.Forbidden")
    missing = sample_event("internal_execution_output")
    missing = with_path(missing, execution_id="exec_20260101_0000zzzz")
    _error(invoke("internal_execution_output", missing), 404, "Sandbox.ExecutionNotFound")
    assert body(read())["chunks"] == []


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"chunks": []}, "chunks"),
        ({"chunks": [_chunk(1, "x")] * 257}, "chunks"),
        ({"chunks": [_chunk(0, "x")]}, "seq"),
        ({"chunks": [{**_chunk(1, "x"), "seq": "1"}]}, "seq"),
        ({"chunks": [_chunk(1, "x", stream="stdin")]}, "stream"),
        ({"chunks": [{**_chunk(1, "x"), "at": "yesterday"}]}, "at"),
        ({"chunks": [_chunk(1, "é" * (32 * 1024 + 1))]}, "65,538 bytes"),
        ({"chunks": [_chunk(s, "x" * 60_000) for s in range(1, 6)]}, "300,000 bytes"),
        ({"chunks": [_chunk(1, "a"), _chunk(3, "b")]}, "consecutive"),
        ({"chunks": [_chunk(2, "a"), _chunk(1, "b")]}, "consecutive"),
        ({"chunks": [{**_chunk(1, "x"), "seq": 2**53}]}, "seq"),
    ],
)
def test_bad_batches_get_the_contract_error_and_store_nothing(
    running: Any, payload: Any, detail: str
) -> None:
    answer = _error(post(None, raw=json.dumps(payload)), 400, "Sandbox.InvalidParameter")
    assert detail in answer["error_detail"], answer
    assert body(read())["chunks"] == []


def test_not_json_and_wrong_media_type_are_refused(running: Any) -> None:
    _error(post(None, raw="{not json"), 400, "Sandbox.InvalidParameter")
    event = sample_event("internal_execution_output")
    event["headers"]["Content-Type"] = "text/plain"
    _error(invoke("internal_execution_output", event), 415)


def test_output_of_an_ended_execution_is_refused(running: Any) -> None:
    assert body(post([_chunk(1, "a")])) == {"stored": 1}
    _end(running)
    _error(post([_chunk(2, "late")]), 409, "Sandbox.StateConflict")
    assert [c["seq"] for c in body(read())["chunks"]] == [1]


def test_each_stream_stops_at_one_mib_with_a_single_truncation_marker(running: Any) -> None:
    piece = "o" * (64 * 1024)
    seq = 0
    stored = 0
    for _ in range(6):  # 6 batches of 3 x 64 KiB stdout (1.125 MiB in all), and a little stderr
        chunks = []
        for _ in range(3):
            seq += 1
            chunks.append(_chunk(seq, piece))
        seq += 1
        chunks.append(_chunk(seq, "e\n", stream="stderr"))
        resp = post(chunks)
        assert resp["statusCode"] == 200, resp["body"]
        stored += body(resp)["stored"]

    everything: list[dict[str, Any]] = []
    after = 0
    while True:
        page = body(read(after=after))
        everything += page["chunks"]
        if not page["chunks"]:
            break
        after = page["next_after"]
    stdout = [c for c in everything if c["stream"] == "stdout"]
    stderr = [c for c in everything if c["stream"] == "stderr"]
    assert sum(len(c["data"]) for c in stdout) == MIB
    markers = [c for c in everything if c.get("truncated")]
    assert len(markers) == 1 and markers[0]["stream"] == "stdout"
    assert markers[0]["data"] == ""  # 16 x 64 KiB filled the MiB exactly: the 17th chunk is the marker
    assert markers[0]["seq"] == 22  # seqs 4k+1..4k+3 are stdout: 22 is the 17th, 23 is dropped
    assert stdout[-1] == markers[0]  # nothing of stdout after the marker
    assert len(stderr) == 6  # stderr has its own MiB
    assert stored == len(everything) == 16 + 1 + 6
    # a later batch of stdout is dropped; the marker is not repeated
    resp = post([_chunk(25, "more"), _chunk(26, "err", stream="stderr")])
    assert body(resp) == {"stored": 1}
    assert [c["seq"] for c in body(read(after=24))["chunks"]] == [26]


def test_a_chunk_crossing_the_limit_keeps_what_fits_on_a_character_boundary(running: Any) -> None:
    seq = 0
    for _ in range(15):
        seq += 1
        assert body(post([_chunk(seq, "x" * (64 * 1024))]))["stored"] == 1
    seq += 1
    assert body(post([_chunk(seq, "x" * (64 * 1024 - 1))]))["stored"] == 1  # 1 byte left
    seq += 1
    assert body(post([_chunk(seq, "éa")]))["stored"] == 1  # 'é' is 2 bytes: it does not fit
    marker = body(read(after=seq - 1))["chunks"][0]
    assert marker == {**marker, "seq": seq, "data": "", "truncated": True}
    seq += 1
    assert body(post([_chunk(seq, "a")]))["stored"] == 0


def test_chunks_carry_a_ttl_attribute(running: Any) -> None:
    import boto3

    before = int(time.time())
    post([_chunk(1, "a")])
    table = running.settings.output_chunks_table
    items = boto3.client("dynamodb").scan(TableName=table)["Items"]  # test inspection only
    assert {i["seq"]["N"] for i in items} == {"0", "1"}  # the chunk and the stream's accounting
    ttl = running.settings.output_ttl_s
    assert ttl == 86400
    for item in items:
        expires = int(item["expires_at"]["N"])
        assert before + ttl <= expires <= int(time.time()) + ttl + 1


# --- the read -------------------------------------------------------------------------------------------


def test_another_tenants_execution_is_not_found(running: Any) -> None:
    post([_chunk(1, "secret")])
    answer = _error(read(tenant="tenant-b"), 404, "Sandbox.ExecutionNotFound")
    assert "secret" not in json.dumps(answer)
    _error(read(tenant="tenant-b", stream="sse"), 404, "Sandbox.ExecutionNotFound")
    _error(read(execution_id="exec_20260101_0000zzzz"), 404, "Sandbox.ExecutionNotFound")
    _error(read(execution_id="not-an-id"), 404, "Sandbox.ExecutionNotFound")


@pytest.mark.parametrize(
    "query",
    [{"after": -1}, {"after": "x"}, {"wait": 21}, {"wait": -0.5}, {"wait": "soon"}, {"stream": "ws"}],
)
def test_bad_read_parameters_get_400(running: Any, query: dict[str, Any]) -> None:
    _error(read(**query), 400, "Sandbox.InvalidParameter")


def test_long_poll_answers_as_soon_as_a_chunk_arrives(running: Any) -> None:
    def later() -> None:
        time.sleep(0.6)
        post([_chunk(1, "hello\n")])

    writer = threading.Thread(target=later)
    start = time.monotonic()
    writer.start()
    resp = read(wait=10)
    elapsed = time.monotonic() - start
    writer.join()
    page = body(resp)
    assert [c["data"] for c in page["chunks"]] == ["hello\n"]
    assert 0.5 <= elapsed < 5.0, elapsed  # answered when the chunk came, not at the end of the wait
    assert page["complete"] is False


def test_long_poll_without_output_waits_then_answers_empty(running: Any) -> None:
    start = time.monotonic()
    page = body(read(wait=0.5))
    assert 0.45 <= time.monotonic() - start < 5.0
    assert page["chunks"] == [] and page["next_after"] == 0 and page["complete"] is False


def test_long_poll_returns_complete_when_the_execution_ends(running: Any) -> None:
    post([_chunk(1, "a"), _chunk(2, "b")])
    assert body(read(after=0))["complete"] is False

    def later() -> None:
        time.sleep(0.4)
        _end(running, ExecutionStatus.TIMEOUT)

    ender = threading.Thread(target=later)
    start = time.monotonic()
    ender.start()
    page = body(read(after=2, wait=10))
    ender.join()
    assert time.monotonic() - start < 5.0  # answered at the end, not after the 10 s wait
    assert page == {"execution_id": SAMPLE_EXECUTION, "chunks": [], "next_after": 2, "complete": True}
    # after an end, a read from the start has everything and says complete at once
    page = body(read(after=0, wait=10))
    assert [c["seq"] for c in page["chunks"]] == [1, 2] and page["complete"] is True


def test_pages_stop_at_1000_chunks_and_complete_waits_for_the_last_page(running: Any) -> None:
    seq = 0
    for _ in range(5):  # 1,280 chunks
        chunks = [_chunk(seq + i, ".") for i in range(1, 257)]
        seq += 256
        assert body(post(chunks))["stored"] == 256
    _end(running)
    first = body(read())
    assert len(first["chunks"]) == 1000 and first["next_after"] == 1000 and first["complete"] is False
    second = body(read(after=first["next_after"]))
    assert len(second["chunks"]) == 280 and second["next_after"] == 1280 and second["complete"] is True


def test_pages_stop_at_one_mib_of_data(running: Any) -> None:
    seq = 0
    for _ in range(6):  # 24 x 64 KiB = 1.5 MiB of stdout... within 1 MiB stored, plus stderr
        chunks = []
        for _ in range(2):
            seq += 1
            chunks.append(_chunk(seq, "o" * 64 * 1024))
            seq += 1
            chunks.append(_chunk(seq, "e" * 64 * 1024, stream="stderr"))
        assert post(chunks)["statusCode"] == 200
    first = body(read())
    size = sum(len(json.dumps(c["data"])) for c in first["chunks"])
    assert size <= MIB and len(first["chunks"]) == 15
    second = body(read(after=first["next_after"]))
    assert [c["seq"] for c in second["chunks"]] == list(range(16, 25))


# --- SSE ------------------------------------------------------------------------------------------------


def _events(text: str) -> list[dict[str, str]]:
    out = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            out.append(fields)
    return out


def test_sse_form_of_the_read(running: Any) -> None:
    post([_chunk(1, "a\n"), _chunk(2, "b\n", stream="stderr")])
    resp = read(stream="sse", wait=0)
    assert resp["statusCode"] == 200
    assert resp["multiValueHeaders"]["Content-Type"] == ["text/event-stream"]
    events = _events(resp["body"])
    assert [e["id"] for e in events] == ["1", "2"]
    assert json.loads(events[1]["data"])["stream"] == "stderr"
    assert "event" not in events[0]
    _end(running)
    # EventSource's reconnection: Last-Event-ID wins over `after`
    resp = read(stream="sse", after=0, headers={"Last-Event-ID": "1"})
    events = _events(resp["body"])
    assert [(e.get("event"), e["id"]) for e in events] == [(None, "2"), ("complete", "2")]
    _error(read(stream="sse", headers={"Last-Event-ID": "abc"}), 400, "Sandbox.InvalidParameter")


def test_sse_waits_by_default(running: Any) -> None:
    def later() -> None:
        time.sleep(0.3)
        post([_chunk(1, "x")])

    writer = threading.Thread(target=later)
    writer.start()
    start = time.monotonic()
    resp = read(stream="sse")  # no `wait`: SSE long-polls (up to 20 s)
    writer.join()
    assert 0.25 <= time.monotonic() - start < 10.0  # answered at the chunk, not after 20 s
    assert [e["id"] for e in _events(resp["body"])] == ["1"]


def test_output_pages_use_the_same_clock_as_the_store(running: Any) -> None:
    """`at` is what the executor reported, as UTC ISO-8601."""
    post([{**_chunk(1, "x"), "at": "2026-01-01T02:00:00+02:00"}])
    assert body(read())["chunks"][0]["at"] == datetime(2026, 1, 1, tzinfo=UTC).isoformat().replace(
        "+00:00", "Z"
    )
