"""Advocacy KPIs: ask -> accept -> publish conversion (by moment, type, persona), time to
publish, advocate activation rate and pool size, advocate half-life, and advocacy-influenced
pipeline and revenue (opportunities an advocacy action touched).

Periods are half-open [since, until) in UTC; either bound may be left open. Money stays in
integer minor units per currency; currencies are never summed together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.errors import ValidationFailed
from vouch.models import (
    ActionOpportunity,
    AdvocacyAction,
    Advocate,
    AdvocateScore,
    Ask,
    Opportunity,
    RevenueEvent,
)
from vouch.models.enums import OpportunityStatus, RevenueKind

StmtT = TypeVar("StmtT", bound=Select[*tuple[Any, ...]])


class ConversionBy(StrEnum):
    MOMENT = "moment"
    TYPE = "type"
    PERSONA = "persona"


@dataclass(frozen=True, slots=True)
class Window:
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name, value in (("since", self.since), ("until", self.until)):
            if value is not None and value.tzinfo is None:
                raise ValidationFailed(f"{name} needs a timezone", field=name)
        if self.since and self.until and self.since >= self.until:
            raise ValidationFailed("since must be before until", field="since")

    def apply(self, stmt: StmtT, column: Any) -> StmtT:
        if self.since is not None:
            stmt = stmt.where(column >= self.since)
        if self.until is not None:
            stmt = stmt.where(column < self.until)
        return stmt


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


@dataclass(frozen=True, slots=True)
class ConversionRow:
    key: str
    asked: int
    accepted: int
    published: int
    declined: int

    @property
    def accept_rate(self) -> float:
        return _rate(self.accepted, self.asked)

    @property
    def publish_rate(self) -> float:
        return _rate(self.published, self.asked)


async def ask_conversion(
    session: AsyncSession, *, program_id: int | None, by: ConversionBy, window: Window
) -> list[ConversionRow]:
    """Asks sent in the window, grouped; accepted counts asks accepted or published."""
    key: Any
    if by is ConversionBy.MOMENT:
        key = Ask.moment
    elif by is ConversionBy.TYPE:
        key = Ask.type
    else:
        key = func.coalesce(Advocate.persona, "unknown")
    accepted = func.count(Ask.id).filter(
        (Ask.accepted_at.is_not(None)) | (Ask.published_at.is_not(None))
    )
    stmt = (
        select(
            key.label("key"),
            func.count(Ask.id),
            accepted,
            func.count(Ask.id).filter(Ask.published_at.is_not(None)),
            func.count(Ask.id).filter(Ask.declined_at.is_not(None)),
        )
        .join(Advocate, Advocate.id == Ask.advocate_id)
        .where(Ask.sent_at.is_not(None))
        .group_by(key)
        .order_by(key)
    )
    if program_id is not None:
        stmt = stmt.where(Ask.program_id == program_id)
    stmt = window.apply(stmt, Ask.sent_at)
    return [
        ConversionRow(str(k), int(a), int(acc), int(p), int(d))
        for k, a, acc, p, d in await session.execute(stmt)
    ]


@dataclass(frozen=True, slots=True)
class TimeToPublish:
    published: int
    median_days: float | None
    mean_days: float | None


async def time_to_publish(
    session: AsyncSession, *, program_id: int | None, window: Window
) -> TimeToPublish:
    """Days from sending an ask to its publication, over asks published in the window."""
    days = func.extract("epoch", Ask.published_at - Ask.sent_at) / 86_400
    stmt = select(
        func.count(Ask.id),
        func.percentile_cont(0.5).within_group(days),
        func.avg(days),
    ).where(Ask.published_at.is_not(None), Ask.sent_at.is_not(None))
    if program_id is not None:
        stmt = stmt.where(Ask.program_id == program_id)
    stmt = window.apply(stmt, Ask.published_at)
    row = (await session.execute(stmt)).one()
    count, median, mean = row
    return TimeToPublish(
        published=int(count),
        median_days=round(float(median), 2) if median is not None else None,
        mean_days=round(float(mean), 2) if mean is not None else None,
    )


@dataclass(frozen=True, slots=True)
class Activation:
    pool: int  # eligible advocates: tiered in the program
    activated: int  # of those, with at least one advocacy action in the window

    @property
    def rate(self) -> float:
        return _rate(self.activated, self.pool)


async def activation(session: AsyncSession, *, program_id: int, window: Window) -> Activation:
    acted = window.apply(
        select(AdvocacyAction.advocate_id).where(
            AdvocacyAction.advocate_id == AdvocateScore.advocate_id
        ),
        AdvocacyAction.occurred_at,
    ).exists()
    stmt = (
        select(func.count(), func.count().filter(acted))
        .select_from(AdvocateScore)
        .join(Advocate, Advocate.id == AdvocateScore.advocate_id)
        .where(
            AdvocateScore.program_id == program_id,
            AdvocateScore.tier.is_not(None),
            Advocate.erased_at.is_(None),
        )
    )
    pool, activated = (await session.execute(stmt)).one()
    return Activation(pool=int(pool), activated=int(activated))


@dataclass(frozen=True, slots=True)
class HalfLife:
    advocates: int
    median_days: float | None


async def advocate_half_life(
    session: AsyncSession, *, program_id: int | None, window: Window
) -> HalfLife:
    """Median time between an advocate's first and last action (one action: 0 days)."""
    stmt = select(
        AdvocacyAction.advocate_id,
        (
            func.extract(
                "epoch", func.max(AdvocacyAction.occurred_at) - func.min(AdvocacyAction.occurred_at)
            )
            / 86_400
        ).label("span"),
    ).group_by(AdvocacyAction.advocate_id)
    if program_id is not None:
        stmt = stmt.where(AdvocacyAction.program_id == program_id)
    spans = window.apply(stmt, AdvocacyAction.occurred_at).subquery()
    count, median = (
        await session.execute(
            select(func.count(), func.percentile_cont(0.5).within_group(spans.c.span))
        )
    ).one()
    return HalfLife(
        advocates=int(count), median_days=round(float(median), 2) if median is not None else None
    )


@dataclass(frozen=True, slots=True)
class MoneyTotal:
    currency: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class InfluencedRevenue:
    opportunities: int
    open_pipeline: list[MoneyTotal]
    won: list[MoneyTotal]
    revenue: list[MoneyTotal]  # recognised revenue net of refunds


async def influenced_revenue(
    session: AsyncSession, *, program_id: int | None, window: Window
) -> InfluencedRevenue:
    """Opportunities touched by advocacy actions in the window, their pipeline and revenue."""
    touched_stmt = (
        select(ActionOpportunity.opportunity_id)
        .join(AdvocacyAction, AdvocacyAction.id == ActionOpportunity.action_id)
        .distinct()
    )
    if program_id is not None:
        touched_stmt = touched_stmt.where(AdvocacyAction.program_id == program_id)
    touched = window.apply(touched_stmt, AdvocacyAction.occurred_at).subquery()
    opps = await session.execute(
        select(
            Opportunity.currency,
            func.count(),
            func.coalesce(
                func.sum(Opportunity.amount_minor).filter(
                    Opportunity.status == OpportunityStatus.OPEN
                ),
                0,
            ),
            func.coalesce(
                func.sum(Opportunity.amount_minor).filter(
                    Opportunity.status == OpportunityStatus.WON
                ),
                0,
            ),
        )
        .where(Opportunity.id.in_(select(touched.c[0])))
        .group_by(Opportunity.currency)
        .order_by(Opportunity.currency)
    )
    count = 0
    pipeline: list[MoneyTotal] = []
    won: list[MoneyTotal] = []
    for currency, n, open_sum, won_sum in opps:
        count += int(n)
        if open_sum:
            pipeline.append(MoneyTotal(currency, int(open_sum)))
        if won_sum:
            won.append(MoneyTotal(currency, int(won_sum)))
    signed = case(
        (RevenueEvent.kind == RevenueKind.REFUND, -RevenueEvent.amount_minor),
        else_=RevenueEvent.amount_minor,
    )
    revenue_rows = await session.execute(
        select(RevenueEvent.currency, func.sum(signed))
        .where(and_(RevenueEvent.opportunity_id.in_(select(touched.c[0]))))
        .group_by(RevenueEvent.currency)
        .order_by(RevenueEvent.currency)
    )
    revenue = [MoneyTotal(c, int(total)) for c, total in revenue_rows if total]
    return InfluencedRevenue(count, pipeline, won, revenue)


@dataclass(frozen=True, slots=True)
class AdvocacyKpis:
    conversion_by_moment: list[ConversionRow]
    conversion_by_type: list[ConversionRow]
    conversion_by_persona: list[ConversionRow]
    time_to_publish: TimeToPublish
    activation: Activation
    half_life: HalfLife
    influenced: InfluencedRevenue


async def advocacy_kpis(session: AsyncSession, *, program_id: int, window: Window) -> AdvocacyKpis:
    """Every advocacy KPI for one program and window."""
    return AdvocacyKpis(
        conversion_by_moment=await ask_conversion(
            session, program_id=program_id, by=ConversionBy.MOMENT, window=window
        ),
        conversion_by_type=await ask_conversion(
            session, program_id=program_id, by=ConversionBy.TYPE, window=window
        ),
        conversion_by_persona=await ask_conversion(
            session, program_id=program_id, by=ConversionBy.PERSONA, window=window
        ),
        time_to_publish=await time_to_publish(session, program_id=program_id, window=window),
        activation=await activation(session, program_id=program_id, window=window),
        half_life=await advocate_half_life(session, program_id=program_id, window=window),
        influenced=await influenced_revenue(session, program_id=program_id, window=window),
    )
