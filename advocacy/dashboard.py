"""What the RevOps console shows for one program and period, assembled from the reports.

Every number here comes from the same report functions the GraphQL API and CSV exports use,
so the console can never disagree with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy.kpis import ConversionBy, ConversionRow, Window, ask_conversion
from vouch.advocacy.referral_kpis import ReferralKpis, referral_kpis
from vouch.advocacy.tiers import TierDistribution, tier_distribution
from vouch.attribution import reports
from vouch.attribution.reports import CostRow, FunnelStep, LeaderRow, PipelineRow, ReportFilter
from vouch.core.errors import ValidationFailed
from vouch.models import Program

DEFAULT_DAYS = 180
MAX_DAYS = 3 * 366


@dataclass(frozen=True, slots=True)
class Period:
    since: date
    until: date  # exclusive

    @classmethod
    def parse(cls, since: str | None, until: str | None, *, today: date) -> Period:
        """From ``YYYY-MM-DD`` strings; defaults to the last 180 days."""
        try:
            end = date.fromisoformat(until) if until else today + timedelta(days=1)
            start = date.fromisoformat(since) if since else end - timedelta(days=DEFAULT_DAYS)
        except ValueError:
            raise ValidationFailed("dates must look like 2026-11-22", field="since") from None
        if start >= end:
            raise ValidationFailed("the period must start before it ends", field="since")
        if (end - start).days > MAX_DAYS:
            raise ValidationFailed("the period can be at most three years", field="since")
        return cls(start, end)

    def window(self) -> Window:
        return Window(
            since=datetime.combine(self.since, time.min, tzinfo=UTC),
            until=datetime.combine(self.until, time.min, tzinfo=UTC),
        )


@dataclass(frozen=True, slots=True)
class Overview:
    program: Program
    programs: list[Program]
    period: Period
    months: list[PipelineRow]
    funnel: list[FunnelStep]
    leaders: list[LeaderRow]
    tiers: TierDistribution
    liability: list[CostRow]
    asks: list[ConversionRow]
    kpis: ReferralKpis


async def list_programs(session: AsyncSession) -> list[Program]:
    return list(await session.scalars(select(Program).order_by(Program.id)))


async def overview(session: AsyncSession, *, program_id: int | None, period: Period) -> Overview:
    """The console's main page: pipeline over time, funnel, leaders, tiers, rewards, asks."""
    programs = await list_programs(session)
    if not programs:
        raise ValidationFailed("there are no programs yet; create one first", field="program")
    program = next((p for p in programs if p.id == program_id), programs[0])
    f = ReportFilter(program_id=program.id, since=period.since, until=period.until)
    return Overview(
        program=program,
        programs=programs,
        period=period,
        months=await reports.pipeline(session, f, group_by="month"),
        funnel=await reports.funnel(session, f),
        leaders=await reports.leaderboard(session, f, limit=10),
        tiers=await tier_distribution(session, program.id),
        liability=await reports.cost_and_roi(session, f),
        asks=await ask_conversion(
            session, program_id=program.id, by=ConversionBy.TYPE, window=period.window()
        ),
        kpis=await referral_kpis(session, program_id=program.id, window=period.window()),
    )
