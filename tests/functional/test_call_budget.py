"""How many AWS calls the hot paths make (issue #14: a submit makes at most 3, a status read 1), counted
on moto through botocore's event hooks: every API call of every client (boto3's and pynamodb's) emits
`before-call.<service>.<operation>` once."""

from __future__ import annotations

import json
from typing import Any

from sandboxcp.domain.states import SessionStatus
from tests.functional.conftest import SAMPLE_SESSION, body, invoke, sample_event, seed_session, with_path


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


class _AnsweringExecutor:
    """Ends the run within the wait and answers /execute with the result; `meanwhile` runs first (what
    another function may do to the execution while it runs)."""

    def __init__(self, meanwhile: Any = None) -> None:
        self.meanwhile = meanwhile

    def submit(self, executor_url, execution, workspace=None, *, executor_key="", wait_s=0.0):  # type: ignore[no-untyped-def]
        if self.meanwhile is not None:
            self.meanwhile(execution)
        return json.loads(sample_event("internal_execution_result")["body"])


def test_an_answered_execute_sync_ends_its_execution_without_reading_it(deps, aws_calls):
    seed_session(deps)
    deps.executor = _AnsweringExecutor()
    assert invoke("executions_submit_sync", sample_event("executions_submit_sync"))["statusCode"] == 200
    aws_calls.clear()
    resp = invoke("executions_submit_sync", sample_event("executions_submit_sync"))
    assert resp["statusCode"] == 200 and body(resp)["return_value"] == 42, resp
    # The execution's create and its end (result, slots back) in one transaction each; the session is
    # this instance's earlier read, checked in the create (a deployment with live-output push also invokes
    # its fan-out: not a DynamoDB call).
    tables = [c for c in aws_calls if c.startswith("dynamodb.")]
    assert tables == ["dynamodb.TransactWriteItems", "dynamodb.TransactWriteItems"]


def test_an_execution_changed_by_another_function_meanwhile_is_read_before_its_end(deps, aws_calls):
    from sandboxcp.adapters.tables import SessionRecord
    from sandboxcp.domain.states import ExecutionStatus

    seed_session(deps)
    # Another function's repository (not the one that created the execution) marks it running.
    elsewhere = type(deps.executions)(deps.results, deps.quotas)

    def running(execution: Any) -> None:
        elsewhere.transition(execution.execution_id, ExecutionStatus.RUNNING, now=execution.created_at)

    deps.executor = _AnsweringExecutor(running)
    resp = invoke("executions_submit_sync", sample_event("executions_submit_sync"))
    assert resp["statusCode"] == 200 and body(resp)["status"] == "success", resp
    stored = deps.executions.get(body(resp)["execution_id"])
    assert stored is not None and stored.status == ExecutionStatus.COMPLETED
    assert stored.outcome is not None and stored.outcome.return_value == 42
    assert deps.quotas.get("tenant-a").usage.inflight_executions == 0
    assert SessionRecord.get(SAMPLE_SESSION).executions_inflight == 0


def test_a_cell_checks_its_context_in_the_write_that_records_it(deps, aws_calls):
    seed_session(deps)
    created = invoke("contexts_create", with_path(sample_event("contexts_create"), session_id=SAMPLE_SESSION))
    event = sample_event("executions_submit")
    cell = {"code": "x = 1", "language": "python", "context_id": body(created)["context_id"]}
    event["body"] = json.dumps(cell)
    assert invoke("executions_submit", event)["statusCode"] == 200  # warm
    aws_calls.clear()
    resp = invoke("executions_submit", event)
    assert resp["statusCode"] == 200, resp
    tables = [c for c in aws_calls if c.startswith("dynamodb.")]
    assert tables == ["dynamodb.TransactWriteItems"]  # no read of the context, nor of the kept session


# A submit reuses the session as this instance last read it; the create is conditioned on it still being
# so (running, same executor address and key, same workspace revision) and reads it again when not.


def _submit() -> dict[str, Any]:
    resp = invoke("executions_submit", sample_event("executions_submit"))
    assert resp["statusCode"] == 200, resp
    return body(resp)


def test_a_kept_session_whose_executor_moved_is_read_again(deps, aws_calls):
    seed_session(deps)
    _submit()  # this instance keeps the session
    moved = {"executor_url": "http://10.0.0.9:8080", "callback_token_hash": "f" * 64}
    deps.sessions.update_fields(SAMPLE_SESSION, moved, only_if=[SessionStatus.RUNNING])
    aws_calls.clear()
    _submit()
    assert deps.executor.submitted[-1][0] == "http://10.0.0.9:8080"  # not the address it kept
    assert deps.executor.executor_keys[-1] == "f" * 64
    tables = [c for c in aws_calls if c.startswith("dynamodb.")]
    # refused as read (the store reads why), read again, recorded; the next submit needs no read again
    read_again = ["dynamodb.GetItem", "dynamodb.GetItem"]
    assert tables == ["dynamodb.TransactWriteItems", *read_again, "dynamodb.TransactWriteItems"]
    aws_calls.clear()
    _submit()
    assert [c for c in aws_calls if c.startswith("dynamodb.")] == ["dynamodb.TransactWriteItems"]
    assert deps.quotas.get("tenant-a").usage.inflight_executions == 3  # each counted once


def test_a_kept_session_sends_the_workspace_revision_the_api_wrote_since(deps):
    seed_session(deps)
    _submit()
    rev = deps.executor.workspaces[-1]["rev"]
    _upload_through_the_api()
    _submit()
    assert deps.executor.workspaces[-1]["rev"] == rev + 1


def test_a_kept_session_that_ended_refuses_the_submit(deps):
    seed_session(deps)
    _submit()
    ended_at = deps.sessions.get(SAMPLE_SESSION).updated_at
    deps.sessions.transition(SAMPLE_SESSION, SessionStatus.TERMINATED, now=ended_at)
    sent = len(deps.executor.submitted)
    resp = invoke("executions_submit", sample_event("executions_submit"))
    assert resp["statusCode"] == 409 and "no longer running" in body(resp)["error_detail"], resp
    assert len(deps.executor.submitted) == sent


def test_a_kept_session_is_not_another_tenants(deps):
    seed_session(deps)
    _submit()
    event = sample_event("executions_submit")
    event["requestContext"]["authorizer"]["tenant_id"] = "tenant-b"
    resp = invoke("executions_submit", event)
    assert resp["statusCode"] == 404, resp
