from __future__ import annotations

import strawberry

from vouch.api.context import Info
from vouch.api.errors import InputError, user_errors
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_widget
from vouch.attribution.share_events import record_share_event, share_target, validate_share_event
from vouch.core.clock import utcnow


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
    @transaction(lambda exc: RecordShareEventPayload(recorded=False, errors=user_errors(exc)))
    async def record_share_event(
        self,
        info: Info,
        kind: str,
        channel: str | None = None,
        program_slug: str | None = None,
    ) -> RecordShareEventPayload:
        advocate_id = require_widget(info.context)

        event_kind, event_channel = validate_share_event(kind[:32], channel)
        target = await share_target(
            info.context.session, advocate_id, program_slug=(program_slug or "")[:64] or None
        )
        await record_share_event(
            info.context.session,
            target=target,
            kind=event_kind,
            channel=event_channel,
            now=utcnow(),
        )
        return RecordShareEventPayload(recorded=True, errors=[])
