"""Rows by primary key for ``node(id:)`` and ``nodes(ids:)``: one statement per type asked for.

Which rows a caller may see is decided at the edge (``api.queries.node``), from the row's
advocate; this only reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.models.base import Base


async def rows_by_ids(
    session: AsyncSession, model: type[Base], ids: Sequence[int]
) -> dict[int, Any]:
    """The rows of ``model`` with these ids, by id (missing ids are absent)."""
    if not ids:
        return {}
    key: Any = model.id  # type: ignore[attr-defined]
    rows = await session.scalars(select(model).where(key.in_(sorted(set(ids)))))
    return {row.id: row for row in rows}  # type: ignore[attr-defined]
