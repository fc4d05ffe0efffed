"""DynamoDB tables derived from the pynamodb models, so deployed key schemas and the code never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct
from pynamodb.models import Model

from sandboxcp.adapters.tables import TABLES
from sandboxcp_infra.naming import env_var, pascal

IDEMPOTENCY = "idempotency"
# Powertools' DynamoDBPersistenceLayer defaults: partition key `id`, expiry epoch in `expiration`.
IDEMPOTENCY_KEY = "id"
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"
# The models' expiry attribute (epoch seconds, set by the code when e.g. a session or execution ends): on
# every table whose model has it, DynamoDB deletes items once it has passed, so history stays bounded.
TTL_ATTRIBUTE = "expires_at"


def ttl_attribute(model: type[Model]) -> str | None:
    return TTL_ATTRIBUTE if TTL_ATTRIBUTE in model.get_attributes() else None


_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}
_PROJECTIONS = {
    "ALL": dynamodb.ProjectionType.ALL,
    "KEYS_ONLY": dynamodb.ProjectionType.KEYS_ONLY,
    "INCLUDE": dynamodb.ProjectionType.INCLUDE,
}


@dataclass(frozen=True)
class IndexSchema:
    name: str
    partition_key: dynamodb.Attribute
    sort_key: dynamodb.Attribute | None
    projection: dynamodb.ProjectionType
    non_key_attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSchema:
    partition_key: dynamodb.Attribute
    sort_key: dynamodb.Attribute | None
    global_indexes: tuple[IndexSchema, ...]
    local_indexes: tuple[IndexSchema, ...]


def table_schema(model: type[Model]) -> TableSchema:
    """Read a model's keys and indexes through pynamodb's own CreateTable schema."""
    schema: dict[str, Any] = dict(model._get_schema())
    types = {a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]}
    hash_key, range_key = _keys(schema["key_schema"], types)
    return TableSchema(
        partition_key=hash_key,
        sort_key=range_key,
        global_indexes=tuple(_index(i, types) for i in schema.get("global_secondary_indexes", [])),
        local_indexes=tuple(_index(i, types) for i in schema.get("local_secondary_indexes", [])),
    )


def _keys(
    key_schema: list[dict[str, str]], types: dict[str, str]
) -> tuple[dynamodb.Attribute, dynamodb.Attribute | None]:
    # pynamodb lists an index's keys in attribute order, not HASH first: go by KeyType.
    by_type = {
        k["KeyType"]: dynamodb.Attribute(
            name=k["AttributeName"], type=_ATTRIBUTE_TYPES[types[k["AttributeName"]]]
        )
        for k in key_schema
    }
    return by_type["HASH"], by_type.get("RANGE")


def _index(index: dict[str, Any], types: dict[str, str]) -> IndexSchema:
    hash_key, range_key = _keys(index["key_schema"], types)
    projection = index["projection"]
    return IndexSchema(
        name=index["index_name"],
        partition_key=hash_key,
        sort_key=range_key,
        projection=_PROJECTIONS[projection["ProjectionType"]],
        non_key_attributes=tuple(projection.get("NonKeyAttributes", ())),
    )


class DataTables(Construct):
    """One on-demand, encrypted, point-in-time-recoverable table per model, plus powertools' idempotency
    table.

    `tables` maps the logical names the route table's access strings use (sessions, executions, templates,
    api_keys, idempotency) to tables; `environment` maps each Settings env var to its table's name."""

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.tables: dict[str, dynamodb.Table] = {}
        self.environment: dict[str, str] = {}
        # No deletion protection: it would also stop the rollback of a failed first deploy from removing
        # the new tables. RetainExceptOnCreate keeps them on updates and stack deletion instead.
        retain = False

        for name, (model, settings_field) in TABLES.items():
            schema = table_schema(model)
            table = self._table(
                pascal(name),
                schema.partition_key,
                schema.sort_key,
                removal_policy,
                retain,
                time_to_live_attribute=ttl_attribute(model),
            )
            for gsi in schema.global_indexes:
                table.add_global_secondary_index(
                    index_name=gsi.name,
                    partition_key=gsi.partition_key,
                    sort_key=gsi.sort_key,
                    projection_type=gsi.projection,
                    non_key_attributes=list(gsi.non_key_attributes) or None,
                )
            for lsi in schema.local_indexes:
                if lsi.sort_key is None:
                    raise ValueError(f"{model.__name__}: local index {lsi.name} needs a range key")
                table.add_local_secondary_index(
                    index_name=lsi.name,
                    sort_key=lsi.sort_key,
                    projection_type=lsi.projection,
                    non_key_attributes=list(lsi.non_key_attributes) or None,
                )
            self._register(name, settings_field, table)

        idempotency = self._table(
            pascal(IDEMPOTENCY),
            dynamodb.Attribute(name=IDEMPOTENCY_KEY, type=dynamodb.AttributeType.STRING),
            None,
            # Idempotency records expire within hours; nothing in them is worth keeping after the stack.
            RemovalPolicy.DESTROY,
            retain=False,
            time_to_live_attribute=IDEMPOTENCY_TTL_ATTRIBUTE,
        )
        self._register(IDEMPOTENCY, "idempotency_table", idempotency)

    def _table(
        self,
        construct_id: str,
        partition_key: dynamodb.Attribute,
        sort_key: dynamodb.Attribute | None,
        removal_policy: RemovalPolicy,
        retain: bool,
        time_to_live_attribute: str | None = None,
    ) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            construct_id,
            partition_key=partition_key,
            sort_key=sort_key,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=time_to_live_attribute,
            removal_policy=removal_policy,
            deletion_protection=retain,
        )

    def _register(self, name: str, settings_field: str, table: dynamodb.Table) -> None:
        self.tables[name] = table
        self.environment[env_var(settings_field)] = table.table_name
