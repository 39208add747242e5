from __future__ import annotations

import strawberry

from vouch.api.context import Info
from vouch.api.errors import InputError
from vouch.api.mutations.transaction import attempt
from vouch.api.permissions import require_widget
from vouch.attribution.share_events import record_share_event, share_target, validate_share_event
from vouch.core.clock import utcnow
from vouch.models import ShareEvent


@strawberry.type(description="Result of recordShareEvent.")
class RecordShareEventPayload:
    recorded: bool = strawberry.field(description="The event was stored.")
    errors: list[InputError] = strawberry.field(description="Why nothing was stored.")


@strawberry.type
class ShareEventMutations:
    @strawberry.mutation(
        description="Widget tokens only: record what the advocate did in the share flow "
        "(page_opened, link_copied, channel_chosen, message_edited, qr_shown); these feed the "
        "share-rate and outreach KPIs."
    )
    async def record_share_event(
        self,
        info: Info,
        kind: str,
        channel: str | None = None,
        program_slug: str | None = None,
    ) -> RecordShareEventPayload:
        advocate_id = require_widget(info.context)

        async def work() -> ShareEvent:
            event_kind, event_channel = validate_share_event(kind[:32], channel)
            target = await share_target(
                info.context.session, advocate_id, program_slug=(program_slug or "")[:64] or None
            )
            return await record_share_event(
                info.context.session,
                target=target,
                kind=event_kind,
                channel=event_channel,
                now=utcnow(),
            )

        _, errors = await attempt(info.context, work)
        return RecordShareEventPayload(recorded=errors is None, errors=errors or [])
