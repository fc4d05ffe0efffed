"""Helpers shared by the DynamoDB repositories."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

CONDITION_FAILED = "ConditionalCheckFailedException"
M = TypeVar("M", bound=Model)
D = TypeVar("D", bound=BaseModel)


def condition_failed(err: Exception) -> bool:
    return getattr(err, "cause_response_code", None) == CONDITION_FAILED


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


def record_fields(entity: type[BaseModel], *, exclude: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The fields of a domain entity that its table stores as attributes of the same name."""
    return tuple(name for name in entity.model_fields if name not in exclude)


def from_record(entity: type[D], record: Model, fields: Iterable[str], **extra: Any) -> D:
    """The entity from a record's attributes of the same names. A missing attribute (None) takes the
    entity's default, so attributes added to a table later read back as their defaults."""
    values = {name: value for name in fields if (value := getattr(record, name)) is not None}
    return entity.model_validate({**values, **extra})
