"""Referrals, read side: lookups for dataloaders and the filtered, paged list.

The list query joins each referral's advocate, and its link and offer redemption when the caller
shows them, into the page statement: a page with those nested costs one statement (two after a
cursor: the total needs its own count), whatever its size.
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution.definitions import is_referral
from vouch.core.batching import any_ids, ids_params
from vouch.core.errors import NotFound, ValidationFailed
from vouch.core.paging import page_flags
from vouch.core.raw_select import RawSelect
from vouch.core.snapshot import snapshot_class
from vouch.models import Advocate, OfferRedemption, Referral, ReferralLink
from vouch.models.snapshots import (
    AdvocateSnapshot,
    OfferRedemptionSnapshot,
    ReferralLinkSnapshot,
    ReferralSnapshot,
)

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
class PageParts:
    """What a page reads next to each referral besides its advocate (always read)."""

    link: bool = True
    redemption: bool = True


@dataclass(frozen=True, slots=True)
class ReferralRow:
    """A referral with the rows a page shows next to it: read-only snapshots with the models'
    attribute names (not session-bound ORM objects). A part the page did not read is None
    (also when the referral has none: check ``PageParts``)."""

    referral: ReferralSnapshot
    advocate: AdvocateSnapshot
    link: ReferralLinkSnapshot | None
    redemption: OfferRedemptionSnapshot | None


@dataclass(frozen=True, slots=True)
class ReferralPage:
    items: list[ReferralRow]
    total: int
    has_next: bool
    has_previous: bool = False


async def get_referral(session: AsyncSession, referral_id: int) -> Referral:
    referral = await session.get(Referral, referral_id)
    if referral is None:
        raise NotFound("no such referral", field="id")
    return referral


_REFERRALS_BY_IDS = select(Referral).where(any_ids(Referral.id))
_REFERRAL_COUNTS_BY_ADVOCATES = RawSelect(
    select(Referral.advocate_id, func.count())
    .where(any_ids(Referral.advocate_id), is_referral())
    .group_by(Referral.advocate_id)
)
_REDEMPTIONS_BY_REFERRALS = select(OfferRedemption).where(any_ids(OfferRedemption.referral_id))


async def latest_referral_of_people(
    session: AsyncSession, person_keys: Sequence[str]
) -> Referral | None:
    """The most recent referral (``definitions.is_referral``) of any of these people, by their
    person keys (normalised emails): how a CRM contact or a payer is matched to a referral."""
    if not person_keys:
        return None
    found: Referral | None = await session.scalar(
        select(Referral)
        .where(Referral.person_key.in_(person_keys), is_referral())
        .order_by(Referral.created_at.desc(), Referral.id.desc())
        .limit(1)
    )
    return found


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


_REFERRAL_ROW, _ADVOCATE_ROW, _LINK_ROW, _REDEMPTION_ROW = (
    snapshot_class(m) for m in (Referral, Advocate, ReferralLink, OfferRedemption)
)


def _columns(model: Any) -> list[Any]:
    return list(model.__table__.columns)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each part sits in a page record (``None``: not read)."""

    referral: slice
    advocate: slice
    link: slice | None
    redemption: slice | None

    @classmethod
    def of(cls, parts: PageParts) -> _Layout:
        """The layout of ``_list_statements``' columns: referral, advocate, then each part."""
        widths = [len(Referral.__table__.columns), len(Advocate.__table__.columns)]
        if parts.link:
            widths.append(len(ReferralLink.__table__.columns))
        if parts.redemption:
            widths.append(len(OfferRedemption.__table__.columns))
        edges = list(itertools.accumulate(widths, initial=0))
        slices = itertools.starmap(slice, itertools.pairwise(edges))
        referral, advocate = next(slices), next(slices)
        link = next(slices) if parts.link else None
        redemption = next(slices) if parts.redemption else None
        return cls(referral, advocate, link, redemption)

    def row(self, record: Any) -> ReferralRow:
        """One record of the page (asyncpg's: slicing gives tuples) as snapshots."""
        link = redemption = None
        if self.link is not None and record[self.link.start] is not None:
            link = _LINK_ROW._make(record[self.link])
        if self.redemption is not None and record[self.redemption.start] is not None:
            redemption = _REDEMPTION_ROW._make(record[self.redemption])
        return ReferralRow(
            _REFERRAL_ROW._make(record[self.referral]),
            _ADVOCATE_ROW._make(record[self.advocate]),
            link,
            redemption,
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
    parts: PageParts
    before: bool = False
    from_end: bool = False  # Relay's ``last``: scan from the other end, reversed in Python


@functools.lru_cache(maxsize=1024)
def _list_statements(shape: _Shape) -> tuple[Select[Any], RawSelect, _Layout]:
    """The count and page statements for a filter shape, with bind parameters for values, and
    where each part sits in the page's records.

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
    scan_newest = shape.newest_first != shape.from_end
    order = Referral.id.desc() if scan_newest else Referral.id.asc()
    ids = base
    if shape.after:
        after: Any = bindparam("after")
        ids = ids.where(Referral.id < after if shape.newest_first else Referral.id > after)
    if shape.before:
        before: Any = bindparam("before")
        ids = ids.where(Referral.id > before if shape.newest_first else Referral.id < before)
    if not (shape.after or shape.before):
        # Window functions run before LIMIT: on a first page, the page itself carries the
        # total and the count statement is not needed.
        ids = ids.add_columns(func.count().over().label("total"))
    page_ids = ids.order_by(order).limit(bindparam("limit")).subquery()
    parts = shape.parts
    columns = _columns(Referral) + _columns(Advocate)
    page = (
        select()
        .select_from(Referral)
        .join(page_ids, page_ids.c.id == Referral.id)
        .join(Advocate, Advocate.id == Referral.advocate_id)
    )
    if parts.link:
        columns += _columns(ReferralLink)
        page = page.outerjoin(ReferralLink, ReferralLink.id == Referral.link_id)
    if parts.redemption:
        columns += _columns(OfferRedemption)
        page = page.outerjoin(OfferRedemption, OfferRedemption.referral_id == Referral.id)
    if not (shape.after or shape.before):
        columns.append(page_ids.c.total)
    page = page.add_columns(*columns).order_by(order)
    return count, RawSelect(cast("Select[Any]", page)), _Layout.of(parts)


async def list_referrals(
    session: AsyncSession,
    flt: ReferralFilter,
    *,
    first: int,
    after: int | None,
    newest_first: bool = True,
    parts: PageParts = PageParts(),
    before: int | None = None,
    from_end: bool = False,
) -> ReferralPage:
    """A keyset page of referrals (by id), with advocate and the ``parts`` asked for read in
    the same statement. One statement for a first page, two (count, page) after a cursor."""
    if (
        flt.created_from is not None
        and flt.created_to is not None
        and flt.created_from > flt.created_to
    ):
        raise ValidationFailed("createdFrom must not be after createdTo", field="filter.createdTo")
    count, page, layout = _list_statements(
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
            parts=parts,
            before=before is not None,
            from_end=from_end,
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
    bounded = after is not None or before is not None
    if bounded:
        total = await session.scalar(count, params)
        if after is not None:
            params["after"] = after
        if before is not None:
            params["before"] = before
    params["limit"] = first + 1
    result = await page.fetch(session, params)
    if not bounded:
        total = result[0][-1] if result else 0
    rows = [layout.row(record) for record in result]
    items = rows[:first]
    if from_end:
        items.reverse()
    flags = page_flags(len(rows) > first, after=after, before=before, from_end=from_end)
    return ReferralPage(items=items, total=int(total or 0), **flags)
