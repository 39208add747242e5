from __future__ import annotations

import strawberry

from vouch.api.connections import to_connection
from vouch.api.context import Info
from vouch.api.ids import decode_id
from vouch.api.pagination import Connection, page_args
from vouch.api.permissions import require_scope
from vouch.api.types.webhook import WebhookDeliveryType, WebhookEndpointType
from vouch.attribution import webhooks
from vouch.models.enums import Scope


@strawberry.type
class WebhookQueries:
    @strawberry.field(
        description="Registered webhook endpoints, oldest first (secrets are never shown again)."
    )
    async def webhook_endpoints(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[WebhookEndpointType]:
        require_scope(info.context, Scope.ADMIN)
        args = page_args("webhookEndpoints", first, after, last, before)
        page = await webhooks.list_endpoints(info.context.session, **args.window())
        return to_connection(page, WebhookEndpointType.from_model, key=lambda e: e.id, args=args)

    @strawberry.field(description="The delivery log, newest first.")
    async def webhook_deliveries(
        self,
        info: Info,
        endpoint_id: strawberry.ID | None = None,
        status: str | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[WebhookDeliveryType]:
        require_scope(info.context, Scope.ADMIN)
        args = page_args("webhookDeliveries", first, after, last, before)
        page = await webhooks.list_deliveries(
            info.context.session,
            endpoint_id=decode_id(endpoint_id, "WebhookEndpoint", field="endpointId")
            if endpoint_id
            else None,
            status=status,
            **args.window(),
        )
        return to_connection(page, WebhookDeliveryType.from_model, key=lambda d: d.id, args=args)
