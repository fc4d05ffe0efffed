"""How many AWS calls the hot paths make (issue #14: a submit makes at most 3, a status read 1), counted
on moto through botocore's event hooks: every API call of every client (boto3's and pynamodb's) emits
`before-call.<service>.<operation>` once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.hooks
import pytest

from tests.functional.conftest import SAMPLE_SESSION, body, invoke, sample_event, seed_session, with_path


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    calls: list[str] = []
    emit = botocore.hooks.HierarchicalEmitter.emit_until_response  # how a client emits before-call

    def counting(self: Any, event_name: str, **kwargs: Any) -> Any:
        if event_name.startswith("before-call."):
            calls.append(event_name.removeprefix("before-call."))
        return emit(self, event_name, **kwargs)

    monkeypatch.setattr(botocore.hooks.HierarchicalEmitter, "emit_until_response", counting)
    yield calls


def _upload_through_the_api() -> None:
    event = sample_event("files_upload")
    event["headers"]["Content-Type"] = "multipart/form-data; boundary=b"
    event["body"] = (
        '--b\r\nContent-Disposition: form-data; name="file"; filename="in.csv"\r\n\r\n1,2\r\n--b--\r\n'
    )
    event["isBase64Encoded"] = False
    assert invoke("files_upload", event)["statusCode"] == 200


def test_a_submit_makes_at_most_three_aws_calls_whatever_the_workspace_holds(deps, aws_calls):
    seed_session(deps)
    for n in range(20):  # a workspace with files: a submit neither lists nor presigns them
        deps.workspace.put(SAMPLE_SESSION, f"data/{n}.csv", b"1,2")
    _upload_through_the_api()
    assert invoke("executions_submit", sample_event("executions_submit"))["statusCode"] == 200  # warm
    aws_calls.clear()
    resp = invoke("executions_submit", sample_event("executions_submit"))
    assert resp["statusCode"] == 200, resp
    assert 1 <= len(aws_calls) <= 3, aws_calls
    assert "dynamodb.TransactWriteItems" in aws_calls  # the execution, its tenant's and session's slots
    assert not [c for c in aws_calls if c.startswith("s3.")], aws_calls
    assert len(deps.executor.submitted) == 2


def test_a_status_read_makes_one_aws_call(deps, aws_calls):
    seed_session(deps)
    submitted = invoke("executions_submit", sample_event("executions_submit"))
    execution_id = body(submitted)["execution_id"]
    aws_calls.clear()
    event = with_path(sample_event("executions_status"), execution_id=execution_id)
    resp = invoke("executions_status", event)
    assert resp["statusCode"] == 200, resp
    assert body(resp)["status"] == "pending"
    assert aws_calls == ["dynamodb.GetItem"]
