"""RevOps reports: pipeline and revenue, funnel, time to first referral, retention, ROI."""

from __future__ import annotations

from datetime import date
from typing import Self

import strawberry

from vouch.advocacy.kpis import Window
from vouch.advocacy.referral_kpis import ReferralKpis, referral_kpis
from vouch.api.context import Info
from vouch.api.ids import encode_id
from vouch.api.types.kpi import MoneyAmount
from vouch.attribution import reports
from vouch.attribution.reports import ReportFilter
from vouch.core.clock import utcnow


@strawberry.type(
    name="PipelineRow", description="Referral-sourced pipeline and revenue for one group."
)
class PipelineRowType:
    key: str = strawberry.field(
        description="The group: a program or advocate id (the opaque `Program.id` or "
        "`Advocate.id`), a tier, a channel or YYYY-MM."
    )
    label: str = strawberry.field(description="Human-readable group name.")
    currency: str = strawberry.field(description="ISO-4217 currency of the amounts.")
    leads: int = strawberry.field(
        description="Referrals (not rejected) created in the period (docs/REPORTS.md#pipeline)."
    )
    opportunities: int = strawberry.field(
        description="Referral-linked deals created in the period (docs/REPORTS.md#pipeline)."
    )
    pipeline_minor: int = strawberry.field(
        description="Amount of those deals (docs/REPORTS.md#pipeline)."
    )
    won: int = strawberry.field(
        description="Deals won (not referrals won), by close date (docs/REPORTS.md#pipeline)."
    )
    won_minor: int = strawberry.field(
        description="Amount of the deals won, by close date (docs/REPORTS.md#pipeline)."
    )
    revenue_minor: int = strawberry.field(
        description="Charges minus refunds, each by its own date (docs/REPORTS.md#pipeline)."
    )
    sourced_revenue_minor: int = strawberry.field(
        description="Revenue from new-business deals or straight from the referral."
    )
    expansion_revenue_minor: int = strawberry.field(
        description="Revenue from expansion and renewal deals."
    )

    @classmethod
    def from_domain(cls, r: reports.PipelineRow) -> Self:
        return cls(**{f: getattr(r, f) for f in r.__dataclass_fields__})


@strawberry.type(name="FunnelStep", description="One step of the referral funnel.")
class FunnelStepType:
    step: str = strawberry.field(
        description=(
            "clicks, leads, qualified, opportunities or won (referrals won) "
            "(docs/REPORTS.md#funnel)."
        )
    )
    count: int = strawberry.field(
        description=(
            "Non-bot clicks, or of the period's leads how many ever reached the step "
            "(docs/REPORTS.md#funnel)."
        )
    )
    rate_from_previous: float | None = strawberry.field(
        description="Conversion from the previous step (0-1), null for the first or after zero."
    )
    rate_from_first: float | None = strawberry.field(description="Conversion from clicks (0-1).")


@strawberry.type(
    name="TimeToFirstReferral",
    description="Days from an advocate's first link to their first referral.",
)
class TimeToFirstReferralType:
    advocates: int = strawberry.field(
        description=(
            "Advocates whose first referral was made in the period (docs/REPORTS.md#time-"
            "to-first-referral)."
        )
    )
    median_days: float | None = strawberry.field(description="Median days.")
    mean_days: float | None = strawberry.field(description="Mean days.")


@strawberry.type(
    name="ReferralRetention", description="Referred customers still customers N days after winning."
)
class RetentionType:
    after_days: int = strawberry.field(description="N.")
    customers: int = strawberry.field(
        description="Customers first won at least N days ago (docs/REPORTS.md#retention)."
    )
    retained: int = strawberry.field(
        description="Of those, still in status won (docs/REPORTS.md#retention)."
    )
    rate: float | None = strawberry.field(description="retained / customers (0-1).")


@strawberry.type(
    name="RewardCost", description="Reward liability, cost and program ROI in one currency."
)
class CostRowType:
    currency: str = strawberry.field(description="ISO-4217 currency.")
    pending_minor: int = strawberry.field(
        description="Rewards created in the period, now pending (docs/REPORTS.md#cost)."
    )
    approved_minor: int = strawberry.field(description="Approved, not yet fulfilled.")
    fulfilled_minor: int = strawberry.field(description="Paid out.")
    voided_minor: int = strawberry.field(description="Voided (not a cost).")
    reward_cost_minor: int = strawberry.field(
        description="pending + approved + fulfilled; voided is not a cost (docs/REPORTS.md#cost)."
    )
    revenue_minor: int = strawberry.field(
        description="Referral revenue (charges minus refunds) in the period (docs/REPORTS.md#cost)."
    )
    total_revenue_minor: int = strawberry.field(
        description="All revenue recorded in the period in this currency, referred or not, in "
        "every program: not scoped by programId (docs/REPORTS.md#revenue-share)."
    )
    revenue_share: float | None = strawberry.field(
        description="Referral revenue (of the program, if given) / totalRevenueMinor: the "
        "referral account revenue contribution (docs/REPORTS.md#revenue-share)."
    )
    customers: int = strawberry.field(
        description="Customers (referrals that first reached won) in the period, all "
        "currencies (docs/REPORTS.md#customers)."
    )
    cost_per_customer_minor: int | None = strawberry.field(
        description="rewardCostMinor / customers, rounded half up to a minor unit "
        "(docs/REPORTS.md#cost-per-customer)."
    )
    roi: float | None = strawberry.field(
        description=(
            "(revenueMinor - rewardCostMinor) / rewardCostMinor; null without cost "
            "(docs/REPORTS.md#cost)."
        )
    )


@strawberry.type(
    name="LeaderboardRow",
    description="One advocate's rank: by deals won, then referrals (docs/REPORTS.md#leaderboard).",
)
class LeaderRowType:
    rank: int = strawberry.field(description="1 is the top.")
    advocate_id: strawberry.ID = strawberry.field(description="The advocate.")
    name: str = strawberry.field(description="Display name.")
    tier: int | None = strawberry.field(description="Current tier.")
    leads: int = strawberry.field(description="Referrals (not rejected) created in the period.")
    won: int = strawberry.field(description="Deals won in the period (by close date).")
    revenue: list[MoneyAmount] = strawberry.field(
        description="Referral revenue (charges minus refunds) per currency; does not rank."
    )


@strawberry.type(
    name="ReferralKpis",
    description="The referral KPIs the seeds name (a seed's campaign is a program), each "
    "defined in docs/REPORTS.md#kpis.",
)
class ReferralKpisType:
    pool: int = strawberry.field(
        description=(
            "Program advocates: not erased, with a referral link in the program made before "
            "the period ends."
        )
    )
    discussion_initiated: int = strawberry.field(
        description=(
            "Of the pool, advocates who opened the share flow, copied a link or used any "
            "share control in the period."
        )
    )
    discussion_initiation_rate: float | None = strawberry.field(
        description="Referral discussion initiation rate: discussionInitiated / pool (0-1)."
    )
    sharers: int = strawberry.field(
        description=(
            "Of the pool, advocates who handed their link out in the period (copied it, sent "
            "it through a channel or showed its QR code)."
        )
    )
    share_rate: float | None = strawberry.field(description="Share rate: sharers / pool (0-1).")
    icp_pool: int = strawberry.field(
        description="Pool advocates flagged as ideal customer profile (isIcp)."
    )
    icp_sharers: int = strawberry.field(description="ICP advocates who shared in the period.")
    icp_share_rate: float | None = strawberry.field(
        description="Share rate among ICP advocates: icpSharers / icpPool (0-1)."
    )
    personalised_sharers: int = strawberry.field(
        description="Sharers who edited the default message in the period."
    )
    personalised_outreach_rate: float | None = strawberry.field(
        description="Personalised referral outreach rate: personalisedSharers / sharers (0-1)."
    )
    introductions_asked: int = strawberry.field(
        description="Pool advocates sent a referral_invite ask (for an introduction) in the period."
    )
    introduction_ask_rate: float | None = strawberry.field(
        description=(
            "introductionsAsked / pool (0-1): how often advocates are asked for a warm "
            "introduction."
        )
    )
    introductions_offered: int = strawberry.field(
        description=(
            "Of those asked, advocates who accepted or fulfilled the ask (offered an introduction)."
        )
    )
    warm_introduction_offer_rate: float | None = strawberry.field(
        description="Warm introduction offer rate: introductionsOffered / introductionsAsked (0-1)."
    )
    qbrs: int = strawberry.field(
        description=(
            "QBRs recorded in the period (qbr_referral_intent signals of pool advocates; "
            "value 0 = no intent)."
        )
    )
    qbrs_with_referral_intent: int = strawberry.field(
        description="QBRs where referral intent was expressed (value absent or above 0)."
    )
    qbr_referral_intent_rate: float | None = strawberry.field(
        description="Referral intent identified in QBRs: qbrsWithReferralIntent / qbrs (0-1)."
    )
    mentions: int = strawberry.field(
        description=(
            "Influencer and advocate mentions: organic_mention signals of pool advocates in "
            "the period."
        )
    )
    mentioning_advocates: int = strawberry.field(
        description="Distinct advocates with a mention in the period."
    )
    sentiment_signals: int = strawberry.field(
        description="Sentiment signals (-1..1) of pool advocates in the period."
    )
    sentiment_positive: int = strawberry.field(description="Sentiment signals above 0.")
    sentiment_neutral: int = strawberry.field(description="Sentiment signals equal to 0.")
    sentiment_negative: int = strawberry.field(description="Sentiment signals below 0.")
    sentiment_average: float | None = strawberry.field(
        description="Brand sentiment of advocate content: mean sentiment value (-1..1, 4 places)."
    )
    invites: int = strawberry.field(
        description=(
            "Invites: share events that hand the link out (link_copied, channel_chosen, "
            "qr_shown) by pool advocates."
        )
    )
    referrals: int = strawberry.field(description="Referrals (not rejected) created in the period.")
    invites_per_advocate: float | None = strawberry.field(description="invites / pool.")
    invite_conversion: float | None = strawberry.field(description="referrals / invites.")
    k_factor: float | None = strawberry.field(
        description=(
            "K-factor: invitesPerAdvocate x inviteConversion = referrals / pool (four "
            "places); null without invites."
        )
    )
    cycle_referrals: int = strawberry.field(
        description="Referrals that first reached won in the period."
    )
    cycle_median_days: float | None = strawberry.field(
        description="Referral cycle time: median days from referral to first won."
    )
    cycle_mean_days: float | None = strawberry.field(
        description="Referral cycle time: mean days from referral to first won."
    )

    @classmethod
    def from_domain(cls, k: ReferralKpis) -> Self:
        return cls(**{f: getattr(k, f) for f in k.__dataclass_fields__})


@strawberry.type(
    name="Reports",
    description="RevOps reports over one period (half-open UTC days) and optionally one program.",
)
class ReportsType:
    filter: strawberry.Private[ReportFilter]

    @strawberry.field(
        description="Pipeline and revenue grouped by program, advocate, tier, channel or month."
    )
    async def pipeline(self, info: Info, group_by: str = "program") -> list[PipelineRowType]:
        rows = await reports.pipeline(info.context.reports_db, self.filter, group_by=group_by)
        return [PipelineRowType.from_domain(r) for r in rows]

    @strawberry.field(description="clicks → leads → qualified → opportunities → won.")
    async def funnel(self, info: Info) -> list[FunnelStepType]:
        steps = await reports.funnel(info.context.reports_db, self.filter)
        return [
            FunnelStepType(
                step=s.step,
                count=s.count,
                rate_from_previous=s.rate_from_previous,
                rate_from_first=s.rate_from_first,
            )
            for s in steps
        ]

    @strawberry.field(description="Time from an advocate's first link to their first referral.")
    async def time_to_first_referral(self, info: Info) -> TimeToFirstReferralType:
        t = await reports.time_to_first_referral(info.context.reports_db, self.filter)
        return TimeToFirstReferralType(
            advocates=t.advocates, median_days=t.median_days, mean_days=t.mean_days
        )

    @strawberry.field(description="Referral retention rate after N days (default 90).")
    async def retention(self, info: Info, after_days: int = 90) -> RetentionType:
        r = await reports.retention(
            info.context.reports_db, self.filter, after_days=after_days, now=utcnow()
        )
        return RetentionType(
            after_days=r.after_days, customers=r.customers, retained=r.retained, rate=r.rate
        )

    @strawberry.field(description="Reward cost, cost per acquired customer and program ROI.")
    async def cost(self, info: Info) -> list[CostRowType]:
        rows = await reports.cost_and_roi(info.context.reports_db, self.filter)
        return [CostRowType(**{f: getattr(r, f) for f in r.__dataclass_fields__}) for r in rows]

    @strawberry.field(
        description="Referral KPIs: discussion initiation, share rate (overall and ICP), "
        "personalised outreach, warm introductions, QBR intent, mentions, sentiment, K-factor "
        "and cycle time (docs/REPORTS.md#kpis)."
    )
    async def kpis(self, info: Info) -> ReferralKpisType:
        k = await referral_kpis(
            info.context.reports_db, program_id=self.filter.program_id, window=_window(self.filter)
        )
        return ReferralKpisType.from_domain(k)

    @strawberry.field(
        description="One row per advocate (limit counts advocates), ranked by deals won, then "
        "referrals; revenue per currency (docs/REPORTS.md#leaderboard)."
    )
    async def leaderboard(self, info: Info, limit: int = 10) -> list[LeaderRowType]:
        rows = await reports.leaderboard(info.context.reports_db, self.filter, limit=limit)
        return [
            LeaderRowType(
                rank=r.rank,
                advocate_id=strawberry.ID(encode_id("Advocate", r.advocate_id)),
                name=r.name,
                tier=r.tier,
                leads=r.leads,
                won=r.won,
                revenue=[
                    MoneyAmount(currency=a.currency, amount_minor=a.amount_minor) for a in r.revenue
                ],
            )
            for r in rows
        ]


def _window(f: ReportFilter) -> Window:
    since, until = f.bounds()
    return Window(since=since, until=until)


def make_reports(program_id: int | None, since: date | None, until: date | None) -> ReportsType:
    return ReportsType(
        filter=ReportFilter(program_id=program_id, since=since, until=until).checked()
    )
