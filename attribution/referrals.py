"""Referrals, read side: lookups for dataloaders and the filtered, paged list.

The list query joins each referral's advocate, link and offer redemption into the page
statement, so a page with those nested costs one statement plus the count, whatever its size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from attribution.batching import in_ids
from core.errors import NotFound, ValidationFailed
from models import Advocate, OfferRedemption, Referral, ReferralLink

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
    """A referral with the rows a page usually shows next to it."""

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


async def referrals_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Referral]:
    rows = await session.scalars(select(Referral).where(in_ids(Referral.id, ids)))
    return {r.id: r for r in rows}


async def _latest_by(
    session: AsyncSession, column: Any, ids: Sequence[int], limit: int
) -> dict[int, list[Referral]]:
    """The newest ``limit`` referrals per owner id, in one statement (a window function)."""
    ranked = (
        select(
            Referral.id.label("rid"),
            func.row_number().over(partition_by=column, order_by=Referral.id.desc()).label("rn"),
        )
        .where(in_ids(column, ids))
        .subquery()
    )
    rows = await session.scalars(
        select(Referral)
        .join(ranked, ranked.c.rid == Referral.id)
        .where(ranked.c.rn <= limit)
        .order_by(Referral.id.desc())
    )
    grouped: dict[int, list[Referral]] = defaultdict(list)
    for referral in rows:
        grouped[getattr(referral, column.key)].append(referral)
    return grouped


async def latest_referrals_by_advocates(
    session: AsyncSession, advocate_ids: Sequence[int], limit: int
) -> dict[int, list[Referral]]:
    return await _latest_by(session, Referral.advocate_id, advocate_ids, limit)


async def latest_referrals_by_links(
    session: AsyncSession, link_ids: Sequence[int], limit: int
) -> dict[int, list[Referral]]:
    return await _latest_by(session, Referral.link_id, link_ids, limit)


async def referral_counts_by_advocates(
    session: AsyncSession, advocate_ids: Sequence[int]
) -> dict[int, int]:
    rows = await session.execute(
        select(Referral.advocate_id, func.count())
        .where(in_ids(Referral.advocate_id, advocate_ids))
        .group_by(Referral.advocate_id)
    )
    return {advocate_id: int(n) for advocate_id, n in rows.all()}


async def redemptions_by_referrals(
    session: AsyncSession, referral_ids: Sequence[int]
) -> dict[int, OfferRedemption]:
    rows = await session.scalars(
        select(OfferRedemption).where(in_ids(OfferRedemption.referral_id, referral_ids))
    )
    return {r.referral_id: r for r in rows}


def _filtered(flt: ReferralFilter) -> Select[Any]:
    if (
        flt.created_from is not None
        and flt.created_to is not None
        and flt.created_from > flt.created_to
    ):
        raise ValidationFailed("createdFrom must not be after createdTo", field="filter.createdTo")
    stmt = select(Referral)
    if flt.status:
        stmt = stmt.where(Referral.status.in_(flt.status))
    if flt.program_id is not None:
        stmt = stmt.where(Referral.program_id == flt.program_id)
    if flt.advocate_id is not None:
        stmt = stmt.where(Referral.advocate_id == flt.advocate_id)
    if flt.link_id is not None:
        stmt = stmt.where(Referral.link_id == flt.link_id)
    if flt.flagged is True:
        stmt = stmt.where(func.cardinality(Referral.flags) > 0)
    elif flt.flagged is False:
        stmt = stmt.where(func.cardinality(Referral.flags) == 0)
    if flt.created_from is not None:
        stmt = stmt.where(Referral.created_at >= flt.created_from)
    if flt.created_to is not None:
        stmt = stmt.where(Referral.created_at < flt.created_to)
    return stmt


async def list_referrals(
    session: AsyncSession,
    flt: ReferralFilter,
    *,
    first: int,
    after: int | None,
    newest_first: bool = True,
) -> ReferralPage:
    """A keyset page of referrals (by id), with advocate, link and redemption joined in."""
    base = _filtered(flt)
    total = await session.scalar(select(func.count()).select_from(base.subquery()))
    ids = base.with_only_columns(Referral.id)
    if after is not None:
        ids = ids.where(Referral.id < after if newest_first else Referral.id > after)
    ids = ids.order_by(Referral.id.desc() if newest_first else Referral.id.asc()).limit(first + 1)
    page_ids = ids.subquery()
    stmt = (
        select(Referral, Advocate, ReferralLink, OfferRedemption)
        .join(page_ids, page_ids.c.id == Referral.id)
        .join(Advocate, Advocate.id == Referral.advocate_id)
        .outerjoin(ReferralLink, ReferralLink.id == Referral.link_id)
        .outerjoin(OfferRedemption, OfferRedemption.referral_id == Referral.id)
        .order_by(Referral.id.desc() if newest_first else Referral.id.asc())
    )
    rows = [
        ReferralRow(referral=r, advocate=a, link=link, redemption=red)
        for r, a, link, red in (await session.execute(stmt)).all()
    ]
    return ReferralPage(items=rows[:first], total=int(total or 0), has_next=len(rows) > first)
