"""Provider events received by the native integrations (HubSpot, Salesforce, Stripe)."""

from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from vouch.api.ids import encode_id
from vouch.api.types.node import Node
from vouch.models import IntegrationEvent


@strawberry.type(
    name="IntegrationEvent",
    description="One event a provider sent, and what Vouch did with it.",
)
class IntegrationEventType(Node):
    id: strawberry.ID = strawberry.field(description="Opaque global id.")
    provider: str = strawberry.field(description="hubspot, salesforce or stripe.")
    event_id: str = strawberry.field(
        description="The provider's id for the event (HubSpot eventId, Salesforce notification "
        "Id, Stripe event id): a redelivery with this id is not applied again."
    )
    event_type: str = strawberry.field(
        description="The provider's event type, e.g. deal.propertyChange or invoice.paid."
    )
    object_id: str | None = strawberry.field(
        description="The provider's id of the object (deal, Opportunity, invoice, …)."
    )
    status: str = strawberry.field(
        description="processed (applied), queued (a HubSpot fetch is pending), ignored (not "
        "used by Vouch, or matched no referral) or failed (refused; see detail)."
    )
    detail: str | None = strawberry.field(description="Why it was ignored or refused.")
    received_at: datetime = strawberry.field(description="When Vouch received it (UTC).")

    @classmethod
    def from_model(cls, m: IntegrationEvent) -> Self:
        return cls(
            id=strawberry.ID(encode_id("IntegrationEvent", m.id)),
            provider=m.provider,
            event_id=m.event_id,
            event_type=m.event_type,
            object_id=m.object_id,
            status=m.status,
            detail=m.detail,
            received_at=m.received_at,
        )
