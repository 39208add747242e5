"""Reference calls: sales reserves an advocate for a named opportunity.

A reservation is an ask of type ``reference_call`` with the opportunity and a hold
(``reserved_until``). While it holds, the advocate cannot be reserved for another opportunity;
when the hold lapses it expires. It counts against the advocate's one contact cap like any
other ask. Completing it records the outcome and, when the call happened, a ``reference``
action linked to the opportunity, which is how advocacy-influenced revenue is traced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy.actions import RecordedAction, create_action
from vouch.advocacy.ask_policy import AWAITING, TYPE_PRIORITY
from vouch.advocacy.asks import blocking_guards, lock_advocate, raise_for
from vouch.advocacy.moments import MomentKind
from vouch.core.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from vouch.models import Ask, Opportunity, Program
from vouch.models.enums import (
    ActionKind,
    AskStatus,
    AskType,
    OpportunityStatus,
    ProgramStatus,
    Team,
)

DEFAULT_HOLD_DAYS = 14
MAX_HOLD_DAYS = 90


class Outcome(StrEnum):
    COMPLETED = "completed"
    DECLINED = "declined"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


OUTCOME_STATUS = {
    Outcome.COMPLETED: AskStatus.PUBLISHED,
    Outcome.DECLINED: AskStatus.DECLINED,
    Outcome.NO_SHOW: AskStatus.CANCELLED,
    Outcome.CANCELLED: AskStatus.CANCELLED,
}


def _expire_lapsed(asks: list[Ask], now: datetime) -> None:
    for ask in asks:
        if ask.status in AWAITING and ask.reserved_until is not None and ask.reserved_until <= now:
            ask.status = AskStatus.EXPIRED


async def reserve_reference(
    session: AsyncSession,
    *,
    advocate_id: int,
    opportunity_id: int,
    now: datetime,
    hold_days: int = DEFAULT_HOLD_DAYS,
) -> Ask:
    """Reserve the advocate for a reference call on an open opportunity.

    Reserving the same advocate for the same opportunity again returns the live reservation.
    """
    if not 1 <= hold_days <= MAX_HOLD_DAYS:
        raise ValidationFailed(f"holdDays must be between 1 and {MAX_HOLD_DAYS}", field="holdDays")
    advocate = await lock_advocate(session, advocate_id)
    opportunity = await session.get(Opportunity, opportunity_id)
    if opportunity is None:
        raise NotFound("no such opportunity", field="opportunityId")
    if opportunity.status != OpportunityStatus.OPEN:
        raise Conflict(
            f"the opportunity is {opportunity.status}; only open ones need references",
            field="opportunityId",
        )
    held = list(
        await session.scalars(
            select(Ask)
            .where(
                Ask.advocate_id == advocate_id,
                Ask.type == AskType.REFERENCE_CALL,
                Ask.status.in_(AWAITING),
            )
            .execution_options(populate_existing=True)
        )
    )
    _expire_lapsed(held, now)
    live = [a for a in held if a.status in AWAITING]
    for ask in live:
        if ask.opportunity_id == opportunity_id:
            return ask
    if live:
        other = live[0]
        assert other.reserved_until is not None
        raise DomainError(
            "the advocate is already reserved for another opportunity until "
            f"{other.reserved_until.isoformat()}",
            field="advocateId",
            code=ErrorCode.CONFLICT,
        )
    if advocate.tier not in (1, 2):
        raise Conflict(
            "only Tier 1 and Tier 2 advocates are asked for reference calls", field="advocateId"
        )
    program = await _program_for(session, opportunity)
    if program is not None:
        raise_for(await blocking_guards(session, advocate, program, now), field="advocateId")
    ask = Ask(
        advocate_id=advocate_id,
        program_id=program.id if program else None,
        type=AskType.REFERENCE_CALL,
        moment=MomentKind.REFERENCE_REQUEST,
        team=Team.SALES,
        priority=TYPE_PRIORITY[AskType.REFERENCE_CALL],
        automated=False,
        status=AskStatus.SENT,
        queued_at=now,
        sent_at=now,
        opportunity_id=opportunity_id,
        reserved_until=now + timedelta(days=hold_days),
    )
    session.add(ask)
    await session.flush()
    return ask


async def _program_for(session: AsyncSession, opportunity: Opportunity) -> Program | None:
    """The program whose cap rules apply: the opportunity's, else the oldest active one."""
    if opportunity.program_id is not None:
        program = await session.get(Program, opportunity.program_id)
        if program is not None:
            return program
    return await session.scalar(
        select(Program).where(Program.status == ProgramStatus.ACTIVE).order_by(Program.id).limit(1)
    )


@dataclass(frozen=True, slots=True)
class Completion:
    reservation: Ask
    action: RecordedAction | None


async def complete_reservation(
    session: AsyncSession,
    reservation_id: int,
    *,
    outcome: str,
    now: datetime,
    notes: str | None = None,
) -> Completion:
    """Record how the reference went. Repeating the same outcome is a no-op."""
    try:
        parsed = Outcome(outcome.strip().lower())
    except ValueError:
        allowed = ", ".join(o.value for o in Outcome)
        raise ValidationFailed(f"outcome must be one of: {allowed}", field="outcome") from None
    if notes is not None and len(notes) > 2000:
        raise ValidationFailed("notes must be at most 2000 characters", field="notes")
    ask = await session.get(Ask, reservation_id)
    if ask is None or ask.type != AskType.REFERENCE_CALL or ask.opportunity_id is None:
        raise NotFound("no such reference reservation", field="id")
    await lock_advocate(session, ask.advocate_id, field="id")
    await session.refresh(ask, with_for_update=True)
    target = OUTCOME_STATUS[parsed]
    recorded = (ask.outcome or "").split(":", 1)[0]
    if ask.status == target and recorded == parsed.value:
        return Completion(ask, None)
    if ask.status not in AWAITING:
        raise InvalidTransition(f"the reservation is already {ask.status}", field="id")
    assert ask.reserved_until is not None
    if ask.reserved_until <= now:
        raise DomainError(
            "the reservation expired; reserve the advocate again",
            field="id",
            code=ErrorCode.EXPIRED,
        )
    ask.status = target
    ask.outcome = parsed.value + (f": {notes}" if notes else "")
    action = None
    if parsed is Outcome.COMPLETED:
        ask.accepted_at = ask.accepted_at or now
        ask.published_at = now
        program = await session.get(Program, ask.program_id) if ask.program_id else None
        action = await create_action(
            session,
            advocate_id=ask.advocate_id,
            program=program,
            kind=ActionKind.REFERENCE,
            occurred_at=now,
            ask_id=ask.id,
            opportunity_ids=[ask.opportunity_id],
        )
    elif parsed is Outcome.DECLINED:
        ask.declined_at = now
        ask.decline_reason = notes
    await session.flush()
    return Completion(ask, action)
