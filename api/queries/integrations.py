from __future__ import annotations

import strawberry

from vouch.api.connections import to_connection
from vouch.api.context import Info
from vouch.api.pagination import Connection, page_args
from vouch.api.permissions import require_scope
from vouch.api.types.integration import IntegrationEventType
from vouch.attribution.integrations import events
from vouch.models.enums import Scope


@strawberry.type
class IntegrationQueries:
    @strawberry.field(
        description="Events received from HubSpot, Salesforce and Stripe, newest first, with "
        "what became of each (admin scope)."
    )
    async def integration_events(
        self,
        info: Info,
        provider: str | None = None,
        status: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[IntegrationEventType]:
        require_scope(info.context, Scope.ADMIN)
        # newest first, forward only (`last`/`before` are not offered on this log)
        args = page_args("integrationEvents", first, after)
        page = await events.list_events(
            info.context.session,
            provider=provider,
            status=status,
            first=args.size,
            after=args.after,
        )
        return to_connection(page, IntegrationEventType.from_model, key=lambda e: e.id, args=args)
