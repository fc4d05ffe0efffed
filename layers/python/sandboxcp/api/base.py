"""The base of the response bodies (sandboxcp.api.schemas, output_schemas, interactive_schemas)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ResponseModel(BaseModel):
    """A response body whose validator and serializer pydantic builds on first use, not at import: a
    function builds the few models it answers with, not every model of the modules it imports
    (sandboxcp.observability, "Cold start"). Behaviour is otherwise that of BaseModel."""

    model_config = ConfigDict(defer_build=True)
