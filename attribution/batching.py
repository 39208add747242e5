"""Batch lookups by id as ``column = ANY($1)`` with one array parameter.

``column IN (...)`` renders one bound parameter per id, so every batch size is a different
SQL string: re-rendered on each call and re-prepared by the driver. ``= ANY(array)`` is one
statement whatever the batch size, so SQLAlchemy's compiled cache and asyncpg's prepared
statement cache both hit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY


def in_ids(column: Any, ids: Iterable[int]) -> ColumnElement[bool]:
    """``column = ANY(:ids)`` for integer ids."""
    return column == any_(bindparam(None, list(ids), type_=ARRAY(BigInteger)))  # type: ignore[no-any-return]
