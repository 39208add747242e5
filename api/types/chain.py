"""The attribution chain: why a dollar is credited to an advocate."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

import strawberry
from strawberry.scalars import JSON

from vouch.api.ids import encode_id
from vouch.api.types.advocate import AdvocateType
from vouch.api.types.node import Node
from vouch.api.types.opportunity import OpportunityStageChangeType
from vouch.api.types.revenue import RevenueEventType
from vouch.api.types.reward import RewardEntryType
from vouch.attribution.chain import ReferralChain
from vouch.models import AttributionDecision, Click, ReferralLink
from vouch.models.snapshots import ReferralEventSnapshot


@strawberry.type(name="ChainLink", description="The referral link in a chain.")
class ChainLinkType:
    link_id: strawberry.ID = strawberry.field(
        description="The referral link's id (a chain step is not itself an entity, so it has no "
        "`id` of its own: a normalising client store keeps it apart from the link)."
    )
    code: str | None = strawberry.field(description="The link's hashid code.")
    channel: str = strawberry.field(description="The channel the link was made for.")
    advocate_id: strawberry.ID = strawberry.field(description="The link's advocate.")

    @classmethod
    def from_model(cls, m: ReferralLink) -> Self:
        return cls(
            link_id=strawberry.ID(encode_id("ReferralLink", m.id)),
            code=m.code,
            channel=m.channel,
            advocate_id=strawberry.ID(encode_id("Advocate", m.advocate_id)),
        )


@strawberry.type(name="ChainClick", description="A click that counted towards the attribution.")
class ChainClickType:
    occurred_at: datetime = strawberry.field(description="When (UTC).")
    channel: str | None = strawberry.field(description="Channel of the visit.")
    referrer_host: str | None = strawberry.field(description="Where the visitor came from.")
    named_by_decision: bool = strawberry.field(
        description="The attribution decision names this click as its evidence."
    )

    @classmethod
    def from_model(cls, m: Click, named: set[int]) -> Self:
        return cls(
            occurred_at=m.occurred_at,
            channel=m.channel,
            referrer_host=m.referrer_host,
            named_by_decision=m.id in named,
        )


@strawberry.type(
    name="AttributionDecision",
    description="Which rule credited which advocate, on what evidence, decided by whom.",
)
class AttributionDecisionType(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    advocate_id: strawberry.ID = strawberry.field(description="The credited advocate.")
    link_id: strawberry.ID | None = strawberry.field(description="The credited link.")
    rule: str = strawberry.field(description="first_touch or last_touch.")
    rules_version: int = strawberry.field(description="The program's rules version applied.")
    window_days: int = strawberry.field(description="The attribution window applied.")
    evidence: str = strawberry.field(description="click, code_entry, form, api or manual.")
    actor: str = strawberry.field(description="Who decided (landing, API key, admin).")
    reason: str = strawberry.field(description="Why, in words.")
    is_current: bool = strawberry.field(description="This decision is in force.")
    supersedes_id: strawberry.ID | None = strawberry.field(
        description="The decision this one replaced (re-attribution)."
    )
    decided_at: datetime = strawberry.field(description="When (UTC).")

    @classmethod
    def from_model(cls, m: AttributionDecision) -> Self:
        return cls(
            id=strawberry.ID(encode_id("AttributionDecision", m.id)),
            advocate_id=strawberry.ID(encode_id("Advocate", m.advocate_id)),
            link_id=strawberry.ID(encode_id("ReferralLink", m.link_id)) if m.link_id else None,
            rule=m.rule,
            rules_version=m.rules_version,
            window_days=m.window_days,
            evidence=m.evidence,
            actor=m.actor,
            reason=m.reason,
            is_current=m.is_current,
            supersedes_id=strawberry.ID(encode_id("AttributionDecision", m.supersedes_id))
            if m.supersedes_id
            else None,
            decided_at=m.decided_at,
        )


@strawberry.type(name="ReferralTransition", description="One step of a referral's lifecycle.")
class ReferralTransitionType:
    from_status: str | None = strawberry.field(description="Status before; null on creation.")
    to_status: str = strawberry.field(description="Status after.")
    at: datetime = strawberry.field(description="When (UTC).")
    source: str = strawberry.field(
        description="Where it came from: landing, crm, billing, moderation, reattribution, ..."
    )
    actor: str | None = strawberry.field(description="Who (API key name, admin, system).")
    detail: JSON = strawberry.field(description="Context, e.g. the opportunity that moved it.")

    @classmethod
    def from_model(cls, m: ReferralEventSnapshot) -> Self:
        return cls(
            from_status=m.from_status,
            to_status=m.to_status,
            at=m.at,
            source=m.source,
            actor=m.actor,
            detail=m.detail,  # type: ignore[arg-type]
        )


@strawberry.type(name="ChainOpportunity", description="A deal in the chain with its history.")
class ChainOpportunityType:
    opportunity_id: strawberry.ID = strawberry.field(
        description="The opportunity's id (the chain step has no `id` of its own)."
    )
    crm_id: str = strawberry.field(description="The CRM's id.")
    kind: str = strawberry.field(description="new_business, expansion or renewal.")
    status: str = strawberry.field(description="open, won or lost.")
    amount_minor: int = strawberry.field(description="Amount in minor units.")
    currency: str = strawberry.field(description="ISO-4217 currency.")
    history: list[OpportunityStageChangeType] = strawberry.field(
        description="Stage and amount history, oldest first."
    )


@strawberry.type(name="ChainReward", description="A reward in the chain with its ledger.")
class ChainRewardType:
    reward_id: strawberry.ID = strawberry.field(
        description="The reward's id (the chain step has no `id` of its own)."
    )
    side: str = strawberry.field(description="referrer or referred.")
    amount_minor: int = strawberry.field(description="Amount in minor units.")
    currency: str = strawberry.field(description="ISO-4217 currency.")
    state: str = strawberry.field(description="Current state.")
    entries: list[RewardEntryType] = strawberry.field(description="The ledger, oldest first.")


@strawberry.type(
    name="AttributionChain",
    description="The full path from a referral back to its advocate, with every decision and "
    "transition, and forward to its deals, revenue and rewards.",
)
class AttributionChainType:
    referral_id: strawberry.ID = strawberry.field(description="The referral.")
    status: str = strawberry.field(description="The referral's status.")
    moderation: str = strawberry.field(description="The referral's moderation state.")
    flags: list[str] = strawberry.field(description="Fraud flags raised on the referral.")
    referred_at: datetime = strawberry.field(description="When the referral was created (UTC).")
    advocate: AdvocateType = strawberry.field(description="The advocate credited now.")
    link: ChainLinkType | None = strawberry.field(description="The link credited now.")
    decisions: list[AttributionDecisionType] = strawberry.field(
        description="Every attribution decision, the current one first."
    )
    clicks: list[ChainClickType] = strawberry.field(
        description="The clicks that counted: the decision's evidence and the friend's own "
        "visits inside the window."
    )
    transitions: list[ReferralTransitionType] = strawberry.field(
        description="Every lifecycle transition, oldest first."
    )
    opportunities: list[ChainOpportunityType] = strawberry.field(
        description="Deals the referral led to."
    )
    revenue: list[RevenueEventType] = strawberry.field(description="Charges and refunds.")
    rewards: list[ChainRewardType] = strawberry.field(description="Rewards on both sides.")

    @classmethod
    def from_domain(cls, c: ReferralChain) -> Self:
        named: set[int] = {d.click_id for d in c.decisions if d.click_id} | (
            {c.referral.click_id} if c.referral.click_id else set()
        )
        return cls(
            referral_id=strawberry.ID(encode_id("Referral", c.referral.id)),
            status=c.referral.status,
            moderation=c.referral.moderation,
            flags=list(c.referral.flags or []),
            referred_at=c.referral.created_at,
            advocate=AdvocateType.from_model(c.advocate),
            link=ChainLinkType.from_model(c.link) if c.link else None,
            decisions=[AttributionDecisionType.from_model(d) for d in c.decisions],
            clicks=[ChainClickType.from_model(k, named) for k in c.clicks],
            transitions=[ReferralTransitionType.from_model(t) for t in c.transitions],
            opportunities=[
                ChainOpportunityType(
                    opportunity_id=strawberry.ID(encode_id("Opportunity", o.opportunity.id)),
                    crm_id=o.opportunity.crm_id,
                    kind=o.opportunity.kind,
                    status=o.opportunity.status,
                    amount_minor=o.opportunity.amount_minor,
                    currency=o.opportunity.currency,
                    history=[OpportunityStageChangeType.from_model(h) for h in o.history],
                )
                for o in c.opportunities
            ],
            revenue=[RevenueEventType.from_model(e) for e in c.revenue],
            rewards=[
                ChainRewardType(
                    reward_id=strawberry.ID(encode_id("Reward", r.reward.id)),
                    side=r.reward.side,
                    amount_minor=r.reward.amount_minor,
                    currency=r.reward.currency,
                    state=r.reward.state,
                    entries=[RewardEntryType.from_model(e) for e in r.entries],
                )
                for r in c.rewards
            ],
        )


def chains(items: list[ReferralChain]) -> list[Any]:
    return [AttributionChainType.from_domain(c) for c in items]
