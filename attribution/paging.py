"""Keyset pagination shared by every list query: one statement for the page, one for the count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

RowT = TypeVar("RowT")


@dataclass(frozen=True, slots=True)
class Page(Generic[RowT]):
    items: list[RowT]
    total: int
    has_next: bool


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    *,
    key: InstrumentedAttribute[int],
    first: int,
    after: int | None,
    descending: bool = False,
) -> Page[RowT]:
    """A page of ``stmt`` ordered by the integer ``key``, after the cursor position ``after``."""
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    paged: Select[Any] = stmt
    if after is not None:
        paged = paged.where(key < after if descending else key > after)
    paged = paged.order_by(key.desc() if descending else key.asc()).limit(first + 1)
    rows = list((await session.scalars(paged)).all())
    return Page(items=rows[:first], total=int(total or 0), has_next=len(rows) > first)
