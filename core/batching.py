"""Batch lookups by id: statements built once, ``column = ANY(:ids)`` with one array parameter.

Building a SQLAlchemy statement and its cache key costs more CPU than running it (about 2 ms
against 0.3 ms for the link-stats query on the bench machine), so loader statements are module
constants executed with ``{"ids": [...]}``. ``= ANY(array)`` also keeps the SQL text the same
whatever the batch size, so asyncpg prepares each statement once per connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.raw_select import RawSelect
from vouch.core.snapshot import snapshot_class


def any_ids(column: Any) -> ColumnElement[bool]:
    """``column = ANY(:ids)``; execute the statement with ``ids_params(ids)``."""
    return column == any_(bindparam("ids", type_=ARRAY(BigInteger)))  # type: ignore[no-any-return]


def ids_params(ids: Iterable[int]) -> dict[str, Any]:
    return {"ids": list(ids)}


# The bound of a nested list that is not a connection (Advocate.rewards, Referral.opportunities,
# Referral.revenue): its most recent rows; the filterable top-level connections have them all.
NESTED_LIST_MAX = 100


class SnapshotsBy:
    """A model's rows whose ``key`` column is one of a batch of ids, grouped by that id, oldest
    (by primary key) first, as read-only snapshots: one prebuilt driver statement for the
    dataloaders that every widget load or page runs. ``where`` narrows it further."""

    def __init__(
        self, model: Any, key: str, *where: ColumnElement[bool], newest: int | None = None
    ) -> None:
        table = model.__table__
        self.row = snapshot_class(model)
        self.key = key
        if newest is None:
            statement = select(*table.columns).where(any_ids(table.c[key]), *where)
            self.statement = RawSelect(statement.order_by(table.c.id))
            return
        # At most ``newest`` rows per id: the most recent ones, still oldest first.
        rank = func.row_number().over(partition_by=table.c[key], order_by=table.c.id.desc())
        ranked = (
            select(*table.columns, rank.label("recency"))
            .where(any_ids(table.c[key]), *where)
            .subquery()
        )
        self.statement = RawSelect(
            select(*(ranked.c[c.name] for c in table.columns))
            .where(ranked.c.recency <= newest)
            .order_by(ranked.c.id)
        )

    async def fetch(self, session: AsyncSession, ids: Sequence[int]) -> dict[int, list[Any]]:
        """Every id of ``ids`` maps to its rows (an empty list when it has none)."""
        grouped: dict[int, list[Any]] = {i: [] for i in ids}
        for record in await self.statement.fetch(session, ids_params(set(ids))):
            row = self.row._make(record)
            grouped[getattr(row, self.key)].append(row)
        return grouped
