"""Advocates: read, list with filters."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from attribution.paging import Page, paginate
from core.errors import NotFound
from models import Advocate, Referral, ReferralLink


@dataclass(frozen=True, slots=True)
class AdvocateFilter:
    program_id: int | None = None
    tier: int | None = None
    min_score: float | None = None
    max_score: float | None = None
    segment: str | None = None
    has_referred: bool | None = None
    search: str | None = None


async def get_advocate(session: AsyncSession, advocate_id: int) -> Advocate:
    advocate = await session.get(Advocate, advocate_id)
    if advocate is None:
        raise NotFound("no such advocate", field="id")
    return advocate


async def list_advocates(
    session: AsyncSession, flt: AdvocateFilter, *, first: int, after: int | None
) -> Page[Advocate]:
    stmt = select(Advocate).where(Advocate.erased_at.is_(None))
    if flt.program_id is not None:
        stmt = stmt.where(
            exists().where(
                ReferralLink.advocate_id == Advocate.id, ReferralLink.program_id == flt.program_id
            )
        )
    if flt.tier is not None:
        stmt = stmt.where(Advocate.tier == flt.tier)
    if flt.min_score is not None:
        stmt = stmt.where(Advocate.score >= flt.min_score)
    if flt.max_score is not None:
        stmt = stmt.where(Advocate.score <= flt.max_score)
    if flt.segment is not None:
        stmt = stmt.where(Advocate.segment == flt.segment)
    if flt.has_referred is not None:
        referred = exists().where(Referral.advocate_id == Advocate.id)
        stmt = stmt.where(referred if flt.has_referred else ~referred)
    if flt.search:
        pattern = (
            "%" + flt.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        stmt = stmt.where(
            or_(
                Advocate.email.ilike(pattern),
                Advocate.first_name.ilike(pattern),
                Advocate.last_name.ilike(pattern),
            )
        )
    return await paginate(session, stmt, key=Advocate.id, first=first, after=after)
