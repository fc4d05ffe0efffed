"""``Record``: a small immutable value class, what ``@dataclass(frozen=True)`` gave the modules an idle agent
imports, without importing ``dataclasses`` (and ``inspect``, ``ast``, ``dis``, ``tokenize`` with it: about
1.4 MB of every sandbox's memory, docs/capacity.md).

A subclass lists its fields in ``__slots__ = __match_args__ = (...)`` (in order: ``__match_args__``, as a
dataclass sets it) and sets them in ``__init__`` with ``_init``. It
compares equal to an instance of the same class with equal fields, hashes like the tuple of its fields and
prints as ``Name(field=value, ...)``, as a frozen dataclass does; assigning to a field raises
``AttributeError``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats this name as True)
if TYPE_CHECKING:
    from typing import Any


class Record:
    __slots__: tuple[str, ...] = ()
    __match_args__: tuple[str, ...] = ()

    def _init(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__qualname__}({fields})"
