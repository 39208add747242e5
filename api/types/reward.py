"""Rewards and their immutable ledger entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

import strawberry

from vouch.api.context import Info, WidgetPrincipal
from vouch.api.ids import encode_id
from vouch.api.types.node import Node
from vouch.api.types.rows import RowBacked, computed_fields
from vouch.models import RewardEntry
from vouch.models.snapshots import RewardSnapshot

WIDGET_ACTOR = "vouch"


@strawberry.type(name="RewardEntry", description="One immutable step in a reward's life.")
class RewardEntryType:
    state: str = strawberry.field(description="pending, approved, fulfilled or voided.")
    at: datetime = strawberry.field(description="When the step happened (UTC).")
    actor: str = strawberry.field(
        description="Who took the step (API key, admin, system); `vouch` for widget tokens."
    )
    reason: str | None = strawberry.field(
        description="Why, when given; null for widget tokens (a voiding reason may name the"
        " fraud rule)."
    )
    fulfilment_ref: str | None = strawberry.field(
        description="The fulfilment's reference (payout id, discount code, credit id)."
    )
    amount_minor: int = strawberry.field(description="The reward amount at this step.")

    @classmethod
    def from_model(cls, m: RewardEntry, *, for_widget: bool = False) -> Self:
        return cls(
            state=m.state,
            at=m.at,
            actor=WIDGET_ACTOR if for_widget else m.actor,
            reason=None if for_widget else m.reason,
            fulfilment_ref=m.fulfilment_ref,
            amount_minor=m.amount_minor,
        )


@strawberry.type(name="Reward", description="What an advocate (or the referred friend) earned.")
class RewardType(Node, RowBacked):
    db_id: strawberry.Private[int]
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    program_id: strawberry.ID = strawberry.field(description="The program's id.")
    referral_id: strawberry.ID = strawberry.field(description="The referral that earned it.")
    advocate_id: strawberry.ID | None = strawberry.field(
        description="The referrer; null for the referred friend's reward."
    )
    rule_id: strawberry.ID = strawberry.field(description="The reward rule that applied.")
    side: str = strawberry.field(description="referrer or referred.")
    kind: str = strawberry.field(
        description="credit, discount_code, cash, gift_card, points, donation or status."
    )
    amount_minor: int = strawberry.field(description="Amount in minor units of `currency`.")
    currency: str = strawberry.field(description="ISO-4217 currency.")
    points: int = strawberry.field(description="Points, for points rewards.")
    state: str = strawberry.field(description="pending, approved, fulfilled or voided.")
    trigger_ref: str = strawberry.field(
        description="What earned it beyond the referral, e.g. `rev:<id>` for a revenue share."
    )
    clawback_until: datetime | None = strawberry.field(
        description="Until when a refund or churn voids it."
    )
    held_until: datetime | None = strawberry.field(
        description="End of the rule's holding period: a pending reward cannot be approved "
        "before it (programs that auto-approve approve it then); a refund or churn before it "
        "voids the reward. Null when the rule holds nothing."
    )
    review_reason: str | None = strawberry.field(
        description="Set when a fulfilled reward is held for review, e.g. 're-attributed to "
        "another advocate' (the program keeps such rewards rather than clawing them back)."
    )
    round: int = strawberry.field(
        description="The referral's reward round it was earned in: 0, then one more each time "
        "the referral's credit moved to another advocate or a reopened deal was won again."
    )
    created_at: datetime = strawberry.field(description="When it was earned (UTC).")

    @strawberry.field(description="The ledger: every state change, oldest first.")
    async def entries(self, info: Info) -> list[RewardEntryType]:
        rows = await info.context.loaders.reward_entries.load(self.db_id)
        widget = isinstance(info.context.principal, WidgetPrincipal)
        return [RewardEntryType.from_model(r, for_widget=widget) for r in rows]

    @classmethod
    def from_model(cls, m: RewardSnapshot) -> Self:
        """Fields are computed from ``m`` when first read (see ``api.types.rows``)."""
        return cls.lazy(_m=m)


computed_fields(
    RewardType,
    {
        "db_id": lambda o: o._m.id,
        "id": lambda o: strawberry.ID(encode_id("Reward", o._m.id)),
        "program_id": lambda o: strawberry.ID(encode_id("Program", o._m.program_id)),
        "referral_id": lambda o: strawberry.ID(encode_id("Referral", o._m.referral_id)),
        "advocate_id": lambda o: (
            strawberry.ID(encode_id("Advocate", o._m.advocate_id)) if o._m.advocate_id else None
        ),
        "rule_id": lambda o: strawberry.ID(encode_id("RewardRule", o._m.rule_id)),
        "side": lambda o: o._m.side,
        "kind": lambda o: o._m.kind,
        "amount_minor": lambda o: o._m.amount_minor,
        "currency": lambda o: o._m.currency,
        "points": lambda o: o._m.points,
        "state": lambda o: o._m.state,
        "trigger_ref": lambda o: o._m.trigger_ref,
        "clawback_until": lambda o: o._m.clawback_until,
        "held_until": lambda o: o._m.held_until,
        "review_reason": lambda o: o._m.review_reason,
        "round": lambda o: o._m.round,
        "created_at": lambda o: o._m.created_at,
    },
)


@strawberry.type(name="RewardTotal", description="Sums over rewards in one state and currency.")
class RewardTotalType:
    state: str = strawberry.field(description="pending, approved, fulfilled or voided.")
    currency: str = strawberry.field(description="ISO-4217 currency.")
    count: int = strawberry.field(description="How many rewards.")
    amount_minor: int = strawberry.field(description="Their amount in minor units.")
    points: int = strawberry.field(description="Their points.")

    @classmethod
    def from_domain(cls, t: Any) -> Self:
        return cls(
            state=t.state,
            currency=t.currency,
            count=t.count,
            amount_minor=t.amount_minor,
            points=t.points,
        )
