"""Reading asks: filtered pages, one ask, and the batched reads behind the widget's and the
console's next-ask views (open asks, recent asks per advocate)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy.ask_policy import OPEN
from vouch.core.batching import SnapshotsBy
from vouch.core.errors import NotFound
from vouch.core.paging import Page, paginate
from vouch.models import Ask
from vouch.models.snapshots import AskSnapshot


@dataclass(frozen=True, slots=True)
class AskFilter:
    advocate_id: int | None = None
    program_id: int | None = None
    # Already validated against AskStatus / AskType / Team at the edge.
    status: str | None = None
    type: str | None = None
    team: str | None = None
    moment: str | None = None


async def list_asks(
    session: AsyncSession,
    flt: AskFilter,
    *,
    first: int,
    after: int | None,
    before: int | None = None,
    from_end: bool = False,
) -> Page[Ask]:
    """Asks, newest first."""
    stmt = select(Ask)
    if flt.advocate_id is not None:
        stmt = stmt.where(Ask.advocate_id == flt.advocate_id)
    if flt.program_id is not None:
        stmt = stmt.where(Ask.program_id == flt.program_id)
    if flt.status is not None:
        stmt = stmt.where(Ask.status == flt.status)
    if flt.type is not None:
        stmt = stmt.where(Ask.type == flt.type)
    if flt.team is not None:
        stmt = stmt.where(Ask.team == flt.team)
    if flt.moment is not None:
        stmt = stmt.where(Ask.moment == flt.moment)
    return await paginate(
        session,
        stmt,
        key=Ask.id,
        first=first,
        after=after,
        before=before,
        from_end=from_end,
        descending=True,
    )


async def get_ask(session: AsyncSession, ask_id: int) -> Ask:
    ask = await session.get(Ask, ask_id)
    if ask is None:
        raise NotFound("no such ask", field="id")
    return ask


# An ask still open (queued, sent or accepted), as a prebuilt statement's condition.
IS_OPEN = Ask.status == any_(bindparam("open", [str(s) for s in OPEN], type_=ARRAY(String)))
_OPEN_ASKS = SnapshotsBy(Ask, "advocate_id", IS_OPEN)


async def open_asks_for(
    session: AsyncSession, advocate_ids: Sequence[int]
) -> dict[int, list[AskSnapshot]]:
    """Open asks per advocate in one statement (for the next-ask dataloader), as read-only
    snapshots: every widget load reads them."""
    return await _OPEN_ASKS.fetch(session, advocate_ids)


async def recent_asks_for(
    session: AsyncSession, advocate_ids: Sequence[int], *, limit: int = 20
) -> dict[int, list[Ask]]:
    """The latest ``limit`` asks per advocate, newest first, in one statement."""
    result: dict[int, list[Ask]] = {pk: [] for pk in advocate_ids}
    if not advocate_ids:
        return result
    ranked = (
        select(
            Ask.id,
            func.row_number().over(partition_by=Ask.advocate_id, order_by=Ask.id.desc()).label("n"),
        )
        .where(Ask.advocate_id.in_(set(advocate_ids)))
        .subquery()
    )
    rows = await session.scalars(
        select(Ask)
        .join(ranked, ranked.c.id == Ask.id)
        .where(ranked.c.n <= limit)
        .order_by(Ask.id.desc())
    )
    for ask in rows:
        result[ask.advocate_id].append(ask)
    return result
