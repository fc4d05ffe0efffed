"""The base of every request body model, and the checks free-form JSON values share.

A request body is validated before anything is recorded, so whatever passes here can be stored (DynamoDB
items, S3 objects) and handed to the executor without failing later:
- unknown fields are refused (a misspelt `timeuot` is an error, not a silently ignored field);
- types are strict: an integer is a JSON integer (not `"60"`, `60.0` or `true`), a boolean is `true` or
  `false`, a string is a string;
- no number anywhere in the body is NaN, Infinity or out of range (`1e400`), and no string is an unpaired
  surrogate: free-form objects (`event`, `security_context`, ...) are walked too.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, model_validator

from sandbox_executor.contract import json_size, json_value_problem
from sandboxcp.domain.base import DomainModel


class JsonBody(DomainModel):
    """Finite numbers and Unicode strings anywhere in the body. The executor's callbacks use this alone:
    they ignore fields they do not know, since executor images and the control plane deploy separately."""

    model_config = ConfigDict(allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _json_values(cls, data: Any) -> Any:
        if isinstance(data, dict) and (problem := json_value_problem(data)):
            raise ValueError(problem)
        return data


class RequestBody(JsonBody):
    """A public request body: also strict types and no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def check_json_object(value: dict[str, Any], name: str, max_bytes: int) -> dict[str, Any]:
    """A free-form JSON object field: finite numbers, Unicode strings, at most `max_bytes` as compact JSON."""
    if problem := json_value_problem(value, name):
        raise ValueError(problem)
    size = json_size(value)
    if size > max_bytes:
        raise ValueError(f"'{name}' is {size:,} bytes as JSON; the limit is {max_bytes:,} bytes")
    return value
