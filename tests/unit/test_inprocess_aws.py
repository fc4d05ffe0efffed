"""inprocess_aws: this process's DynamoDB calls reach the moto server's backends without HTTP, with the
same answers (data and errors) as over HTTP, and uninstall restores HTTP."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.moto_server.werkzeug_app import MotoRequestHandler
from moto.server import ThreadedMotoServer
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from sandboxcp.local import inprocess_aws
from sandboxcp.local.aws import REGION


class Counter:
    def __init__(self) -> None:
        self.requests = 0


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Counter]]:
    """A moto server on loopback, and how many requests reached it over its socket."""
    counter = Counter()
    make_environ = MotoRequestHandler.make_environ

    def counting(self: MotoRequestHandler) -> dict[str, Any]:
        counter.requests += 1
        return make_environ(self)

    monkeypatch.setattr(MotoRequestHandler, "make_environ", counting)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.get_host_and_port()[1]}", counter
    finally:
        inprocess_aws.uninstall()
        server.stop()


def new_session() -> boto3.session.Session:
    # A fresh session each time: botocore sessions take the builtin handlers when they are created.
    return boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION)


def ddb(endpoint: str) -> Any:
    return new_session().client("dynamodb", endpoint_url=endpoint)


def model_for(endpoint: str, table: str) -> Any:
    class Item(Model):
        class Meta:
            table_name = table
            host = endpoint
            region = REGION
            aws_access_key_id = "local"
            aws_secret_access_key = "local"

        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        n = NumberAttribute(default=0)

    return Item


def comparable(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def exercise(client: Any, table: str, pk: str) -> dict[str, Any]:
    """Put, get, query and a TransactWriteItems cancelled by its condition; what came back."""
    client.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "a"}, "n": {"N": "1"}})
    client.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "b"}, "n": {"N": "2"}})
    out: dict[str, Any] = {
        "get": comparable(client.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "a"}})),
        "query": comparable(
            client.query(
                TableName=table,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": pk}},
            )
        ),
    }
    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": pk}, "sk": {"S": "c"}, "n": {"N": "3"}}}},
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"pk": {"S": pk}, "sk": {"S": "a"}, "n": {"N": "9"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    error = cancelled.value.response
    out["transaction"] = {
        "code": error["Error"]["Code"],
        "status": error["ResponseMetadata"]["HTTPStatusCode"],
        "reasons": error.get("CancellationReasons"),
    }
    return out


def exercise_model(item: Any, pk: str) -> dict[str, Any]:
    item(pk, "m", n=5).save()
    got = item.get(pk, "m")
    with (
        pytest.raises(TransactWriteError) as cancelled,
        TransactWrite(connection=Connection(region=REGION, host=item.Meta.host)) as tx,
    ):
        tx.save(item(pk, "m2", n=6))
        tx.save(item(pk, "m", n=7), condition=item.pk.does_not_exist())
    return {
        "get": got.attribute_values,
        "query": [i.attribute_values for i in item.query(pk)],
        "cancelled": (
            cancelled.value.cause_response_code,
            [r and r.code for r in cancelled.value.cancellation_reasons],
        ),
    }


def create_table(client: Any, table: str) -> None:
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def test_dynamodb_in_process_answers_as_http_does(
    moto: tuple[str, Counter], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, counter = moto
    for name, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}.items():
        monkeypatch.setenv(name, value)
    table = f"t-{uuid.uuid4().hex}"
    http = ddb(endpoint)  # made before install: always over HTTP
    create_table(http, table)
    over_http = exercise(http, table, "http")
    assert counter.requests > 0  # the counter sees HTTP requests

    inprocess_aws.install(endpoint)
    local = ddb(endpoint)
    item = model_for(endpoint, table)
    before = counter.requests
    in_process = exercise(local, table, "local")
    model_in_process = exercise_model(item, "model")
    assert local.describe_table(TableName=table)["Table"]["TableName"] == table
    assert counter.requests == before, "an in-process call went over HTTP"

    # (a) the same answers, errors included, and the data is the server's: each side sees the other's.
    assert in_process == {
        "get": {"Item": {**over_http["get"]["Item"], "pk": {"S": "local"}}},
        "query": {
            **over_http["query"],
            "Items": [{**i, "pk": {"S": "local"}} for i in over_http["query"]["Items"]],
        },
        "transaction": over_http["transaction"],
    }
    assert in_process["transaction"]["code"] == "TransactionCanceledException"
    assert [r["Code"] for r in in_process["transaction"]["reasons"]] == ["None", "ConditionalCheckFailed"]
    assert model_in_process["cancelled"] == ("TransactionCanceledException", [None, "ConditionalCheckFailed"])
    assert model_in_process["get"] == {"pk": "model", "sk": "m", "n": 5}
    assert model_in_process["query"] == [{"pk": "model", "sk": "m", "n": 5}]
    assert http.scan(TableName=table)["Count"] == 5  # http a, b; local a, b; model m
    assert local.get_item(TableName=table, Key={"pk": {"S": "http"}, "sk": {"S": "b"}})["Item"]["n"] == {
        "N": "2"
    }

    # A pynamodb model's calls over HTTP (no install) see the same, and so does uninstall.
    before = counter.requests
    inprocess_aws.uninstall()
    assert exercise_model(item, "after") == {
        **model_in_process,
        "get": {"pk": "after", "sk": "m", "n": 5},
        "query": [{"pk": "after", "sk": "m", "n": 5}],
    }
    after_model = counter.requests
    assert after_model > before  # (c) clients made while installed are back on HTTP
    assert exercise(ddb(endpoint), table, "later")["transaction"] == over_http["transaction"]
    assert local.get_item(TableName=table, Key={"pk": {"S": "later"}, "sk": {"S": "a"}})["Item"]
    assert counter.requests > after_model  # (c) and new ones too


def test_other_services_and_endpoints_stay_on_http(moto: tuple[str, Counter]) -> None:
    endpoint, counter = moto
    inprocess_aws.install(endpoint)
    session = new_session()
    before = counter.requests
    session.client("s3", endpoint_url=endpoint).list_buckets()
    assert counter.requests == before + 1
    # DynamoDB at another address than the moto server's is not intercepted.
    once = Config(retries={"total_max_attempts": 1})
    with socket.socket() as held:  # bound, never listening: a connection there is refused, and the port
        held.bind(("127.0.0.1", 0))  # stays ours while the test runs
        other = session.client(
            "dynamodb", endpoint_url=f"http://127.0.0.1:{held.getsockname()[1]}", config=once
        )
        with pytest.raises(Exception, match="Could not connect"):
            other.list_tables()


def test_a_moto_failure_is_a_500_that_botocore_retries(moto: tuple[str, Counter]) -> None:
    """As from the moto server, whose werkzeug answers 500 when moto raises (e.g. a race in moto)."""
    endpoint, _ = moto
    real = inprocess_aws.backend_app("dynamodb")
    failures = {"left": 1}

    def flaky(environ: dict[str, Any], start_response: Any) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("dictionary changed size during iteration")
        return real(environ, start_response)

    inprocess_aws.install(endpoint, flaky)
    listed = ddb(endpoint).list_tables()
    assert failures["left"] == 0 and listed["ResponseMetadata"]["RetryAttempts"] == 1

    failures["left"] = 99
    twice = Config(retries={"total_max_attempts": 2})
    with pytest.raises(ClientError) as failed:
        new_session().client("dynamodb", endpoint_url=endpoint, config=twice).list_tables()
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert failures["left"] == 97
