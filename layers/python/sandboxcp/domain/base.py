"""The base of the domain's pydantic models (and of the API's response bodies, sandboxcp.api.base)."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class DomainModel(BaseModel):
    """A model whose validator and serializer pydantic builds on first use, not when its class is defined:
    a function pays for the models its path touches, not for every model of the modules it imports (the
    request models of every operation, the runtime's and the executor client's). Behaviour is otherwise
    that of BaseModel; a subclass's own model_config merges with this one.

    First use includes an instance made without the class's own validator: a nested field validated by
    its parent's schema, `model_construct`, unpickling. pydantic-core serializes such an instance, when it
    infers its type (an `Any` field, a serializer returning it), with its class's serializer, and a class
    never built has only a placeholder there (TypeError "'MockValSer' object is not an instance of
    'SchemaSerializer'", pydantic/pydantic#13647). So each of those ways builds the class first."""

    model_config = ConfigDict(defer_build=True)

    def model_post_init(self, context: Any, /) -> None:
        _build(type(self))

    @classmethod
    def model_construct(cls, _fields_set: set[str] | None = None, **values: Any) -> Self:
        _build(cls)
        return super().model_construct(_fields_set, **values)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        _build(type(self))
        super().__setstate__(state)


def _build(cls: type[BaseModel]) -> None:
    if not cls.__pydantic_complete__:
        # The names its annotations use resolve in its module (and the namespace kept at definition).
        cls.model_rebuild(_parent_namespace_depth=0)
