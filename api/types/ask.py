"""GraphQL types for asks (including reference reservations), advocacy actions and the
next-best-ask, with per-request loaders of an advocate's asks and next ask."""

from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from vouch.advocacy.actions import RecordedAction
from vouch.advocacy.asks import NextBestAsk
from vouch.advocacy.moments import Guard
from vouch.api.errors import InputError
from vouch.api.ids import encode_id
from vouch.api.types.enums import AskStatus, Team
from vouch.api.types.enums import AskType as AskKind
from vouch.api.types.node import Node
from vouch.models import AdvocacyAction
from vouch.models.snapshots import AskSnapshot


def _opt_id(type_name: str, pk: int | None) -> strawberry.ID | None:
    return strawberry.ID(encode_id(type_name, pk)) if pk is not None else None


@strawberry.type(name="Ask", description="A request to an advocate, and what came of it.")
class AskType(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    advocate_id: strawberry.ID = strawberry.field(description="Who is asked.")
    program_id: strawberry.ID | None = strawberry.field(description="The program it is for.")
    type: AskKind = strawberry.field(description="What is asked for.")
    moment: str = strawberry.field(
        description="What earned it: nps_promoter, renewal_signed, dormant_30, manual, ..."
    )
    team: Team = strawberry.field(description="The team that asks.")
    priority: int = strawberry.field(description="Higher goes first when several qualify.")
    automated: bool = strawberry.field(description="Queued by the engine, not by a person.")
    status: AskStatus = strawberry.field(description="Where the ask is in its lifecycle.")
    queued_at: datetime = strawberry.field(description="When it was queued.")
    sent_at: datetime | None = strawberry.field(description="When it was sent.")
    accepted_at: datetime | None = strawberry.field(description="When the advocate said yes.")
    published_at: datetime | None = strawberry.field(description="When it went live.")
    declined_at: datetime | None = strawberry.field(description="When the advocate said no.")
    decline_reason: str | None = strawberry.field(description="Why, if they said.")
    fallback_of_id: strawberry.ID | None = strawberry.field(
        description="The declined ask this one was offered in place of."
    )
    opportunity_id: strawberry.ID | None = strawberry.field(
        description="Reference calls: the opportunity it is reserved for."
    )
    reserved_until: datetime | None = strawberry.field(
        description="Reference calls: the reservation lapses at this time."
    )
    outcome: str | None = strawberry.field(description="Reference calls: how it went.")

    @classmethod
    def from_model(cls, m: AskSnapshot) -> Self:
        return cls(
            id=strawberry.ID(encode_id("Ask", m.id)),
            advocate_id=strawberry.ID(encode_id("Advocate", m.advocate_id)),
            program_id=_opt_id("Program", m.program_id),
            type=AskKind(m.type),
            moment=m.moment,
            team=Team(m.team),
            priority=m.priority,
            automated=m.automated,
            status=AskStatus(m.status),
            queued_at=m.queued_at,
            sent_at=m.sent_at,
            accepted_at=m.accepted_at,
            published_at=m.published_at,
            declined_at=m.declined_at,
            decline_reason=m.decline_reason,
            fallback_of_id=_opt_id("Ask", m.fallback_of_id),
            opportunity_id=_opt_id("Opportunity", m.opportunity_id),
            reserved_until=m.reserved_until,
            outcome=m.outcome,
        )


@strawberry.type(description="Something that holds an ask back.")
class AskGuard:
    code: str = strawberry.field(
        description="detractor, escalation_open, renewal_blackout, decline_cooldown or "
        "frequency_cap."
    )
    message: str = strawberry.field(description="Explanation.")
    until: datetime | None = strawberry.field(
        description="When it lifts by itself; null when it waits for a new fact."
    )

    @classmethod
    def from_domain(cls, g: Guard) -> Self:
        return cls(code=g.code.value, message=g.message, until=g.until)


@strawberry.type(description="What to put in front of an advocate next.")
class NextBestAskType:
    advocate_id: strawberry.ID = strawberry.field(description="The advocate.")
    ask: AskType | None = strawberry.field(description="The ask, if any is open.")
    reason: str = strawberry.field(
        description="awaiting_response (sent, not yet answered), ready (can be sent now), "
        "waiting (held back by guards) or nothing_queued."
    )
    guards: list[AskGuard] = strawberry.field(
        description="What holds it back, if waiting; with nothing_queued, what would hold a new "
        "ask back (e.g. escalation_open)."
    )
    eligible_at: datetime | None = strawberry.field(description="When it can be sent, if known.")

    @classmethod
    def from_domain(cls, n: NextBestAsk) -> Self:
        return cls(
            advocate_id=strawberry.ID(encode_id("Advocate", n.advocate_id)),
            ask=AskType.from_model(n.ask) if n.ask else None,
            reason=n.reason,
            guards=[AskGuard.from_domain(g) for g in n.guards],
            eligible_at=n.eligible_at,
        )


@strawberry.type(name="AdvocacyAction", description="Something an advocate did for us.")
class AdvocacyActionType(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    advocate_id: strawberry.ID = strawberry.field(description="Who did it.")
    program_id: strawberry.ID | None = strawberry.field(description="The program, if any.")
    ask_id: strawberry.ID | None = strawberry.field(description="The ask it answered, if any.")
    kind: str = strawberry.field(
        description="review, testimonial, case_study, quote, reference, talk, referral, "
        "social_share, community or survey."
    )
    occurred_at: datetime = strawberry.field(description="When it happened.")
    url: str | None = strawberry.field(description="Where it is published.")
    external_id: str | None = strawberry.field(description="The sender's id for it.")

    @classmethod
    def from_model(cls, m: AdvocacyAction) -> Self:
        return cls(
            id=strawberry.ID(encode_id("AdvocacyAction", m.id)),
            advocate_id=strawberry.ID(encode_id("Advocate", m.advocate_id)),
            program_id=_opt_id("Program", m.program_id),
            ask_id=_opt_id("Ask", m.ask_id),
            kind=m.kind,
            occurred_at=m.occurred_at,
            url=m.url,
            external_id=m.external_id,
        )


@strawberry.type(description="The result of evaluateAsks.")
class EvaluateAsksPayload:
    queued: list[AskType] = strawberry.field(description="Asks newly queued by this evaluation.")
    sent: AskType | None = strawberry.field(description="The ask sent now, if any.")
    expired: int = strawberry.field(description="Queued asks that expired (moment passed).")
    guards: list[AskGuard] = strawberry.field(description="What held sending back, if anything.")
    errors: list[InputError] = strawberry.field(description="Why it did not run, if so.")


@strawberry.type(description="The result of createAsk, sendAsk and reserveReference.")
class AskPayload:
    ask: AskType | None = strawberry.field(description="The ask.")
    errors: list[InputError] = strawberry.field(description="Why nothing changed, if so.")


@strawberry.type(description="The result of transitionAsk and completeReservation.")
class TransitionAskPayload:
    ask: AskType | None = strawberry.field(description="The ask after the transition.")
    fallback: AskType | None = strawberry.field(
        description="The lighter ask offered after a decline, if any."
    )
    action: AdvocacyActionType | None = strawberry.field(
        description="The advocacy action recorded on publication, if any."
    )
    points_awarded: int = strawberry.field(description="Points the action earned now.")
    errors: list[InputError] = strawberry.field(description="Why nothing changed, if so.")


@strawberry.type(description="The result of recordAction.")
class RecordActionPayload:
    action: AdvocacyActionType | None = strawberry.field(description="The stored action.")
    created: bool = strawberry.field(description="False when it was already recorded.")
    points_awarded: int = strawberry.field(description="Points it earned now.")
    errors: list[InputError] = strawberry.field(description="Why nothing was stored, if so.")

    @classmethod
    def from_domain(cls, r: RecordedAction) -> Self:
        return cls(
            action=AdvocacyActionType.from_model(r.action),
            created=r.created,
            points_awarded=r.points,
            errors=[],
        )
