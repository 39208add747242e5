"""GraphQL objects that compute their fields from a database row when first read.

A page of 50 referrals with advocate, link and redemption nested is 200 objects; built eagerly,
each computes every field (a referral has 22, an advocate 19) although a query selects a few.
A row-backed type keeps the row and computes a field the first time GraphQL (or code) reads it,
then keeps the value on the instance like a normal attribute. The types stay ordinary
strawberry types: the schema, the SDL and the normal constructor are unchanged.

The fields are non-data descriptors installed on the class after strawberry has read it, not a
``__getattr__``: GraphQL probes every object for ``__await__``, and a ``__getattr__`` would
answer each probe by raising an exception in Python (~1 µs, 200 times a page).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self, TypeVar, cast

T = TypeVar("T")


class _Computed:
    __slots__ = ("compute", "name")

    def __init__(self, name: str, compute: Callable[[Any], Any]) -> None:
        self.name = name
        self.compute = compute

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = self.compute(instance)
        instance.__dict__[self.name] = value  # later reads find it before the descriptor
        return value


class RowBacked:
    """Mixin for strawberry types: ``cls.lazy(_m=row, …)`` stores what the fields are computed
    from; ``computed_fields(cls, {...})`` says how each field is computed."""

    FIELDS: Mapping[str, Callable[[Any], Any]] = {}

    @classmethod
    def lazy(cls, **sources: Any) -> Self:
        instance = object.__new__(cls)
        instance.__dict__.update(sources)
        return instance


def computed_fields(cls: type[RowBacked], fields: Mapping[str, Callable[[Any], Any]]) -> None:
    """Install ``fields`` (Python name -> ``fn(instance) -> value``) on a row-backed type."""
    for name, compute in fields.items():
        if name in vars(cls):  # a default value: the dataclass would use it, not the row
            raise TypeError(f"{cls.__name__}.{name} has a class attribute; it cannot be computed")
        setattr(cls, name, _Computed(name, compute))
    cls.FIELDS = dict(fields)


def later(awaitable: Awaitable[T]) -> T:
    """A plain resolver's answer that still has to be loaded.

    graphql-core awaits whatever awaitable a resolver returns, so a plain (``def``) resolver can
    answer at once when its data came preloaded with the object and with an awaitable
    otherwise; the immediate answer skips the task and future machinery an ``async def``
    resolver costs on every call. Typed as the value because strawberry reads a resolver's
    return annotation as the field's GraphQL type."""
    return cast(T, awaitable)
