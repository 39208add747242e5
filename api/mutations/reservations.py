"""reserveReference and completeReservation: reference calls for sales (write scope)."""

from __future__ import annotations

import strawberry

from vouch.advocacy.reservations import DEFAULT_HOLD_DAYS, complete_reservation, reserve_reference
from vouch.api.context import Info
from vouch.api.errors import user_errors
from vouch.api.ids import decode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.ask import AdvocacyActionType, AskPayload, AskType, TransitionAskPayload
from vouch.core.clock import utcnow
from vouch.models.enums import Scope


@strawberry.type
class ReservationMutations:
    @strawberry.mutation(
        description="Reserve a Tier 1/2 advocate for a reference call on an open opportunity. "
        "An advocate holds one reservation at a time; it lapses after holdDays. Reserving "
        "again for the same opportunity returns the live reservation."
    )
    @transaction(lambda exc: AskPayload(ask=None, errors=user_errors(exc)))
    async def reserve_reference(
        self,
        info: Info,
        advocate_id: strawberry.ID,
        opportunity_id: strawberry.ID,
        hold_days: int = DEFAULT_HOLD_DAYS,
    ) -> AskPayload:
        require_scope(info.context, Scope.WRITE)
        ask = await reserve_reference(
            info.context.session,
            advocate_id=decode_id(advocate_id, "Advocate", field="advocateId"),
            opportunity_id=decode_id(opportunity_id, "Opportunity", field="opportunityId"),
            now=utcnow(),
            hold_days=hold_days,
        )
        return AskPayload(ask=AskType.from_model(ask), errors=[])

    @strawberry.mutation(
        description="Record how a reference call went: completed (records a reference action "
        "linked to the opportunity), declined, no_show or cancelled."
    )
    @transaction(
        lambda exc: TransitionAskPayload(
            ask=None, fallback=None, action=None, points_awarded=0, errors=user_errors(exc)
        )
    )
    async def complete_reservation(
        self, info: Info, id: strawberry.ID, outcome: str, notes: str | None = None
    ) -> TransitionAskPayload:
        require_scope(info.context, Scope.WRITE)
        done = await complete_reservation(
            info.context.session, decode_id(id, "Ask"), outcome=outcome, notes=notes, now=utcnow()
        )
        return TransitionAskPayload(
            ask=AskType.from_model(done.reservation),
            fallback=None,
            action=AdvocacyActionType.from_model(done.action.action) if done.action else None,
            points_awarded=done.action.points if done.action else 0,
            errors=[],
        )
