"""powertools Idempotency's DynamoDB persistence layer, on one DynamoDB client per process.

Without a client, each persistence layer makes a new boto3 Session and a client from it, loading
botocore's service data from disk again (tens of milliseconds of CPU). Lambda builds a layer once per
instance; the local stack, which adds a copy of a function module for each concurrent request (Lambda
scaling out, sandboxcp.local.functions), built one per copy, and a burst of 100 result callbacks spent
most of its CPU there (bench/load_sessions.py). boto3 clients are thread-safe; the layers are not shared
(their state is their idempotent function's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandboxcp.once import cache_once

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer


@cache_once
def _client() -> Any:
    import boto3

    return boto3.client("dynamodb")


def persistence_layer(table_name: str) -> DynamoDBPersistenceLayer:
    """A new persistence layer on `table_name` over the process's DynamoDB client."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(table_name=table_name, boto3_client=_client())
