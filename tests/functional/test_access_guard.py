"""The local access guard refuses what a function's role would be refused in AWS: a table its access list
does not name, a write where it names reads, a transaction's item on another table, a state machine call
without its grant. Outside a function nothing is checked."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from sandboxcp.local.access_guard import acting_as
from sandboxcp.settings import get_settings


def _key(session_id: str = "sess_0000000000000001") -> dict[str, dict[str, str]]:
    return {"session_id": {"S": session_id}}


def _denied(call, needs: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as caught:
        call()
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    assert f"lacks '{needs}'" in caught.value.response["Error"]["Message"]


def test_a_function_gets_only_what_its_access_list_names(deps) -> None:  # type: ignore[no-untyped-def]
    settings = get_settings()
    ddb = boto3.client("dynamodb")
    with acting_as("sessions_get", "process"):  # access: sessions:r
        ddb.get_item(TableName=settings.sessions_table, Key=_key())  # granted
        _denied(
            lambda: ddb.get_item(TableName=settings.templates_table, Key={"id": {"S": "x"}}), "templates:r"
        )
        _denied(
            lambda: ddb.put_item(TableName=settings.sessions_table, Item=_key()),
            "sessions:rw",
        )
        _denied(
            lambda: ddb.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": settings.sessions_table,
                            "Key": _key(),
                            "ConditionExpression": "attribute_exists(session_id)",
                        }
                    },
                    {"Put": {"TableName": settings.sessions_table, "Item": _key()}},
                ]
            ),
            "sessions:rw",
        )
        _denied(
            lambda: boto3.client("stepfunctions").start_execution(
                stateMachineArn=settings.launch_state_machine_arn
            ),
            "launch:start",
        )
        _denied(
            lambda: boto3.client("s3").put_object(Bucket=settings.workspace_bucket, Key="k", Body=b"x"),
            "workspace:rw",
        )
    # Outside any function (provisioning, a test's own setup) nothing is checked.
    ddb.put_item(TableName=settings.sessions_table, Item=_key())


def test_the_runtime_grant_brings_what_the_runtime_implies(deps) -> None:  # type: ignore[no-untyped-def]
    settings = get_settings()
    ddb = boto3.client("dynamodb")
    read_nodes = lambda: ddb.get_item(TableName=settings.runtime_nodes_table, Key={"node_id": {"S": "n"}})  # noqa: E731
    with acting_as("schedule_reap_orphans", "docker"):  # `runtime` on docker reads the nodes' endpoints
        read_nodes()
    with acting_as("schedule_reap_orphans", "ecs"):
        _denied(read_nodes, "runtime_nodes:r")
