"""Referrals, read side: lookups for dataloaders and the filtered, paged list.

The list query joins each referral's advocate, link and offer redemption into the page
statement, so a page with those nested costs one statement plus the count, whatever its size.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from attribution.batching import any_ids, ids_params
from core.db import RawSelect
from core.errors import NotFound, ValidationFailed
from models import Advocate, OfferRedemption, Referral, ReferralLink
from models.snapshot import snapshot_class

MAX_NESTED_REFERRALS = 100


@dataclass(frozen=True, slots=True)
class ReferralFilter:
    status: tuple[str, ...] = ()
    program_id: int | None = None
    advocate_id: int | None = None
    link_id: int | None = None
    flagged: bool | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReferralRow:
    """A referral with the rows a page usually shows next to it: read-only snapshots with the
    models' attribute names (not session-bound ORM objects)."""

    referral: Referral
    advocate: Advocate
    link: ReferralLink | None
    redemption: OfferRedemption | None


@dataclass(frozen=True, slots=True)
class ReferralPage:
    items: list[ReferralRow]
    total: int
    has_next: bool


async def get_referral(session: AsyncSession, referral_id: int) -> Referral:
    referral = await session.get(Referral, referral_id)
    if referral is None:
        raise NotFound("no such referral", field="id")
    return referral


_REFERRALS_BY_IDS = select(Referral).where(any_ids(Referral.id))
_REFERRAL_COUNTS_BY_ADVOCATES = RawSelect(
    select(Referral.advocate_id, func.count())
    .where(any_ids(Referral.advocate_id))
    .group_by(Referral.advocate_id)
)
_REDEMPTIONS_BY_REFERRALS = select(OfferRedemption).where(any_ids(OfferRedemption.referral_id))


def _latest_statement(column: Any) -> Select[Any]:
    """The newest ``:limit`` referrals per owner id (a window function)."""
    ranked = (
        select(
            Referral.id.label("rid"),
            func.row_number().over(partition_by=column, order_by=Referral.id.desc()).label("rn"),
        )
        .where(any_ids(column))
        .subquery()
    )
    return (
        select(Referral)
        .join(ranked, ranked.c.rid == Referral.id)
        .where(ranked.c.rn <= bindparam("limit"))
        .order_by(Referral.id.desc())
    )


_LATEST_BY_ADVOCATES = _latest_statement(Referral.advocate_id)
_LATEST_BY_LINKS = _latest_statement(Referral.link_id)


async def referrals_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Referral]:
    rows = await session.scalars(_REFERRALS_BY_IDS, ids_params(ids))
    return {r.id: r for r in rows}


async def _latest(
    session: AsyncSession, stmt: Select[Any], key: str, ids: Sequence[int], limit: int
) -> dict[int, list[Referral]]:
    grouped: dict[int, list[Referral]] = defaultdict(list)
    for referral in await session.scalars(stmt, {**ids_params(ids), "limit": limit}):
        grouped[getattr(referral, key)].append(referral)
    return grouped


async def latest_referrals_by_advocates(
    session: AsyncSession, advocate_ids: Sequence[int], limit: int
) -> dict[int, list[Referral]]:
    return await _latest(session, _LATEST_BY_ADVOCATES, "advocate_id", advocate_ids, limit)


async def latest_referrals_by_links(
    session: AsyncSession, link_ids: Sequence[int], limit: int
) -> dict[int, list[Referral]]:
    return await _latest(session, _LATEST_BY_LINKS, "link_id", link_ids, limit)


async def referral_counts_by_advocates(
    session: AsyncSession, advocate_ids: Sequence[int]
) -> dict[int, int]:
    rows = await _REFERRAL_COUNTS_BY_ADVOCATES.fetch(session, ids_params(advocate_ids))
    return {advocate_id: int(n) for advocate_id, n in rows}


async def redemptions_by_referrals(
    session: AsyncSession, referral_ids: Sequence[int]
) -> dict[int, OfferRedemption]:
    rows = await session.scalars(_REDEMPTIONS_BY_REFERRALS, ids_params(referral_ids))
    return {r.referral_id: r for r in rows}


_SNAPSHOTS = [snapshot_class(m) for m in (Referral, Advocate, ReferralLink, OfferRedemption)]
_PAGE_COLUMNS = [
    column
    for model in (Referral, Advocate, ReferralLink, OfferRedemption)
    for column in model.__table__.columns
]
_SLICES: list[slice] = []
_start = 0
for _snapshot in _SNAPSHOTS:
    _SLICES.append(slice(_start, _start + len(_snapshot._fields)))
    _start += len(_snapshot._fields)


_REFERRAL_ROW, _ADVOCATE_ROW, _LINK_ROW, _REDEMPTION_ROW = _SNAPSHOTS
_REFERRAL_PART, _ADVOCATE_PART, _LINK_PART, _REDEMPTION_PART = _SLICES
_LINK_ID = _LINK_PART.start
_REDEMPTION_ID = _REDEMPTION_PART.start


def _page_row(row: Any) -> ReferralRow:
    """One row of the page (an asyncpg record: slicing gives tuples) as four snapshots."""
    return ReferralRow(
        referral=_REFERRAL_ROW._make(row[_REFERRAL_PART]),
        advocate=_ADVOCATE_ROW._make(row[_ADVOCATE_PART]),
        link=None if row[_LINK_ID] is None else _LINK_ROW._make(row[_LINK_PART]),
        redemption=None
        if row[_REDEMPTION_ID] is None
        else _REDEMPTION_ROW._make(row[_REDEMPTION_PART]),
    )


@dataclass(frozen=True, slots=True)
class _Shape:
    """Which filters a list request uses: one pair of prebuilt statements per shape."""

    status: bool
    program: bool
    advocate: bool
    link: bool
    flagged: bool | None
    created_from: bool
    created_to: bool
    after: bool
    newest_first: bool


@functools.lru_cache(maxsize=1024)
def _list_statements(shape: _Shape) -> tuple[Select[Any], RawSelect]:
    """The count and page statements for a filter shape, with bind parameters for values.

    The page is compiled for the driver once: it is read on every list request, and
    SQLAlchemy's result machinery would cost more than the query (bench/RESULTS.md)."""
    base = select(Referral.id)
    if shape.status:
        base = base.where(Referral.status == any_(bindparam("status", type_=ARRAY(String))))
    if shape.program:
        base = base.where(Referral.program_id == bindparam("program_id"))
    if shape.advocate:
        base = base.where(Referral.advocate_id == bindparam("advocate_id"))
    if shape.link:
        base = base.where(Referral.link_id == bindparam("link_id"))
    if shape.flagged is True:
        base = base.where(func.cardinality(Referral.flags) > 0)
    elif shape.flagged is False:
        base = base.where(func.cardinality(Referral.flags) == 0)
    if shape.created_from:
        base = base.where(Referral.created_at >= bindparam("created_from"))
    if shape.created_to:
        base = base.where(Referral.created_at < bindparam("created_to"))
    count: Select[Any] = select(func.count()).select_from(base.subquery())
    order = Referral.id.desc() if shape.newest_first else Referral.id.asc()
    ids = base
    if shape.after:
        after: Any = bindparam("after")
        ids = ids.where(Referral.id < after if shape.newest_first else Referral.id > after)
    else:
        # Window functions run before LIMIT: on a first page, the page itself carries the
        # total and the count statement is not needed.
        ids = ids.add_columns(func.count().over().label("total"))
    page_ids = ids.order_by(order).limit(bindparam("limit")).subquery()
    extra = [] if shape.after else [page_ids.c.total]
    page = (
        select(*_PAGE_COLUMNS, *extra)
        .select_from(Referral)
        .join(page_ids, page_ids.c.id == Referral.id)
        .join(Advocate, Advocate.id == Referral.advocate_id)
        .outerjoin(ReferralLink, ReferralLink.id == Referral.link_id)
        .outerjoin(OfferRedemption, OfferRedemption.referral_id == Referral.id)
        .order_by(order)
    )
    return count, RawSelect(cast("Select[Any]", page))


async def list_referrals(
    session: AsyncSession,
    flt: ReferralFilter,
    *,
    first: int,
    after: int | None,
    newest_first: bool = True,
) -> ReferralPage:
    """A keyset page of referrals (by id), with advocate, link and redemption joined in.

    One statement for a first page, two (count, page) after a cursor."""
    if (
        flt.created_from is not None
        and flt.created_to is not None
        and flt.created_from > flt.created_to
    ):
        raise ValidationFailed("createdFrom must not be after createdTo", field="filter.createdTo")
    count, page = _list_statements(
        _Shape(
            status=bool(flt.status),
            program=flt.program_id is not None,
            advocate=flt.advocate_id is not None,
            link=flt.link_id is not None,
            flagged=flt.flagged,
            created_from=flt.created_from is not None,
            created_to=flt.created_to is not None,
            after=after is not None,
            newest_first=newest_first,
        )
    )
    values = {
        "status": list(flt.status),
        "program_id": flt.program_id,
        "advocate_id": flt.advocate_id,
        "link_id": flt.link_id,
        "created_from": flt.created_from,
        "created_to": flt.created_to,
    }
    params = {k: v for k, v in values.items() if v is not None and v != []}
    if after is not None:
        total = await session.scalar(count, params)
        params["after"] = after
    params["limit"] = first + 1
    result = await page.fetch(session, params)
    if after is None:
        total = result[0][-1] if result else 0
    rows = [_page_row(row) for row in result]
    return ReferralPage(items=rows[:first], total=int(total or 0), has_next=len(rows) > first)
