"""RevOps reporting: referral-sourced pipeline and revenue, the funnel, cost and ROI.

Pipeline, revenue and the leaderboard read the incrementally kept rollup (``rollups``); the
funnel, time to first referral, retention and reward cost read raw events through indexes.
Money is reported per currency and never summed across currencies.

Every metric is defined once, for RevOps, in docs/REPORTS.md (formula, what counts, which date
places it in a period, currencies, rounding); the nouns "referral" and "customer" are
``attribution.definitions``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import String, case, cast, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution import click_counts
from vouch.attribution.definitions import is_referral
from vouch.attribution.rollups import MEASURES
from vouch.core.errors import ValidationFailed
from vouch.core.ids import encode_id, public_ids
from vouch.models import (
    Advocate,
    Program,
    ProgramDailyRollup,
    Referral,
    ReferralDailyRollup,
    ReferralEvent,
    ReferralLink,
    RevenueEvent,
    Reward,
)
from vouch.models.enums import ReferralStatus, RevenueKind, RewardState

DIMENSIONS = ("program", "advocate", "tier", "channel", "month")
_REACHED = {
    "qualified": ("qualified", "opportunity", "won", "churned", "refunded"),
    "opportunity": ("opportunity", "won", "churned", "refunded"),
    "won": ("won", "churned", "refunded"),
}
MAX_LEADERBOARD = 100
MAX_RETENTION_DAYS = 3650


@dataclass(frozen=True, slots=True)
class ReportFilter:
    program_id: int | None = None
    since: date | None = None
    until: date | None = None

    def checked(self) -> ReportFilter:
        if self.since and self.until and self.since >= self.until:
            raise ValidationFailed("since must be before until", field="since")
        return self

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        def start(d: date | None) -> datetime | None:
            return datetime.combine(d, time.min, tzinfo=UTC) if d else None

        return start(self.since), start(self.until)


def _half_up(numerator: int, denominator: int) -> int:
    """An integer quotient rounded half up (to the nearest minor unit; .5 goes up)."""
    return int((Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), ROUND_HALF_UP))


def rate(numerator: int, denominator: int) -> float | None:
    """A ratio rounded to four places; None when the denominator is zero."""
    if denominator == 0:
        return None
    q = (Decimal(numerator) / Decimal(denominator)).quantize(
        Decimal("0.0001"), rounding=ROUND_HALF_EVEN
    )
    return float(q)


# --- pipeline and revenue (from the rollup) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class PipelineRow:
    key: str
    label: str
    currency: str
    leads: int
    opportunities: int
    pipeline_minor: int
    won: int
    won_minor: int
    revenue_minor: int
    sourced_revenue_minor: int
    expansion_revenue_minor: int


def _rollup_where(f: ReportFilter, r: Any = ReferralDailyRollup) -> list[Any]:
    conds: list[Any] = []
    if f.program_id is not None:
        conds.append(r.program_id == f.program_id)
    if f.since is not None:
        conds.append(r.day >= f.since)
    if f.until is not None:
        conds.append(r.day < f.until)
    return conds


async def pipeline(session: AsyncSession, f: ReportFilter, *, group_by: str) -> list[PipelineRow]:
    """Referral-sourced pipeline and revenue grouped by one dimension, per currency."""
    f = f.checked()
    if group_by not in DIMENSIONS:
        raise ValidationFailed(f"groupBy must be one of: {', '.join(DIMENSIONS)}", field="groupBy")
    stmt: Any
    if group_by in ("advocate", "tier"):
        # Aggregate the rollup per advocate first, then join the (current) advocate once.
        r: Any = ReferralDailyRollup
        inner = (
            select(
                r.advocate_id,
                r.currency,
                *(func.sum(getattr(r, m)).label(m) for m in MEASURES),
            )
            .where(*_rollup_where(f, r))
            .group_by(r.advocate_id, r.currency)
            .subquery()
        )
        key: Any
        label: Any
        if group_by == "advocate":
            key = inner.c.advocate_id
            label = func.coalesce(
                func.nullif(func.concat_ws(" ", Advocate.first_name, Advocate.last_name), ""),
                Advocate.external_id,
            )
        else:
            key = label = func.coalesce(cast(Advocate.tier, String), "none")
        stmt = (
            select(
                key.label("key"),
                label.label("label"),
                inner.c.currency,
                *(func.sum(inner.c[m]).label(m) for m in MEASURES),
            )
            .join_from(inner, Advocate, Advocate.id == inner.c.advocate_id)
            .group_by(key, label, inner.c.currency)
            .order_by(key, inner.c.currency)
        )
    else:
        # Program, channel and month read the per-program rollup (no advocate dimension): a
        # program's 90 days are at most 90 x channels x currencies rows.
        r = ProgramDailyRollup
        if group_by == "program":
            key, label = r.program_id, Program.name
        elif group_by == "channel":
            key = label = r.channel
        else:
            key = label = func.to_char(r.day, "YYYY-MM")
        stmt = select(
            key.label("key"),
            label.label("label"),
            r.currency,
            *(func.sum(getattr(r, m)).label(m) for m in MEASURES),
        ).select_from(r)
        if group_by == "program":
            stmt = stmt.join(Program, Program.id == r.program_id)
        stmt = (
            stmt.where(*_rollup_where(f, r))
            .group_by(key, label, r.currency)
            .order_by(key, r.currency)
        )
    rows = (await session.execute(stmt)).all()
    id_type = {"program": "Program", "advocate": "Advocate"}.get(group_by)
    return [
        PipelineRow(
            key=encode_id(id_type, row.key) if id_type else str(row.key),
            label=str(row.label),
            currency=row.currency,
            leads=int(row.leads),
            opportunities=int(row.opportunities),
            pipeline_minor=int(row.pipeline_minor),
            won=int(row.won),
            won_minor=int(row.won_minor),
            revenue_minor=int(row.revenue_minor),
            sourced_revenue_minor=int(row.sourced_revenue_minor),
            expansion_revenue_minor=int(row.expansion_revenue_minor),
        )
        for row in rows
        if any((row.leads, row.opportunities, row.pipeline_minor, row.won, row.revenue_minor))
    ]


# --- the funnel (raw events) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FunnelStep:
    step: str
    count: int
    rate_from_previous: float | None
    rate_from_first: float | None


async def funnel(session: AsyncSession, f: ReportFilter) -> list[FunnelStep]:
    """clicks → leads → qualified → opportunities → won, with conversion rates."""
    f = f.checked()
    since, until = f.bounds()
    clicks_q = select(click_counts.human_clicks(program_id=f.program_id, since=since, until=until))
    leads_q = select(Referral.id).where(is_referral())
    if f.program_id is not None:
        leads_q = leads_q.where(Referral.program_id == f.program_id)
    if since is not None:
        leads_q = leads_q.where(Referral.created_at >= since)
    if until is not None:
        leads_q = leads_q.where(Referral.created_at < until)
    leads = leads_q.subquery()

    def reached(step: str) -> Any:
        return func.count().filter(
            exists().where(
                ReferralEvent.referral_id == leads.c.id,
                ReferralEvent.to_status.in_(_REACHED[step]),
            )
        )

    row = (
        await session.execute(
            select(
                clicks_q.scalar_subquery(),
                func.count(),
                reached("qualified"),
                reached("opportunity"),
                reached("won"),
            ).select_from(leads)
        )
    ).one()
    counts = [int(v or 0) for v in row]
    names = ["clicks", "leads", "qualified", "opportunities", "won"]
    return [
        FunnelStep(
            step=name,
            count=count,
            rate_from_previous=rate(count, counts[i - 1]) if i else None,
            rate_from_first=rate(count, counts[0]) if i else None,
        )
        for i, (name, count) in enumerate(zip(names, counts, strict=True))
    ]


# --- time to first referral and retention ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimeToFirstReferral:
    advocates: int
    median_days: float | None
    mean_days: float | None


async def time_to_first_referral(session: AsyncSession, f: ReportFilter) -> TimeToFirstReferral:
    """From an advocate's first link to their first referral, for first referrals made in the
    period."""
    f = f.checked()
    since, until = f.bounds()
    links = select(
        ReferralLink.advocate_id.label("advocate_id"),
        func.min(ReferralLink.created_at).label("joined"),
    ).group_by(ReferralLink.advocate_id)
    firsts = select(
        Referral.advocate_id.label("advocate_id"),
        func.min(Referral.created_at).label("first"),
    ).where(is_referral())
    if f.program_id is not None:
        links = links.where(ReferralLink.program_id == f.program_id)
        firsts = firsts.where(Referral.program_id == f.program_id)
    links_s = links.subquery()
    firsts_s = firsts.group_by(Referral.advocate_id).subquery()
    days = (func.extract("epoch", firsts_s.c.first - links_s.c.joined) / 86400.0).label("days")
    stmt = select(days).join_from(
        firsts_s, links_s, links_s.c.advocate_id == firsts_s.c.advocate_id
    )
    if since is not None:
        stmt = stmt.where(firsts_s.c.first >= since)
    if until is not None:
        stmt = stmt.where(firsts_s.c.first < until)
    inner = stmt.subquery()
    row = (
        await session.execute(
            select(
                func.count(),
                func.percentile_cont(0.5).within_group(inner.c.days),
                func.avg(inner.c.days),
            )
        )
    ).one()
    return TimeToFirstReferral(
        advocates=int(row[0]),
        median_days=round(float(row[1]), 2) if row[1] is not None else None,
        mean_days=round(float(row[2]), 2) if row[2] is not None else None,
    )


@dataclass(frozen=True, slots=True)
class Retention:
    after_days: int
    customers: int
    retained: int
    rate: float | None


async def retention(
    session: AsyncSession, f: ReportFilter, *, after_days: int, now: datetime
) -> Retention:
    """Referred customers won at least ``after_days`` ago who are still customers."""
    if not 1 <= after_days <= MAX_RETENTION_DAYS:
        raise ValidationFailed(
            f"afterDays must be between 1 and {MAX_RETENTION_DAYS}", field="afterDays"
        )
    first_won = (
        select(ReferralEvent.referral_id, func.min(ReferralEvent.at).label("won_at"))
        .where(ReferralEvent.to_status == ReferralStatus.WON)
        .group_by(ReferralEvent.referral_id)
        .subquery()
    )
    stmt = (
        select(
            func.count(),
            func.count().filter(Referral.status == ReferralStatus.WON),
        )
        .select_from(first_won)
        .join(Referral, Referral.id == first_won.c.referral_id)
        .where(first_won.c.won_at <= now - timedelta(days=after_days), is_referral())
    )
    if f.program_id is not None:
        stmt = stmt.where(Referral.program_id == f.program_id)
    total, kept = (await session.execute(stmt)).one()
    return Retention(
        after_days=after_days, customers=int(total), retained=int(kept), rate=rate(kept, total)
    )


# --- cost, ROI, leaderboard --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CostRow:
    currency: str
    pending_minor: int
    approved_minor: int
    fulfilled_minor: int
    voided_minor: int
    reward_cost_minor: int
    revenue_minor: int
    total_revenue_minor: int
    revenue_share: float | None
    customers: int
    cost_per_customer_minor: int | None
    roi: float | None


async def _customers(session: AsyncSession, f: ReportFilter) -> int:
    since, until = f.bounds()
    first_won = select(ReferralEvent.referral_id, func.min(ReferralEvent.at).label("won_at")).where(
        ReferralEvent.to_status == ReferralStatus.WON
    )
    first_won_s = first_won.group_by(ReferralEvent.referral_id).subquery()
    stmt = (
        select(func.count())
        .select_from(first_won_s)
        .join(Referral, Referral.id == first_won_s.c.referral_id)
        .where(is_referral())
    )
    if f.program_id is not None:
        stmt = stmt.where(Referral.program_id == f.program_id)
    if since is not None:
        stmt = stmt.where(first_won_s.c.won_at >= since)
    if until is not None:
        stmt = stmt.where(first_won_s.c.won_at < until)
    return int(await session.scalar(stmt) or 0)


async def cost_and_roi(session: AsyncSession, f: ReportFilter) -> list[CostRow]:
    """Reward liability by state, reward cost, cost per acquired customer and ROI, per currency."""
    f = f.checked()
    since, until = f.bounds()
    stmt = select(
        Reward.currency,
        *(
            func.coalesce(func.sum(Reward.amount_minor).filter(Reward.state == s), 0)
            for s in RewardState
        ),
    ).group_by(Reward.currency)
    if f.program_id is not None:
        stmt = stmt.where(Reward.program_id == f.program_id)
    if since is not None:
        stmt = stmt.where(Reward.created_at >= since)
    if until is not None:
        stmt = stmt.where(Reward.created_at < until)
    costs = {row[0]: [int(v) for v in row[1:]] for row in (await session.execute(stmt)).all()}
    revenue_q = select(
        ProgramDailyRollup.currency, func.sum(ProgramDailyRollup.revenue_minor)
    ).group_by(ProgramDailyRollup.currency)
    for cond in _rollup_where(f, ProgramDailyRollup):
        revenue_q = revenue_q.where(cond)
    revenues = {c: int(v) for c, v in (await session.execute(revenue_q)).all()}
    # Every recorded charge minus refund in the period, referred or not, in any program.
    signed = case(
        (RevenueEvent.kind == RevenueKind.REFUND, -RevenueEvent.amount_minor),
        else_=RevenueEvent.amount_minor,
    )
    total_q = select(RevenueEvent.currency, func.sum(signed)).group_by(RevenueEvent.currency)
    if since is not None:
        total_q = total_q.where(RevenueEvent.occurred_at >= since)
    if until is not None:
        total_q = total_q.where(RevenueEvent.occurred_at < until)
    totals = {c: int(v) for c, v in (await session.execute(total_q)).all()}
    customers = await _customers(session, f)
    out = []
    currencies = costs.keys() | revenues.keys()
    if f.program_id is None:
        currencies |= totals.keys()
    for currency in sorted(currencies):
        pending, approved, fulfilled, voided = costs.get(currency, [0, 0, 0, 0])
        cost = pending + approved + fulfilled
        income = revenues.get(currency, 0)
        out.append(
            CostRow(
                currency=currency,
                pending_minor=pending,
                approved_minor=approved,
                fulfilled_minor=fulfilled,
                voided_minor=voided,
                reward_cost_minor=cost,
                revenue_minor=income,
                total_revenue_minor=totals.get(currency, 0),
                revenue_share=rate(income, totals.get(currency, 0)),
                customers=customers,
                cost_per_customer_minor=_half_up(cost, customers) if customers else None,
                roi=rate(income - cost, cost),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Amount:
    """An amount in one currency (integer minor units)."""

    currency: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class LeaderRow:
    """One advocate: ranked by counts (never by money, which is per currency), with the
    referral revenue shown per currency."""

    rank: int
    advocate_id: int
    name: str
    tier: int | None
    leads: int
    won: int
    revenue: tuple[Amount, ...]


async def leaderboard(session: AsyncSession, f: ReportFilter, *, limit: int) -> list[LeaderRow]:
    """One row per advocate, ranked by deals won, then referrals (leads), then advocate id;
    ``limit`` counts advocates. Revenue is listed per currency and does not rank."""
    f = f.checked()
    if not 1 <= limit <= MAX_LEADERBOARD:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LEADERBOARD}", field="limit")
    r = ReferralDailyRollup
    won = func.sum(r.won).label("won")
    leads = func.sum(r.leads).label("leads")
    ranked = (
        select(r.advocate_id, leads, won)
        .where(*_rollup_where(f))
        .group_by(r.advocate_id)
        .having(func.sum(r.leads) + func.sum(r.won) + func.sum(func.abs(r.revenue_minor)) > 0)
        .order_by(won.desc(), leads.desc(), r.advocate_id)
        .limit(limit)
        .subquery()
    )
    revenue = (
        select(r.advocate_id, r.currency, func.sum(r.revenue_minor).label("revenue"))
        .where(*_rollup_where(f), r.advocate_id.in_(select(ranked.c.advocate_id)))
        .group_by(r.advocate_id, r.currency)
    )
    amounts: dict[int, list[Amount]] = {}
    for advocate_id, currency, total in (await session.execute(revenue)).all():
        if total:
            amounts.setdefault(advocate_id, []).append(Amount(currency, int(total)))
    name = func.coalesce(
        func.nullif(func.concat_ws(" ", Advocate.first_name, Advocate.last_name), ""),
        Advocate.external_id,
    )
    rows = (
        await session.execute(
            select(ranked, name.label("name"), Advocate.tier)
            .join(Advocate, Advocate.id == ranked.c.advocate_id)
            .order_by(ranked.c.won.desc(), ranked.c.leads.desc(), ranked.c.advocate_id)
        )
    ).all()
    return [
        LeaderRow(
            rank=i,
            advocate_id=row.advocate_id,
            name=row.name,
            tier=row.tier,
            leads=int(row.leads),
            won=int(row.won),
            revenue=tuple(sorted(amounts.get(row.advocate_id, []), key=lambda a: a.currency)),
        )
        for i, row in enumerate(rows, start=1)
    ]


# --- CSV export --------------------------------------------------------------------------------

CSV_REPORTS = ("pipeline", "funnel", "leaderboard", "cost")


async def export_csv(
    session: AsyncSession, name: str, f: ReportFilter, *, group_by: str = "program"
) -> str:
    """One report as CSV (header row first). Formula-looking cells are neutralised."""
    rows: list[Any]
    if name == "pipeline":
        rows = await pipeline(session, f, group_by=group_by)
    elif name == "funnel":
        rows = await funnel(session, f)
    elif name == "leaderboard":
        return _leaderboard_csv(await leaderboard(session, f, limit=MAX_LEADERBOARD))
    elif name == "cost":
        rows = await cost_and_roi(session, f)
    else:
        raise ValidationFailed(
            f"unknown report '{name[:32]}'; use one of: {', '.join(CSV_REPORTS)}", field="name"
        )
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(_fields(name)), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in public_ids(asdict(row)).items()})
    return out.getvalue()


def _leaderboard_csv(rows: list[LeaderRow]) -> str:
    """One line per advocate; one ``revenue_minor_<CUR>`` column per currency present."""
    currencies = sorted({a.currency for row in rows for a in row.revenue})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["rank", "advocate_id", "name", "tier", "leads", "won"]
        + [f"revenue_minor_{c}" for c in currencies]
    )
    for row in rows:
        by_currency = {a.currency: a.amount_minor for a in row.revenue}
        writer.writerow(
            [
                _cell(v)
                for v in (
                    row.rank,
                    encode_id("Advocate", row.advocate_id),
                    row.name,
                    row.tier,
                    row.leads,
                    row.won,
                )
            ]
            + [by_currency.get(c, 0) for c in currencies]
        )
    return out.getvalue()


def _fields(name: str) -> tuple[str, ...]:
    kinds: dict[str, Any] = {
        "pipeline": PipelineRow,
        "funnel": FunnelStep,
        "leaderboard": LeaderRow,
        "cost": CostRow,
    }
    return tuple(f.name for f in fields(kinds[name]))


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value
