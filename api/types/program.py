from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from vouch.api.context import Info
from vouch.api.ids import encode_id
from vouch.api.types.enums import (
    AttributionModel,
    FulfilledOnReattribution,
    OfferKind,
    ProgramStatus,
    RewardCalc,
    RewardKind,
    RewardSide,
    RewardTrigger,
)
from vouch.api.types.node import Node
from vouch.models import Program, RewardRule


@strawberry.type(name="RewardRule", description="How a program rewards a referral event.")
class RewardRuleType(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    name: str = strawberry.field(description="Unique name within the program.")
    side: RewardSide = strawberry.field(description="Who is rewarded: advocate or friend.")
    trigger: RewardTrigger = strawberry.field(description="The event that earns the reward.")
    calc: RewardCalc = strawberry.field(description="Fixed amount or percent of revenue.")
    kind: RewardKind = strawberry.field(description="Credit, cash, gift card, points, ...")
    amount_minor: int = strawberry.field(description="Fixed amount in minor units.")
    currency: str = strawberry.field(description="ISO-4217 currency of the amount.")
    percent_bps: int = strawberry.field(
        description="Share of revenue in basis points (100 = 1%) for percent rules."
    )
    points: int = strawberry.field(description="Points awarded (points rewards).")
    from_nth_referral: int = strawberry.field(
        description="Tiered rewards: applies from the advocate's Nth successful referral on."
    )
    cap_count: int | None = strawberry.field(
        description="At most this many rewards per advocate per cap period; null = no cap."
    )
    cap_period_days: int = strawberry.field(description="Length of the cap period in days.")
    clawback_days: int = strawberry.field(
        description="Days a reward can still be voided (e.g. after a refund)."
    )
    holding_days: int = strawberry.field(
        description="Holding period: days a reward stays pending before it can be approved "
        "(0 = none). Programs that auto-approve approve it when the period ends; a refund or "
        "churn inside it voids it."
    )

    @classmethod
    def from_model(cls, m: RewardRule) -> Self:
        return cls(
            id=strawberry.ID(encode_id("RewardRule", m.id)),
            name=m.name,
            side=RewardSide(m.side),
            trigger=RewardTrigger(m.trigger),
            calc=RewardCalc(m.calc),
            kind=RewardKind(m.kind),
            amount_minor=m.amount_minor,
            currency=m.currency,
            percent_bps=m.percent_bps,
            points=m.points,
            from_nth_referral=m.from_nth_referral,
            cap_count=m.cap_count,
            cap_period_days=m.cap_period_days,
            clawback_days=m.clawback_days,
            holding_days=m.holding_days,
        )


@strawberry.type(name="Program", description="A referral or advocacy program.")
class ProgramType(Node):
    db_id: strawberry.Private[int]
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    slug: str = strawberry.field(description="URL-safe unique name.")
    name: str = strawberry.field(description="Display name.")
    description: str = strawberry.field(description="What the program is about.")
    status: ProgramStatus = strawberry.field(description="draft, active, paused or archived.")
    currency: str = strawberry.field(description="ISO-4217 currency of the program's rewards.")
    attribution_window_days: int = strawberry.field(
        description="How long after a click a signup still counts."
    )
    attribution_model: AttributionModel = strawberry.field(
        description="first_touch or last_touch: which link wins when a friend used several."
    )
    require_tracking_consent: bool = strawberry.field(
        description="No attribution cookie is set until the friend consents."
    )
    frequency_cap_days: int = strawberry.field(description="Ask frequency cap window in days.")
    frequency_cap_count: int = strawberry.field(description="Automated asks allowed per window.")
    tier1_cap_count: int = strawberry.field(
        description="Automated asks allowed per window for opted-in Tier 1 advocates."
    )
    offer_kind: OfferKind = strawberry.field(description="The referred-side offer's kind.")
    offer_value: int = strawberry.field(
        description="Percent for percent_off, minor units for amount_off/credit, days for trials."
    )
    offer_title: str = strawberry.field(description="The offer as the friend sees it.")
    offer_terms: str = strawberry.field(description="The offer's terms.")
    offer_expires_at: datetime | None = strawberry.field(description="When the offer ends.")
    redemption_ttl_days: int = strawberry.field(
        description="Days an issued redemption code stays valid."
    )
    rules_version: int = strawberry.field(
        description="Version of the attribution and reward rules, bumped on every change."
    )
    auto_approve_rewards: bool = strawberry.field(
        description="Approve rewards without an admin: at once, or when the rule's holding "
        "period ends (referrals awaiting moderation still wait)."
    )
    fulfilled_on_reattribution: FulfilledOnReattribution = strawberry.field(
        description="When a referral is re-attributed, what happens to rewards the previous "
        "advocate was already paid: claw_back voids them (inside their clawback window), "
        "hold_for_review (the default) keeps them and sets their reviewReason."
    )
    preview_image_url: str | None = strawberry.field(
        description="The image its share links unfurl with; null: the generated offer card "
        "(`/r/{code}/preview.png`)."
    )
    created_at: datetime = strawberry.field(description="When the program was created (UTC).")
    updated_at: datetime = strawberry.field(description="When the program last changed (UTC).")

    @strawberry.field(description="The active reward rules, lowest referral count first.")
    async def reward_rules(self, info: Info) -> list[RewardRuleType]:
        rules = await info.context.loaders.reward_rules.load(self.db_id)
        return [RewardRuleType.from_model(r) for r in rules]

    @classmethod
    def from_model(cls, m: Program) -> Self:
        return cls(
            db_id=m.id,
            id=strawberry.ID(encode_id("Program", m.id)),
            slug=m.slug,
            name=m.name,
            description=m.description,
            status=ProgramStatus(m.status),
            currency=m.currency,
            attribution_window_days=m.attribution_window_days,
            attribution_model=AttributionModel(m.attribution_model),
            require_tracking_consent=m.require_tracking_consent,
            frequency_cap_days=m.frequency_cap_days,
            frequency_cap_count=m.frequency_cap_count,
            tier1_cap_count=m.tier1_cap_count,
            offer_kind=OfferKind(m.offer_kind),
            offer_value=m.offer_value,
            offer_title=m.offer_title,
            offer_terms=m.offer_terms,
            offer_expires_at=m.offer_expires_at,
            redemption_ttl_days=m.redemption_ttl_days,
            rules_version=m.rules_version,
            auto_approve_rewards=bool((m.settings or {}).get("auto_approve_rewards")),
            fulfilled_on_reattribution=FulfilledOnReattribution(
                (m.settings or {}).get(
                    "reattribution_fulfilled", FulfilledOnReattribution.HOLD_FOR_REVIEW
                )
            ),
            preview_image_url=(m.settings or {}).get("preview_image_url"),
            created_at=m.created_at,
            updated_at=m.updated_at,
        )
