"""The attribution chain: why a dollar is credited to an advocate.

For a revenue event, an opportunity or a referral, the chain is the full path back to the
advocate: the link, the clicks that counted, every attribution decision (rule, rules version,
window, evidence, actor; current first), every lifecycle transition with time and source, the
opportunities with their stage history, the revenue, and the rewards with their ledger. Chains
are built in a constant number of statements however many referrals they cover.

Re-attribution never edits history: it writes a new decision that supersedes the current one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution import lifecycle, opportunities, revenue, reward_reads, rewards, rollups
from vouch.core.errors import NotFound, ValidationFailed
from vouch.models import (
    Advocate,
    AttributionDecision,
    Click,
    Opportunity,
    OpportunityEvent,
    Program,
    Referral,
    ReferralEvent,
    ReferralLink,
    RevenueEvent,
    RewardEntry,
)
from vouch.models.enums import AttributionEvidence
from vouch.models.snapshots import RewardSnapshot

MAX_CHAINS = 200
MAX_CLICKS_PER_CHAIN = 50


# --- decisions ---------------------------------------------------------------------------------


def _evidence(value: str) -> AttributionEvidence:
    try:
        return AttributionEvidence(value)
    except ValueError:
        allowed = ", ".join(e.value for e in AttributionEvidence)
        raise ValidationFailed(f"evidence must be one of: {allowed}", field="evidence") from None


async def record_decision(
    session: AsyncSession,
    referral: Referral,
    *,
    evidence: str,
    actor: str,
    reason: str,
    now: datetime,
    click_id: int | None = None,
) -> AttributionDecision:
    """The first decision for a referral, under its program's current rules."""
    program = await session.get(Program, referral.program_id)
    assert program is not None
    decision = AttributionDecision(
        referral_id=referral.id,
        advocate_id=referral.advocate_id,
        link_id=referral.link_id,
        click_id=click_id if click_id is not None else referral.click_id,
        rule=program.attribution_model,
        rules_version=program.rules_version,
        window_days=program.attribution_window_days,
        evidence=_evidence(evidence),
        actor=actor[:128],
        reason=reason,
        is_current=True,
        decided_at=now,
    )
    session.add(decision)
    await session.flush()
    return decision


async def reattribute(
    session: AsyncSession,
    referral_id: int,
    *,
    link_id: int,
    evidence: str,
    actor: str,
    reason: str,
    now: datetime,
    click_id: int | None = None,
) -> AttributionDecision:
    """Credit the referral to the advocate of ``link_id`` instead.

    Writes a new current decision superseding the old one, moves the referral, and moves the
    credit (``rewards.move_credit``): the previous advocate's unpaid referrer rewards are
    voided, fulfilled ones clawed back or held for review per the program's setting, and the
    new advocate earns what the referral stands at as if credited from the start.
    """
    reason = reason.strip()
    if not reason or len(reason) > 1000:
        raise ValidationFailed("a reason of 1 to 1000 characters is required", field="reason")
    kind = _evidence(evidence)
    referral = await lifecycle.lock_referral(session, referral_id)
    link = await session.get(ReferralLink, link_id)
    if link is None:
        raise NotFound("no such referral link", field="linkId")
    if link.program_id != referral.program_id:
        raise ValidationFailed("the link belongs to another program", field="linkId")
    if link.advocate_id == referral.advocate_id and link.id == referral.link_id:
        raise ValidationFailed("the referral is already credited to this link", field="linkId")
    current = await session.scalar(
        select(AttributionDecision).where(
            AttributionDecision.referral_id == referral.id,
            AttributionDecision.is_current.is_(True),
        )
    )
    if current is not None:
        await session.execute(
            update(AttributionDecision)
            .where(AttributionDecision.id == current.id)
            .values(is_current=False)
        )
        current.is_current = False
    program = await session.get(Program, referral.program_id)
    assert program is not None
    previous_advocate = referral.advocate_id
    before = await rollups.contributions(session, [referral.id])
    decision = AttributionDecision(
        referral_id=referral.id,
        advocate_id=link.advocate_id,
        link_id=link.id,
        click_id=click_id,
        rule=program.attribution_model,
        rules_version=program.rules_version,
        window_days=program.attribution_window_days,
        evidence=kind,
        actor=actor[:128],
        reason=reason,
        is_current=True,
        supersedes_id=current.id if current else None,
        decided_at=now,
    )
    session.add(decision)
    referral.advocate_id = link.advocate_id
    referral.link_id = link.id
    # The referral's channel is the winning touch's: the named click's, else the new link's.
    channel = (
        await session.scalar(select(Click.channel).where(Click.id == click_id).limit(1))
        if click_id is not None
        else None
    )
    referral.channel = channel or link.channel
    referral.updated_at = now
    # No ReferralEvent: the status does not change (the decision above is the record).
    await session.flush()
    after = await rollups.contributions(session, [referral.id])
    await rollups.apply(session, rollups.difference(after, before))
    if previous_advocate != link.advocate_id:
        await rewards.move_credit(session, referral, previous_advocate, actor=actor[:128], now=now)
    return decision


# --- chains ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpportunityLink:
    opportunity: Opportunity
    history: list[OpportunityEvent]


@dataclass(frozen=True, slots=True)
class RewardLink:
    reward: RewardSnapshot
    entries: list[RewardEntry]


@dataclass(frozen=True, slots=True)
class ReferralChain:
    referral: Referral
    advocate: Advocate
    link: ReferralLink | None
    decisions: list[AttributionDecision]
    clicks: list[Click]
    transitions: list[ReferralEvent]
    opportunities: list[OpportunityLink]
    revenue: list[RevenueEvent]
    rewards: list[RewardLink]

    @property
    def current_decision(self) -> AttributionDecision | None:
        return next((d for d in self.decisions if d.is_current), None)


async def build_chains(session: AsyncSession, referral_ids: list[int]) -> list[ReferralChain]:
    """Chains for these referrals, in the given order (unknown ids are skipped)."""
    ids = list(dict.fromkeys(referral_ids))[:MAX_CHAINS]
    if not ids:
        return []
    referrals = {
        r.id: r for r in await session.scalars(select(Referral).where(Referral.id.in_(ids)))
    }
    ids = [i for i in ids if i in referrals]
    if not ids:
        return []
    advocates = {
        a.id: a
        for a in await session.scalars(
            select(Advocate).where(Advocate.id.in_({r.advocate_id for r in referrals.values()}))
        )
    }
    decisions: dict[int, list[AttributionDecision]] = {i: [] for i in ids}
    for d in await session.scalars(
        select(AttributionDecision)
        .where(AttributionDecision.referral_id.in_(ids))
        .order_by(AttributionDecision.is_current.desc(), AttributionDecision.id.desc())
    ):
        decisions[d.referral_id].append(d)
    link_ids = {r.link_id for r in referrals.values() if r.link_id} | {
        d.link_id for ds in decisions.values() for d in ds if d.link_id
    }
    links = {
        link.id: link
        for link in await session.scalars(select(ReferralLink).where(ReferralLink.id.in_(link_ids)))
    }
    clicks = await _counted_clicks(session, referrals, decisions)
    transitions = await lifecycle.events_for(session, ids)
    opps = await opportunities.opportunities_by_referrals(session, ids)
    history = await opportunities.history_by_opportunities(
        session, [o.id for os in opps.values() for o in os]
    )
    revenue_rows = await revenue.revenue_by_referrals(session, ids)
    reward_rows = await reward_reads.rewards_by_referrals(session, ids)
    entries = await reward_reads.entries_by_reward(
        session, [r.id for rs in reward_rows.values() for r in rs]
    )
    return [
        ReferralChain(
            referral=referrals[i],
            advocate=advocates[referrals[i].advocate_id],
            link=links.get(referrals[i].link_id or 0),
            decisions=decisions[i],
            clicks=clicks[i],
            transitions=transitions[i],
            opportunities=[OpportunityLink(o, history[o.id]) for o in opps[i]],
            revenue=revenue_rows[i],
            rewards=[RewardLink(r, entries[r.id]) for r in reward_rows[i]],
        )
        for i in ids
    ]


async def _counted_clicks(
    session: AsyncSession,
    referrals: dict[int, Referral],
    decisions: dict[int, list[AttributionDecision]],
) -> dict[int, list[Click]]:
    """The clicks a decision names, plus the friend's own clicks (same visitor id) on the
    credited link inside the window before the referral."""
    named = {d.click_id for ds in decisions.values() for d in ds if d.click_id} | {
        r.click_id for r in referrals.values() if r.click_id
    }
    visitors = {r.visitor_id for r in referrals.values() if r.visitor_id and r.link_id}
    stmt = select(Click).where(Click.id.in_(named))
    if visitors:
        stmt = select(Click).where(
            Click.id.in_(named)
            | (
                Click.visitor_id.in_(visitors)
                & Click.link_id.in_({r.link_id for r in referrals.values() if r.link_id})
            )
        )
    rows = list(await session.scalars(stmt.order_by(Click.occurred_at, Click.id)))
    out: dict[int, list[Click]] = {i: [] for i in referrals}
    for referral_id, referral in referrals.items():
        named_here = {d.click_id for d in decisions[referral_id] if d.click_id}
        if referral.click_id:
            named_here.add(referral.click_id)
        window = max((d.window_days for d in decisions[referral_id]), default=30)
        start = referral.created_at - timedelta(days=window)
        picked = [
            c
            for c in rows
            if c.id in named_here
            or (
                referral.visitor_id is not None
                and c.visitor_id == referral.visitor_id
                and c.link_id == referral.link_id
                and start <= c.occurred_at <= referral.created_at
                and not c.is_bot
            )
        ]
        out[referral_id] = picked[-MAX_CLICKS_PER_CHAIN:]
    return out


async def chain_for_referral(session: AsyncSession, referral_id: int) -> ReferralChain:
    chains = await build_chains(session, [referral_id])
    if not chains:
        raise NotFound("no such referral", field="referralId")
    return chains[0]


async def chain_for_opportunity(session: AsyncSession, opportunity_id: int) -> ReferralChain:
    opp = await opportunities.get_opportunity(session, opportunity_id)
    if opp.referral_id is None:
        raise NotFound("this opportunity is not referral-sourced", field="opportunityId")
    return await chain_for_referral(session, opp.referral_id)


async def chain_for_revenue(session: AsyncSession, revenue_event_id: int) -> ReferralChain:
    event = await revenue.get_revenue_event(session, revenue_event_id)
    referral_id = event.referral_id
    if referral_id is None and event.opportunity_id is not None:
        opp = await opportunities.get_opportunity(session, event.opportunity_id)
        referral_id = opp.referral_id
    if referral_id is None:
        raise NotFound("this revenue is not referral-sourced", field="revenueEventId")
    return await chain_for_referral(session, referral_id)


async def chains_for_advocate(session: AsyncSession, advocate_id: int) -> list[ReferralChain]:
    """Every chain forward from an advocate: the referrals currently credited to them, plus
    those once credited to them and since re-attributed (their history shows the move)."""
    if await session.get(Advocate, advocate_id) is None:
        raise NotFound("no such advocate", field="advocateId")
    current = select(Referral.id).where(Referral.advocate_id == advocate_id)
    past = select(AttributionDecision.referral_id).where(
        AttributionDecision.advocate_id == advocate_id
    )
    ids = list(
        await session.scalars(
            select(Referral.id)
            .where(Referral.id.in_(current.union(past)))
            .order_by(Referral.id)
            .limit(MAX_CHAINS)
        )
    )
    return await build_chains(session, ids)
