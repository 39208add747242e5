"""Outbound webhook endpoints and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from vouch.api.context import Info
from vouch.api.ids import encode_id
from vouch.api.types.node import Node
from vouch.attribution import webhooks
from vouch.models import WebhookDelivery, WebhookEndpoint


@strawberry.type(name="WebhookEndpoint", description="A URL that receives signed events.")
class WebhookEndpointType(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    url: str = strawberry.field(description="Where events are POSTed.")
    event_types: list[str] = strawberry.field(
        description="Subscribed event types; empty means every event."
    )
    active: bool = strawberry.field(description="Inactive endpoints receive nothing.")
    description: str | None = strawberry.field(description="What the endpoint is for.")
    created_at: datetime = strawberry.field(description="When it was registered (UTC).")

    @classmethod
    def from_model(cls, m: WebhookEndpoint) -> Self:
        return cls(
            id=strawberry.ID(encode_id("WebhookEndpoint", m.id)),
            url=m.url,
            event_types=list(m.event_types),
            active=m.active,
            description=m.description,
            created_at=m.created_at,
        )


@strawberry.type(name="WebhookDelivery", description="One event's delivery to one endpoint.")
class WebhookDeliveryType(Node):
    event_db_id: strawberry.Private[int]
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint.")
    message_id: str = strawberry.field(
        description="The `webhook-id` header sent (stable across retries)."
    )
    status: str = strawberry.field(description="pending, delivered or dead (dead letter).")
    attempts: int = strawberry.field(description="Attempts made so far.")
    next_attempt_at: datetime = strawberry.field(description="When the next attempt is due.")
    last_status_code: int | None = strawberry.field(description="HTTP status of the last try.")
    last_error: str | None = strawberry.field(description="Transport error of the last try.")
    delivered_at: datetime | None = strawberry.field(description="When it was accepted.")

    @strawberry.field(description="The event type, e.g. reward.approved.")
    async def event_type(self, info: Info) -> str:
        event = await info.context.loaders.outbox_event.load(self.event_db_id)
        return event.event_type if event else ""

    @classmethod
    def from_model(cls, m: WebhookDelivery) -> Self:
        return cls(
            event_db_id=m.event_id,
            id=strawberry.ID(encode_id("WebhookDelivery", m.id)),
            endpoint_id=strawberry.ID(encode_id("WebhookEndpoint", m.endpoint_id)),
            message_id=webhooks.message_id(m.event_id),
            status=m.status,
            attempts=m.attempts,
            next_attempt_at=m.next_attempt_at,
            last_status_code=m.last_status_code,
            last_error=m.last_error,
            delivered_at=m.delivered_at,
        )
