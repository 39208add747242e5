"""evaluateAsks, createAsk, sendAsk, transitionAsk: the ask lifecycle (write scope)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import strawberry

from vouch.advocacy.ask_policy import TARGETS
from vouch.advocacy.asks import create_ask, evaluate_asks, send_ask, transition_ask
from vouch.api.context import Info
from vouch.api.errors import user_errors
from vouch.api.ids import decode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.ask import (
    AdvocacyActionType,
    AskGuard,
    AskPayload,
    AskType,
    EvaluateAsksPayload,
    TransitionAskPayload,
)
from vouch.api.types.enums import AskType as AskKind
from vouch.api.types.enums import Team
from vouch.core.clock import utcnow
from vouch.core.errors import ValidationFailed
from vouch.models.enums import Scope


@strawberry.enum(description="Where to move an ask.")
class AskTransition(Enum):
    ACCEPT = "accept"
    PUBLISH = "publish"
    DECLINE = "decline"
    CANCEL = "cancel"


def _one_key(idempotency_key: str | None, request_key: str | None) -> str | None:
    """createAsk's retry key under either name (``requestKey`` is deprecated), never both."""
    if idempotency_key is not None and request_key is not None:
        raise ValidationFailed(
            "give idempotencyKey or the deprecated requestKey, not both", field="requestKey"
        )
    if request_key is None:
        return idempotency_key
    if not 1 <= len(request_key) <= 100:
        raise ValidationFailed("requestKey must be 1 to 100 characters", field="requestKey")
    return request_key


@strawberry.type
class AskMutations:
    @strawberry.mutation(
        description="Queue the asks an advocate's moments earn in a program and send the "
        "highest-priority one if no guard or the frequency cap holds it back. Safe to run "
        "concurrently and repeatedly: the cap holds and a moment queues its ask once."
    )
    @transaction(
        lambda exc: EvaluateAsksPayload(
            queued=[], sent=None, expired=0, guards=[], errors=user_errors(exc)
        )
    )
    async def evaluate_asks(
        self, info: Info, advocate_id: strawberry.ID, program_id: strawberry.ID
    ) -> EvaluateAsksPayload:
        require_scope(info.context, Scope.WRITE)
        result = await evaluate_asks(
            info.context.session,
            decode_id(advocate_id, "Advocate", field="advocateId"),
            decode_id(program_id, "Program", field="programId"),
            now=utcnow(),
        )
        return EvaluateAsksPayload(
            queued=[AskType.from_model(a) for a in result.queued],
            sent=AskType.from_model(result.sent) if result.sent else None,
            expired=result.expired,
            guards=[AskGuard.from_domain(g) for g in result.guards],
            errors=[],
        )

    @strawberry.mutation(
        description="Queue a manual ask from a team (marketing, sales, customer_success); it "
        "waits under the same one-contact cap. idempotencyKey makes a retry a no-op (the "
        "deprecated requestKey still works until the next release; not both at once)."
    )
    @transaction(lambda exc: AskPayload(ask=None, errors=user_errors(exc)))
    async def create_ask(
        self,
        info: Info,
        advocate_id: strawberry.ID,
        program_id: strawberry.ID,
        type: AskKind,
        team: Team,
        priority: int | None = None,
        idempotency_key: str | None = None,
        request_key: Annotated[
            str | None,
            strawberry.argument(
                deprecation_reason="Use idempotencyKey, the name every other mutation uses; "
                "requestKey is removed in the next release."
            ),
        ] = None,
    ) -> AskPayload:
        require_scope(info.context, Scope.WRITE)
        key = _one_key(idempotency_key, request_key)
        ask = await create_ask(
            info.context.session,
            advocate_id=decode_id(advocate_id, "Advocate", field="advocateId"),
            program_id=decode_id(program_id, "Program", field="programId"),
            ask_type=type.value,
            team=team.value,
            now=utcnow(),
            priority=priority,
            request_key=key,
        )
        return AskPayload(ask=AskType.from_model(ask), errors=[])

    @strawberry.mutation(
        description="Send a queued ask now, unless a guard or the frequency cap forbids it "
        "(error code CAPPED or CONFLICT)."
    )
    @transaction(lambda exc: AskPayload(ask=None, errors=user_errors(exc)))
    async def send_ask(self, info: Info, id: strawberry.ID) -> AskPayload:
        require_scope(info.context, Scope.WRITE)
        ask = await send_ask(info.context.session, decode_id(id, "Ask"), now=utcnow())
        return AskPayload(ask=AskType.from_model(ask), errors=[])

    @strawberry.mutation(
        description="Accept, publish, decline (offering a lighter fallback ask unless "
        "fallback is false) or cancel an ask. Publishing records the advocacy action and its "
        "points. Repeating a transition is a no-op."
    )
    @transaction(
        lambda exc: TransitionAskPayload(
            ask=None, fallback=None, action=None, points_awarded=0, errors=user_errors(exc)
        )
    )
    async def transition_ask(
        self,
        info: Info,
        id: strawberry.ID,
        to: AskTransition,
        reason: str | None = None,
        fallback: bool = True,
        url: str | None = None,
    ) -> TransitionAskPayload:
        require_scope(info.context, Scope.WRITE)
        result = await transition_ask(
            info.context.session,
            decode_id(id, "Ask"),
            to=TARGETS[to.value],
            now=utcnow(),
            reason=reason,
            fallback=fallback,
            url=url,
        )
        return TransitionAskPayload(
            ask=AskType.from_model(result.ask),
            fallback=AskType.from_model(result.fallback) if result.fallback else None,
            action=AdvocacyActionType.from_model(result.action.action) if result.action else None,
            points_awarded=result.action.points if result.action else 0,
            errors=[],
        )
