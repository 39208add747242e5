"""The referral state machine: every path, the audit trail, and what invalid moves leave."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.attribution.factories import at, make_referral, make_world
from vouch.attribution import lifecycle
from vouch.core.errors import InvalidTransition, ValidationFailed
from vouch.models import OutboxEvent, ReferralEvent


async def _events(session, referral_id):
    rows = await session.scalars(
        select(ReferralEvent)
        .where(ReferralEvent.referral_id == referral_id)
        .order_by(ReferralEvent.id)
    )
    return [(e.from_status, e.to_status, e.source, e.actor) for e in rows]


async def test_happy_path_writes_one_event_per_transition(session, codec):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    for status, day in (("qualified", 1), ("opportunity", 2), ("won", 3), ("churned", 90)):
        result = await lifecycle.transition(
            session, referral.id, status, source="crm", actor="api_key:crm", now=at(day)
        )
        assert result.event is not None
        assert result.event.at == at(day)
    assert referral.status == "churned"
    assert await _events(session, referral.id) == [
        (None, "lead", "landing", "landing"),
        ("lead", "qualified", "crm", "api_key:crm"),
        ("qualified", "opportunity", "crm", "api_key:crm"),
        ("opportunity", "won", "crm", "api_key:crm"),
        ("won", "churned", "crm", "api_key:crm"),
    ]
    types = list(await session.scalars(select(OutboxEvent.event_type).order_by(OutboxEvent.id)))
    assert types == ["referral.created"] + ["referral.status_changed"] * 4


async def test_same_status_is_a_no_op(session, codec):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await lifecycle.transition(
        session, referral.id, "qualified", source="crm", actor=None, now=at(1)
    )
    again = await lifecycle.transition(
        session, referral.id, "qualified", source="crm", actor=None, now=at(2)
    )
    assert again.changed is False
    assert len(await _events(session, referral.id)) == 2


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (["qualified"], "lead"),
        (["won", "churned"], "won"),
        (["won", "refunded"], "qualified"),
        (["opportunity"], "qualified"),
    ],
)
async def test_invalid_transitions_raise_and_write_nothing(session, codec, path, bad):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    for step in path:
        await lifecycle.transition(session, referral.id, step, source="crm", actor=None, now=at(1))
    before = await _events(session, referral.id)
    outbox_before = await session.scalar(select(func.count()).select_from(OutboxEvent))
    with pytest.raises(InvalidTransition):
        await lifecycle.transition(session, referral.id, bad, source="crm", actor=None, now=at(2))
    assert referral.status == path[-1]
    assert await _events(session, referral.id) == before
    assert await session.scalar(select(func.count()).select_from(OutboxEvent)) == outbox_before


async def test_rejection_only_through_moderation(session, codec):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    with pytest.raises(InvalidTransition, match="through moderation"):
        await lifecycle.transition(
            session, referral.id, "rejected", source="crm", actor=None, now=at(1)
        )
    assert referral.status == "lead"


async def test_unknown_status_is_a_validation_error(session, codec):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    with pytest.raises(ValidationFailed) as exc:
        await lifecycle.transition(
            session, referral.id, "closed", source="crm", actor=None, now=at(1)
        )
    assert exc.value.field == "status"


async def test_lost_deal_can_be_reopened(session, codec):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await lifecycle.transition(session, referral.id, "lost", source="crm", actor=None, now=at(1))
    await lifecycle.transition(
        session, referral.id, "opportunity", source="crm", actor=None, now=at(2)
    )
    await lifecycle.transition(session, referral.id, "won", source="crm", actor=None, now=at(3))
    assert [e[1] for e in await _events(session, referral.id)] == [
        "lead",
        "lost",
        "opportunity",
        "won",
    ]
