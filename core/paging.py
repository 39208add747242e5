"""Keyset pagination shared by every list query: one statement for the page, one for the count.

A page is ``first`` items after the position ``after`` (and before ``before``), in the list's
order; with ``from_end`` (Relay's ``last``) it is the ``first`` items closest to ``before`` (or to
the end), still returned in the list's order. Positions are the integer key of an item.
"""

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
    # Relay's rule: paging forward, an ``after`` cursor means there is something before it.
    has_previous: bool = False


def page_flags(
    more: bool, *, after: int | None, before: int | None, from_end: bool
) -> dict[str, bool]:
    """``has_next`` and ``has_previous`` of a page whose query found ``more`` items beyond it."""
    if from_end:
        return {"has_next": before is not None, "has_previous": more}
    return {"has_next": more, "has_previous": after is not None}


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    *,
    key: InstrumentedAttribute[int],
    first: int,
    after: int | None,
    descending: bool = False,
    before: int | None = None,
    from_end: bool = False,
) -> Page[RowT]:
    """A page of ``stmt`` ordered by the integer ``key`` (see the module docstring)."""
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    paged: Select[Any] = stmt
    if after is not None:
        paged = paged.where(key < after if descending else key > after)
    if before is not None:
        paged = paged.where(key > before if descending else key < before)
    scan_descending = descending != from_end
    paged = paged.order_by(key.desc() if scan_descending else key.asc()).limit(first + 1)
    rows = list((await session.scalars(paged)).all())
    items = rows[:first]
    if from_end:
        items.reverse()
    flags = page_flags(len(rows) > first, after=after, before=before, from_end=from_end)
    return Page(items=items, total=int(total or 0), **flags)
