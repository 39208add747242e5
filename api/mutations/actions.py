"""recordAction: an advocacy action outside an ask, linked to opportunities (write scope)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from vouch.advocacy.actions import record_action
from vouch.api.context import Info
from vouch.api.errors import user_errors
from vouch.api.ids import decode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.ask import RecordActionPayload
from vouch.core.clock import utcnow
from vouch.core.errors import ValidationFailed
from vouch.models.enums import Scope


@strawberry.type
class ActionMutations:
    @strawberry.mutation(
        description="Record an advocacy action (review, testimonial, case_study, quote, "
        "reference, talk, referral, social_share, community, survey), link the opportunities "
        "it touched, and award its points. externalId makes a retry a no-op."
    )
    @transaction(
        lambda exc: RecordActionPayload(
            action=None, created=False, points_awarded=0, errors=user_errors(exc)
        )
    )
    async def record_action(
        self,
        info: Info,
        advocate_id: strawberry.ID,
        kind: str,
        occurred_at: datetime,
        program_id: strawberry.ID | None = None,
        url: str | None = None,
        external_id: str | None = None,
        opportunity_ids: list[strawberry.ID] | None = None,
        data: JSON | None = None,
    ) -> RecordActionPayload:
        require_scope(info.context, Scope.WRITE)
        if data is not None and not isinstance(data, dict):
            raise ValidationFailed("data must be a JSON object", field="data")
        recorded = await record_action(
            info.context.session,
            advocate_id=decode_id(advocate_id, "Advocate", field="advocateId"),
            program_id=decode_id(program_id, "Program", field="programId") if program_id else None,
            kind=kind,
            occurred_at=occurred_at,
            now=utcnow(),
            url=url,
            external_id=external_id,
            opportunity_ids=[
                decode_id(o, "Opportunity", field=f"opportunityIds.{i}")
                for i, o in enumerate(opportunity_ids or [])
            ],
            data=data,
        )
        return RecordActionPayload.from_domain(recorded)
