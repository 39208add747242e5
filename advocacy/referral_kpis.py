"""The referral KPIs the seeds name, computed from recorded facts (docs/REPORTS.md#kpis).

A "campaign" in the seeds is a *program* here. The pool is the program's advocates: not
erased, with a referral link in the program made before the period ends. Share-flow facts
come from ``share_events`` (what the share page reports), intent, mentions and sentiment from
signals, introductions from asks. Periods are half-open ``[since, until)`` in UTC.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy.kpis import Window
from vouch.attribution.definitions import is_referral
from vouch.attribution.reports import rate
from vouch.models import Advocate, Ask, Referral, ReferralEvent, ReferralLink, ShareEvent, Signal
from vouch.models.enums import AskStatus, AskType, ReferralStatus, ShareEventKind, SignalKind

# Opening the share flow or copying a link starts a referral discussion; handing the link out
# (copied, sent through a channel, or shown as a QR code) is a share and an invite.
INITIATION = (
    ShareEventKind.PAGE_OPENED,
    ShareEventKind.LINK_COPIED,
    ShareEventKind.CHANNEL_CHOSEN,
    ShareEventKind.MESSAGE_EDITED,
    ShareEventKind.QR_SHOWN,
)
SHARES = (ShareEventKind.LINK_COPIED, ShareEventKind.CHANNEL_CHOSEN, ShareEventKind.QR_SHOWN)
OFFERED = (AskStatus.ACCEPTED, AskStatus.PUBLISHED)


@dataclass(frozen=True, slots=True)
class ReferralKpis:
    pool: int
    discussion_initiated: int
    discussion_initiation_rate: float | None
    sharers: int
    share_rate: float | None
    icp_pool: int
    icp_sharers: int
    icp_share_rate: float | None
    personalised_sharers: int
    personalised_outreach_rate: float | None
    introductions_asked: int
    introduction_ask_rate: float | None
    introductions_offered: int
    warm_introduction_offer_rate: float | None
    qbrs: int
    qbrs_with_referral_intent: int
    qbr_referral_intent_rate: float | None
    mentions: int
    mentioning_advocates: int
    sentiment_signals: int
    sentiment_positive: int
    sentiment_neutral: int
    sentiment_negative: int
    sentiment_average: float | None
    invites: int
    referrals: int
    invites_per_advocate: float | None
    invite_conversion: float | None
    k_factor: float | None
    cycle_referrals: int
    cycle_median_days: float | None
    cycle_mean_days: float | None


def _in(window: Window, column: Any) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if window.since is not None:
        conds.append(column >= window.since)
    if window.until is not None:
        conds.append(column < window.until)
    return conds


def _days(value: Any) -> float | None:
    return round(float(value), 2) if value is not None else None


async def referral_kpis(
    session: AsyncSession, *, program_id: int | None, window: Window
) -> ReferralKpis:
    """Every referral KPI for one program (or all) over one period."""
    links = select(ReferralLink.advocate_id).where(
        *([ReferralLink.program_id == program_id] if program_id is not None else []),
        *([ReferralLink.created_at < window.until] if window.until is not None else []),
    )
    pool_ids = (
        select(Advocate.id)
        .where(Advocate.erased_at.is_(None), Advocate.id.in_(links))
        .scalar_subquery()
    )

    def share_events(kinds: tuple[ShareEventKind, ...]) -> Any:
        return and_(
            ShareEvent.kind.in_([str(k) for k in kinds]),
            ShareEvent.advocate_id.in_(pool_ids),
            *([ShareEvent.program_id == program_id] if program_id is not None else []),
            *_in(window, ShareEvent.at),
        )

    def advocates_with(kinds: tuple[ShareEventKind, ...]) -> Any:
        return select(ShareEvent.advocate_id).where(share_events(kinds))

    sharers = advocates_with(SHARES)
    pool, initiated, shared, icp_pool, icp_shared, personalised = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(Advocate.id.in_(advocates_with(INITIATION))),
                func.count().filter(Advocate.id.in_(sharers)),
                func.count().filter(Advocate.is_icp),
                func.count().filter(Advocate.is_icp, Advocate.id.in_(sharers)),
                func.count().filter(
                    Advocate.id.in_(sharers),
                    Advocate.id.in_(advocates_with((ShareEventKind.MESSAGE_EDITED,))),
                ),
            ).where(Advocate.id.in_(pool_ids))
        )
    ).one()
    invites = int(
        await session.scalar(
            select(func.count()).where(share_events(SHARES)).select_from(ShareEvent)
        )
        or 0
    )
    asked, offered = (
        await session.execute(
            select(
                func.count(func.distinct(Ask.advocate_id)),
                func.count(func.distinct(Ask.advocate_id)).filter(Ask.status.in_(OFFERED)),
            ).where(
                Ask.type == AskType.REFERRAL_INVITE,
                Ask.advocate_id.in_(pool_ids),
                *([Ask.program_id == program_id] if program_id is not None else []),
                *_in(window, Ask.sent_at),
            )
        )
    ).one()

    def signals(kind: SignalKind) -> list[ColumnElement[bool]]:
        return [
            Signal.kind == kind,
            Signal.advocate_id.in_(pool_ids),
            *_in(window, Signal.occurred_at),
        ]

    qbrs, intent = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(or_(Signal.value.is_(None), Signal.value > 0)),
            ).where(*signals(SignalKind.QBR_REFERRAL_INTENT))
        )
    ).one()
    mentions, mentioning = (
        await session.execute(
            select(func.count(), func.count(func.distinct(Signal.advocate_id))).where(
                *signals(SignalKind.ORGANIC_MENTION)
            )
        )
    ).one()
    s_count, s_pos, s_neu, s_neg, s_avg = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(Signal.value > 0),
                func.count().filter(Signal.value == 0),
                func.count().filter(Signal.value < 0),
                func.avg(Signal.value),
            ).where(*signals(SignalKind.SENTIMENT))
        )
    ).one()
    referrals = int(
        await session.scalar(
            select(func.count())
            .where(
                is_referral(),
                *([Referral.program_id == program_id] if program_id is not None else []),
                *_in(window, Referral.created_at),
            )
            .select_from(Referral)
        )
        or 0
    )
    first_won = (
        select(ReferralEvent.referral_id, func.min(ReferralEvent.at).label("won_at"))
        .where(ReferralEvent.to_status == ReferralStatus.WON)
        .group_by(ReferralEvent.referral_id)
        .subquery()
    )
    days = func.extract("epoch", first_won.c.won_at - Referral.created_at) / 86_400.0
    cycle_n, cycle_median, cycle_mean = (
        await session.execute(
            select(func.count(), func.percentile_cont(0.5).within_group(days), func.avg(days))
            .select_from(first_won)
            .join(Referral, Referral.id == first_won.c.referral_id)
            .where(
                is_referral(),
                *([Referral.program_id == program_id] if program_id is not None else []),
                *_in(window, first_won.c.won_at),
            )
        )
    ).one()
    pool, shared = int(pool), int(shared)
    return ReferralKpis(
        pool=pool,
        discussion_initiated=int(initiated),
        discussion_initiation_rate=rate(int(initiated), pool),
        sharers=shared,
        share_rate=rate(shared, pool),
        icp_pool=int(icp_pool),
        icp_sharers=int(icp_shared),
        icp_share_rate=rate(int(icp_shared), int(icp_pool)),
        personalised_sharers=int(personalised),
        personalised_outreach_rate=rate(int(personalised), shared),
        introductions_asked=int(asked),
        introduction_ask_rate=rate(int(asked), pool),
        introductions_offered=int(offered),
        warm_introduction_offer_rate=rate(int(offered), int(asked)),
        qbrs=int(qbrs),
        qbrs_with_referral_intent=int(intent),
        qbr_referral_intent_rate=rate(int(intent), int(qbrs)),
        mentions=int(mentions),
        mentioning_advocates=int(mentioning),
        sentiment_signals=int(s_count),
        sentiment_positive=int(s_pos),
        sentiment_neutral=int(s_neu),
        sentiment_negative=int(s_neg),
        sentiment_average=round(float(s_avg), 4) if s_avg is not None else None,
        invites=invites,
        referrals=referrals,
        invites_per_advocate=rate(invites, pool),
        invite_conversion=rate(referrals, invites),
        k_factor=rate(referrals, pool) if invites else None,
        cycle_referrals=int(cycle_n),
        cycle_median_days=_days(cycle_median),
        cycle_mean_days=_days(cycle_mean),
    )


def kpi_rows(k: ReferralKpis) -> list[tuple[str, int | float | None]]:
    """(metric, value) pairs in definition order: the CSV export and the console table."""
    return list(zip((f.name for f in fields(k)), astuple(k), strict=True))
