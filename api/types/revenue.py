"""Revenue events from billing."""

from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from vouch.api.ids import encode_id
from vouch.api.types.node import Node
from vouch.models.snapshots import RevenueEventSnapshot


@strawberry.type(name="RevenueEvent", description="A charge or refund from billing.")
class RevenueEventType(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    external_id: str = strawberry.field(description="The billing system's id (the natural key).")
    kind: str = strawberry.field(description="one_time, recurring or refund.")
    amount_minor: int = strawberry.field(
        description="Always positive, in minor units; a refund's direction is its kind."
    )
    currency: str = strawberry.field(description="ISO-4217 currency.")
    occurred_at: datetime = strawberry.field(description="When it happened (UTC).")
    source: str = strawberry.field(description="Where it came from.")
    opportunity_id: strawberry.ID | None = strawberry.field(description="The deal, if linked.")
    referral_id: strawberry.ID | None = strawberry.field(description="The referral, if linked.")

    @classmethod
    def from_model(cls, m: RevenueEventSnapshot) -> Self:
        return cls(
            id=strawberry.ID(encode_id("RevenueEvent", m.id)),
            external_id=m.external_id,
            kind=m.kind,
            amount_minor=m.amount_minor,
            currency=m.currency,
            occurred_at=m.occurred_at,
            source=m.source,
            opportunity_id=strawberry.ID(encode_id("Opportunity", m.opportunity_id))
            if m.opportunity_id
            else None,
            referral_id=strawberry.ID(encode_id("Referral", m.referral_id))
            if m.referral_id
            else None,
        )
