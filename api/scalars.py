"""Scalar overrides: strawberry's DateTime, refusing instants PostgreSQL cannot store."""

from __future__ import annotations

import datetime as dt

from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition

_parse_iso = DateTimeDefinition.parse_value


def parse_datetime(value: object) -> object:
    """Strawberry's DateTime parsing, plus: the UTC instant lies within years 1 to 9999.

    ``0001-01-01T00:00:00+14:00`` parses, but is in year 0 in UTC: asyncpg's encoder raised
    ``OverflowError`` and the request was a 500. Now it is a variable-coercion error."""
    assert _parse_iso is not None
    parsed = _parse_iso(value)
    if isinstance(parsed, dt.datetime) and parsed.tzinfo is not None:
        try:
            parsed.astimezone(dt.UTC)
        except OverflowError:
            raise StrawberryInputCoercionError(
                f'Value cannot represent a DateTime: "{value}". '
                "It is outside the supported range (years 1 to 9999 UTC)."
            ) from None
    return parsed


DATETIME = ScalarDefinition(
    name=DateTimeDefinition.name,
    description=DateTimeDefinition.description,
    specified_by_url=DateTimeDefinition.specified_by_url,
    serialize=DateTimeDefinition.serialize,
    parse_value=parse_datetime,
    parse_literal=None,
    origin=dt.datetime,
)
SCALAR_OVERRIDES: dict[object, ScalarDefinition] = {dt.datetime: DATETIME}
