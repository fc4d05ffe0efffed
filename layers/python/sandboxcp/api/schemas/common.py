"""What every response body shares. Bodies are shaped as reference/control-plane-api.yaml says.

A field the contract types as a string (not nullable) is left out while it has no value (`runtime_node`,
`container_id` and `pod_name` before the sandbox runs, a template's `base_image`, a container's `node_name`)
rather than answered `null`. Fields this API adds (`error_message`, `started_at`, ...) are `null` then."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema, field_serializer

from sandboxcp.api.base import ResponseModel
from sandboxcp.domain.clock import iso


def is_none(value: Any) -> bool:
    return value is None


# A contract string that is omitted, never null, while unknown (the schema says: optional string).


OptionalString = Annotated[str | None, Field(exclude_if=is_none), WithJsonSchema({"type": "string"})]


class TimedResponse(ResponseModel):
    """A body whose datetimes are answered as the contract's ISO 8601 UTC strings (clock.iso)."""

    @field_serializer("*", when_used="json")
    def _times(self, v: Any) -> Any:
        return iso(v) if isinstance(v, datetime) else v


NEXT_TOKEN_DOC = (
    "Opaque cursor of the next page (null on the last): pass it as `next_token`, without `offset`, with the "
    "same filters"
)


class MessageResponse(ResponseModel):
    message: str
