"""Reference reservations: no double-booking, expiry, outcomes linked to the opportunity."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.advocacy.conftest import NOW, make_opportunity, make_scored
from tests.factories import make_advocate, make_program
from vouch.advocacy.actions import record_action
from vouch.advocacy.asks import expire_due
from vouch.advocacy.reservations import complete_reservation, reserve_reference
from vouch.core.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from vouch.models import ActionOpportunity, AdvocacyAction, Ask, PointsEntry


async def setup(session, tier=1):
    program = await make_program(session, frequency_cap_days=1)
    person = await make_advocate(session)
    await make_scored(session, person.id, program.id, tier)
    deal = await make_opportunity(session, program_id=program.id)
    other = await make_opportunity(session, program_id=program.id)
    return program, person, deal, other


async def count_asks(session) -> int:
    return int(await session.scalar(select(func.count()).select_from(Ask)) or 0)


async def test_reserve_is_idempotent_and_never_double_books(session):
    _program, person, deal, other = await setup(session)
    first = await reserve_reference(session, advocate_id=person.id, opportunity_id=deal.id, now=NOW)
    assert (first.type, first.team, first.status, first.reserved_until, first.opportunity_id) == (
        "reference_call",
        "sales",
        "sent",
        NOW + timedelta(days=14),
        deal.id,
    )
    again = await reserve_reference(session, advocate_id=person.id, opportunity_id=deal.id, now=NOW)
    assert again.id == first.id
    with pytest.raises(DomainError) as exc:
        await reserve_reference(session, advocate_id=person.id, opportunity_id=other.id, now=NOW)
    assert exc.value.message == (
        "the advocate is already reserved for another opportunity until "
        f"{(NOW + timedelta(days=14)).isoformat()}"
    )
    assert await count_asks(session) == 1


async def test_reservation_expires_and_frees_the_advocate(session):
    _program, person, deal, other = await setup(session)
    first = await reserve_reference(
        session, advocate_id=person.id, opportunity_id=deal.id, now=NOW, hold_days=3
    )
    later = NOW + timedelta(days=3)
    with pytest.raises(DomainError) as exc:
        await complete_reservation(session, first.id, outcome="completed", now=later)
    assert exc.value.code == ErrorCode.EXPIRED
    assert await expire_due(session, now=later) == (0, 1)
    second = await reserve_reference(
        session, advocate_id=person.id, opportunity_id=other.id, now=later
    )
    await session.refresh(first)
    assert (first.status, second.status) == ("expired", "sent")


async def test_completed_reference_is_an_action_on_the_opportunity(session):
    _program, person, deal, _ = await setup(session)
    reservation = await reserve_reference(
        session, advocate_id=person.id, opportunity_id=deal.id, now=NOW
    )
    done = await complete_reservation(
        session,
        reservation.id,
        outcome="completed",
        notes="great call",
        now=NOW + timedelta(days=2),
    )
    assert (done.reservation.status, done.reservation.outcome) == (
        "published",
        "completed: great call",
    )
    assert done.action is not None
    assert (done.action.action.kind, done.action.points) == ("reference", 150)
    links = (
        await session.execute(select(ActionOpportunity.action_id, ActionOpportunity.opportunity_id))
    ).all()
    assert [tuple(r) for r in links] == [(done.action.action.id, deal.id)]
    again = await complete_reservation(
        session, reservation.id, outcome="completed", now=NOW + timedelta(days=2)
    )
    assert again.action is None
    assert await session.scalar(select(func.sum(PointsEntry.points))) == 150
    with pytest.raises(InvalidTransition):
        await complete_reservation(
            session, reservation.id, outcome="declined", now=NOW + timedelta(days=2)
        )


async def test_declined_outcome(session):
    _program, person, deal, _other = await setup(session)
    r = await reserve_reference(session, advocate_id=person.id, opportunity_id=deal.id, now=NOW)
    done = await complete_reservation(session, r.id, outcome="declined", notes="too busy", now=NOW)
    assert (
        done.reservation.status,
        done.reservation.declined_at,
        done.reservation.decline_reason,
    ) == (
        "declined",
        NOW,
        "too busy",
    )
    assert await session.scalar(select(func.count()).select_from(AdvocacyAction)) == 0


async def test_reservation_guards(session):
    _program, person, deal, _ = await setup(session, tier=3)
    with pytest.raises(Conflict) as exc:
        await reserve_reference(session, advocate_id=person.id, opportunity_id=deal.id, now=NOW)
    assert exc.value.message == "only Tier 1 and Tier 2 advocates are asked for reference calls"
    won = await make_opportunity(session, status="won")
    _program2, person2, _, _ = await setup(session, tier=1)
    with pytest.raises(Conflict) as exc:
        await reserve_reference(session, advocate_id=person2.id, opportunity_id=won.id, now=NOW)
    assert exc.value.field == "opportunityId"
    with pytest.raises(NotFound):
        await reserve_reference(session, advocate_id=person2.id, opportunity_id=999_999, now=NOW)
    with pytest.raises(ValidationFailed):
        await reserve_reference(
            session, advocate_id=person2.id, opportunity_id=won.id, now=NOW, hold_days=0
        )
    with pytest.raises(ValidationFailed) as bad:
        await complete_reservation(session, 1, outcome="great", now=NOW)
    assert bad.value.message == "outcome must be one of: completed, declined, no_show, cancelled"
    assert await count_asks(session) == 0


async def test_reservation_counts_against_the_contact_cap(session):
    _program, person, deal, other = await setup(session)
    r = await reserve_reference(session, advocate_id=person.id, opportunity_id=deal.id, now=NOW)
    await complete_reservation(session, r.id, outcome="completed", now=NOW)
    with pytest.raises(DomainError) as exc:
        await reserve_reference(
            session, advocate_id=person.id, opportunity_id=other.id, now=NOW + timedelta(hours=1)
        )
    assert exc.value.code == ErrorCode.CAPPED
    ok = await reserve_reference(
        session, advocate_id=person.id, opportunity_id=other.id, now=NOW + timedelta(days=1)
    )
    assert ok.opportunity_id == other.id


async def test_record_action_links_opportunities_idempotently(session):
    program, person, deal, other = await setup(session)
    recorded = await record_action(
        session,
        advocate_id=person.id,
        program_id=program.id,
        kind="talk",
        occurred_at=NOW,
        now=NOW,
        external_id="conf-2026",
        opportunity_ids=[deal.id, other.id, deal.id],
        url="https://conf.example/talk",
    )
    again = await record_action(
        session,
        advocate_id=person.id,
        program_id=program.id,
        kind="talk",
        occurred_at=NOW,
        now=NOW,
        external_id="conf-2026",
        opportunity_ids=[deal.id],
    )
    assert (recorded.created, recorded.points, again.created, again.action.id) == (
        True,
        200,
        False,
        recorded.action.id,
    )
    links = (
        await session.scalars(
            select(ActionOpportunity.opportunity_id).order_by(ActionOpportunity.opportunity_id)
        )
    ).all()
    assert links == sorted([deal.id, other.id])
    with pytest.raises(NotFound) as exc:
        await record_action(
            session,
            advocate_id=person.id,
            program_id=None,
            kind="talk",
            occurred_at=NOW,
            now=NOW,
            opportunity_ids=[999_999],
        )
    assert exc.value.field == "opportunityIds"
    with pytest.raises(ValidationFailed) as exc2:
        await record_action(
            session, advocate_id=person.id, program_id=None, kind="dance", occurred_at=NOW, now=NOW
        )
    assert exc2.value.field == "kind"
    assert await session.scalar(select(func.count()).select_from(AdvocacyAction)) == 1
