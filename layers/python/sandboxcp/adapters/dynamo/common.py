"""Helpers shared by the DynamoDB repositories."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel
from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.models import Model

CONDITION_FAILED = "ConditionalCheckFailedException"
M = TypeVar("M", bound=Model)
D = TypeVar("D", bound=BaseModel)


def condition_failed(err: Exception) -> bool:
    return getattr(err, "cause_response_code", None) == CONDITION_FAILED


def update_if(
    model: type[Model], key: str, actions: list[Any], condition: Any, *, return_values: str = "NONE"
) -> dict[str, Any] | None:
    """One conditional UpdateItem on `model`'s table by hash key: DynamoDB's answer (its `Attributes` with
    `return_values`), or None when the condition failed."""
    try:
        answer: dict[str, Any] = model._get_connection().connection.update_item(
            model.Meta.table_name, key, actions=actions, condition=condition, return_values=return_values
        )
    except UpdateError as err:
        if condition_failed(err):
            return None
        raise
    return answer


def get_item(model: type[M], key: str) -> M | None:
    try:
        return model.get(key, consistent_read=True)
    except DoesNotExist:
        return None


def update_actions(model: type[Model], fields: Mapping[str, Any]) -> list[Any]:
    """pynamodb update actions: set each field, or remove it when the value is None."""
    acts = []
    for name, value in fields.items():
        attr = getattr(model, name)
        acts.append(attr.remove() if value is None else attr.set(value))
    return acts


def page_slice(results: Iterable[M], limit: int, offset: int) -> list[M]:
    out: list[M] = []
    for i, item in enumerate(results):
        if i >= offset + limit:
            break
        if i >= offset:
            out.append(item)
    return out


PageKey = dict[str, dict[str, str]]  # DynamoDB's LastEvaluatedKey / ExclusiveStartKey (string keys only)


def query_page(
    index: Any,
    hash_value: str,
    *,
    key_attrs: tuple[str, ...],
    hash_attr: str,
    limit: int,
    offset: int = 0,
    start_key: PageKey | None = None,
    filter_condition: Any = None,
    scan_index_forward: bool = False,
    with_total: bool = True,
) -> tuple[list[Any], int, PageKey | None]:
    """One page of an index Query: (items, total or -1, the key to continue after, None on the last page).

    From `start_key` (a key this function returned, for the same index and `hash_value`) the Query starts
    right after it, so a page reads about `limit` items (plus what a filter drops) whatever its position:
    O(page), where `offset` reads and drops everything before it. `key_attrs` names the key attributes
    (the table's and the index's); a start key of any other shape or partition is refused (400)."""
    from sandboxcp.domain.errors import InvalidParameter

    if start_key is not None:
        shape_ok = set(start_key) == set(key_attrs) and all(
            isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) and 0 < len(v["S"]) <= 2048
            for v in start_key.values()
        )
        if not shape_ok or start_key[hash_attr]["S"] != hash_value:
            raise InvalidParameter("next_token does not belong to this listing")
    total = int(index.count(hash_value, filter_condition=filter_condition)) if with_total else -1
    wanted = offset + limit + 1  # one more than the page: is there a next one?
    rows = index.query(
        hash_value,
        filter_condition=filter_condition,
        scan_index_forward=scan_index_forward,
        last_evaluated_key=start_key,
        limit=wanted,
        page_size=min(wanted, 1000),
    )
    items = list(itertools.islice(rows, offset, wanted))  # stops at `wanted`: no further page is read
    if len(items) <= limit:
        return items, total, None
    items = items[:limit]
    last = items[-1]
    attributes = type(last).get_attributes()
    next_key = {name: {"S": str(attributes[name].serialize(getattr(last, name)))} for name in key_attrs}
    return items, total, next_key


def record_fields(entity: type[BaseModel], *, exclude: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The fields of a domain entity that its table stores as attributes of the same name."""
    return tuple(name for name in entity.model_fields if name not in exclude)


def from_record(entity: type[D], record: Model, fields: Iterable[str], **extra: Any) -> D:
    """The entity from a record's attributes of the same names. A missing attribute (None) takes the
    entity's default, so attributes added to a table later read back as their defaults."""
    values = {name: value for name in fields if (value := getattr(record, name)) is not None}
    return entity.model_validate({**values, **extra})
