"""Scalar overrides: strawberry's DateTime, refusing instants PostgreSQL cannot store."""

from __future__ import annotations

import datetime as dt

import dateutil.parser
from strawberry.schema.types.base_scalars import DateTimeDefinition, wrap_parser
from strawberry.types.scalar import ScalarDefinition


def parse_datetime(value: str) -> dt.datetime:
    """ISO 8601, as strawberry parses it, whose UTC instant lies within years 1 to 9999.

    ``0001-01-01T00:00:00+14:00`` parses, but is in year 0 in UTC: asyncpg's encoder raised
    ``OverflowError`` and the request was a 500. Now it is a variable-coercion error."""
    parsed = dateutil.parser.isoparse(value)
    if parsed.tzinfo is not None:
        try:
            parsed.astimezone(dt.UTC)
        except OverflowError:
            raise ValueError("It is outside the supported range (years 1 to 9999 UTC).") from None
    return parsed


DATETIME = ScalarDefinition(
    name=DateTimeDefinition.name,
    description=DateTimeDefinition.description,
    specified_by_url=DateTimeDefinition.specified_by_url,
    serialize=DateTimeDefinition.serialize,
    parse_value=wrap_parser(parse_datetime, "DateTime", exceptions=(ValueError, OverflowError)),
    parse_literal=None,
    origin=dt.datetime,
)
SCALAR_OVERRIDES: dict[object, ScalarDefinition] = {dt.datetime: DATETIME}
