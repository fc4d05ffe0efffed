"""moto_transactions: a cancelled TransactWriteItems leaves every item as it was (puts, updates and deletes
undone, cancellation reasons as moto gives them), a committed one applies, and no table is copied for it."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models.table import Table

from sandboxcp.local import moto_transactions


@pytest.fixture
def table() -> Iterator[Any]:
    moto_transactions.install()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for name in ("a", "c", "d"):
            ddb.put_item(TableName="t", Item={"pk": {"S": name}, "sk": {"S": "1"}, "n": {"N": "1"}})
        yield ddb


def _key(name: str) -> dict[str, Any]:
    return {"pk": {"S": name}, "sk": {"S": "1"}}


def _items(ddb: Any) -> dict[str, str]:
    return {i["pk"]["S"]: i["n"]["N"] for i in ddb.scan(TableName="t")["Items"]}


def _writes(condition_on_d: str) -> list[dict[str, Any]]:
    return [
        {"Update": {"TableName": "t", "Key": _key("a"), "UpdateExpression": "SET n = n + :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        {"Put": {"TableName": "t", "Item": {**_key("b"), "n": {"N": "7"}}}},
        {"Delete": {"TableName": "t", "Key": _key("c")}},
        {"ConditionCheck": {"TableName": "t", "Key": _key("d"), "ConditionExpression": condition_on_d,
                            "ExpressionAttributeValues": {":one": {"N": "1"}}}},
    ]  # fmt: skip


def test_a_cancelled_transaction_leaves_every_item_as_it_was(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    copied: list[Any] = []
    real = copy.deepcopy
    monkeypatch.setattr(copy, "deepcopy", lambda v, memo=None: (copied.append(v), real(v, memo))[1])
    with pytest.raises(ClientError) as err:
        table.transact_write_items(TransactItems=_writes("n > :one"))
    assert err.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in err.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
    assert _items(table) == {"a": "1", "c": "1", "d": "1"}
    assert not [v for v in copied if isinstance(v, Table)], "a table was copied for a transaction"


def test_a_committed_transaction_applies(table: Any) -> None:
    table.transact_write_items(TransactItems=_writes("n = :one"))
    assert _items(table) == {"a": "2", "b": "7", "d": "1"}


def test_a_table_backup_outside_a_transaction_still_copies(table: Any) -> None:
    from moto.dynamodb.models import copy as seen_by_moto

    original = Table(
        "x",
        account_id="123456789012",
        region="us-east-1",
        schema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        attr=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    assert seen_by_moto.deepcopy(original) is not original
