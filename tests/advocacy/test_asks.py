# mypy: disable-error-code="union-attr"
"""Asks: tier matching, priority, the one contact cap, guards, lifecycle, fallback, dormancy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.advocacy.conftest import NOW, days_ago, make_scored, make_signal
from tests.factories import make_advocate, make_program
from vouch.advocacy.asks import (
    advocates_due,
    create_ask,
    evaluate_asks,
    expire_due,
    next_best_ask,
    send_ask,
    transition_ask,
)
from vouch.advocacy.moments import GuardCode
from vouch.core.errors import DomainError, ErrorCode, InvalidTransition, NotFound, ValidationFailed
from vouch.models import AdvocacyAction, Ask, PointsEntry
from vouch.models.enums import AskStatus


async def setup(session, tier=1, program_settings=None, **advocate):
    program = await make_program(session, **(program_settings or {}))
    person = await make_advocate(session, **advocate)
    await make_scored(session, person.id, program.id, tier)
    return program, person


async def ask_rows(session, advocate_id):
    rows = await session.scalars(select(Ask).where(Ask.advocate_id == advocate_id).order_by(Ask.id))
    return [(a.type, a.moment, a.status, a.priority) for a in rows]


@pytest.mark.parametrize(
    ("tier", "expected"),
    [(1, "testimonial"), (2, "referral_invite"), (3, "social_share")],
)
async def test_promoter_moment_asks_by_tier(session, tier, expected):
    program, person = await setup(session, tier=tier)
    await make_signal(session, person.id, "nps", 10, at=days_ago(1))
    result = await evaluate_asks(session, person.id, program.id, now=NOW)
    assert result.sent is not None
    assert (result.sent.type, result.sent.status, result.sent.sent_at) == (expected, "sent", NOW)


async def test_no_tier_no_ask(session):
    program, person = await setup(session, tier=None)
    await make_signal(session, person.id, "nps", 10, at=days_ago(1))
    result = await evaluate_asks(session, person.id, program.id, now=NOW)
    assert (result.queued, result.sent) == ([], None)
    assert await ask_rows(session, person.id) == []


async def test_highest_priority_goes_rest_wait_and_evaluation_is_idempotent(session):
    program, person = await setup(session, tier=1, program_settings={"frequency_cap_days": 7})
    await make_signal(session, person.id, "first_value", at=days_ago(5))
    await make_signal(session, person.id, "renewal", at=days_ago(2))
    await make_signal(session, person.id, "review_rating", 5, at=days_ago(1))
    first = await evaluate_asks(session, person.id, program.id, now=NOW)
    assert first.sent is not None
    assert await ask_rows(session, person.id) == [
        ("testimonial", "five_star_rating", "queued", 91),
        ("case_study", "renewal_signed", "sent", 98),
        ("community_invite", "first_value", "queued", 57),
    ]
    again = await evaluate_asks(session, person.id, program.id, now=NOW + timedelta(hours=1))
    assert (again.queued, again.sent) == ([], None)
    assert [g.code for g in again.guards] == [GuardCode.FREQUENCY_CAP]
    assert again.guards[0].until == NOW + timedelta(days=7)
    assert len(await ask_rows(session, person.id)) == 3
    # After the window the next one goes; the moments are past, so nothing new is queued.
    later = await evaluate_asks(
        session, person.id, program.id, now=NOW + timedelta(days=7, minutes=1)
    )
    assert later.sent is not None
    assert (later.sent.type, later.queued) == ("testimonial", [])
    # Queued asks whose moment is long gone (60 days by default) expire instead of being sent.
    last = await evaluate_asks(session, person.id, program.id, now=NOW + timedelta(days=60))
    assert (last.sent, last.expired) == (None, 1)


async def test_opted_in_tier1_gets_two_asks_per_window(session):
    program, person = await setup(session, tier=1, opted_in_extra_asks=True)
    await make_signal(session, person.id, "renewal", at=days_ago(2))
    await make_signal(session, person.id, "nps", 10, at=days_ago(1))
    one = await evaluate_asks(session, person.id, program.id, now=NOW)
    two = await evaluate_asks(session, person.id, program.id, now=NOW + timedelta(days=14))
    three = await evaluate_asks(session, person.id, program.id, now=NOW + timedelta(days=15))
    assert (one.sent is not None, two.sent is not None, three.sent) == (True, True, None)
    assert [g.code for g in three.guards] == [GuardCode.FREQUENCY_CAP]


async def test_one_contact_policy_across_teams(session):
    program, person = await setup(session, tier=2)
    sales = await create_ask(
        session,
        advocate_id=person.id,
        program_id=program.id,
        ask_type="review",
        team="sales",
        now=days_ago(3),
    )
    await send_ask(session, sales.id, now=days_ago(3))
    await make_signal(session, person.id, "nps", 10, at=days_ago(1))
    result = await evaluate_asks(session, person.id, program.id, now=NOW)
    assert result.sent is None
    assert [a.type for a in result.queued] == ["referral_invite"]
    cs = await create_ask(
        session,
        advocate_id=person.id,
        program_id=program.id,
        ask_type="survey",
        team="customer_success",
        now=NOW,
    )
    with pytest.raises(DomainError) as exc:
        await send_ask(session, cs.id, now=NOW)
    assert exc.value.code == ErrorCode.CAPPED
    refreshed = await session.get(Ask, cs.id)
    assert (refreshed.status, refreshed.sent_at) == ("queued", None)


async def test_detractor_and_escalation_queue_nothing(session):
    program, person = await setup(session, tier=1)
    await make_signal(session, person.id, "renewal", at=days_ago(3))
    await make_signal(session, person.id, "nps", 4, at=days_ago(1))
    result = await evaluate_asks(session, person.id, program.id, now=NOW)
    assert [g.code for g in result.guards] == [GuardCode.DETRACTOR]
    assert await ask_rows(session, person.id) == []
    other_program, other = await setup(session, tier=1)
    await make_signal(session, other.id, "expansion", at=days_ago(3))
    await make_signal(session, other.id, "escalation_opened", at=days_ago(1))
    result = await evaluate_asks(session, other.id, other_program.id, now=NOW)
    assert [g.code for g in result.guards] == [GuardCode.ESCALATION_OPEN]
    assert await ask_rows(session, other.id) == []


async def test_blackout_queues_but_does_not_send(session):
    program, person = await setup(session, tier=2)
    await make_signal(session, person.id, "renewal_negotiation", at=days_ago(5))
    await make_signal(session, person.id, "review_rating", 5, at=days_ago(1))
    result = await evaluate_asks(session, person.id, program.id, now=NOW)
    assert result.sent is None
    assert [g.code for g in result.guards] == [GuardCode.RENEWAL_BLACKOUT]
    assert await ask_rows(session, person.id) == [("review", "five_star_rating", "queued", 76)]
    nxt = await next_best_ask(session, person.id, program_id=program.id, now=NOW)
    assert (nxt.reason, nxt.eligible_at) == ("waiting", days_ago(5 - 45))
    assert nxt.ask is not None
    assert nxt.ask.type == "review"


async def test_decline_offers_fallback_and_starts_cooldown(session):
    program, person = await setup(session, tier=1)
    await make_signal(session, person.id, "renewal", at=days_ago(1))
    sent = (await evaluate_asks(session, person.id, program.id, now=NOW)).sent
    assert sent is not None
    assert sent.type == "case_study"
    result = await transition_ask(
        session, sent.id, to=AskStatus.DECLINED, now=NOW, reason="legal says no"
    )
    assert (result.ask.status, result.ask.declined_at, result.ask.decline_reason) == (
        "declined",
        NOW,
        "legal says no",
    )
    assert result.fallback is not None
    assert (result.fallback.type, result.fallback.status, result.fallback.fallback_of_id) == (
        "anonymous_quote",
        "sent",
        sent.id,
    )
    # Retried decline: no second fallback.
    again = await transition_ask(session, sent.id, to=AskStatus.DECLINED, now=NOW)
    assert again.fallback is None
    assert (
        await session.scalar(
            select(func.count()).select_from(Ask).where(Ask.fallback_of_id == sent.id)
        )
        == 1
    )
    # The quote is published; the cool-down still holds new asks back.
    published = await transition_ask(
        session, result.fallback.id, to=AskStatus.PUBLISHED, now=NOW, url="https://example.com/q"
    )
    assert published.action is not None
    assert (published.action.action.kind, published.action.points) == ("quote", 60)
    await make_signal(session, person.id, "expansion", at=NOW + timedelta(days=40))
    later = await evaluate_asks(session, person.id, program.id, now=NOW + timedelta(days=41))
    assert [g.code for g in later.guards] == [GuardCode.DECLINE_COOLDOWN]
    assert later.sent is None


async def test_decline_without_fallback(session):
    program, person = await setup(session, tier=1)
    await make_signal(session, person.id, "renewal", at=days_ago(1))
    sent = (await evaluate_asks(session, person.id, program.id, now=NOW)).sent
    assert sent is not None
    result = await transition_ask(session, sent.id, to=AskStatus.DECLINED, now=NOW, fallback=False)
    assert result.fallback is None
    assert len(await ask_rows(session, person.id)) == 1


async def test_lifecycle_accept_publish_records_action_and_points(session):
    program, person = await setup(session, tier=2)
    await make_signal(session, person.id, "review_rating", 5, at=days_ago(1))
    sent = (await evaluate_asks(session, person.id, program.id, now=NOW)).sent
    assert sent is not None
    accepted = await transition_ask(
        session, sent.id, to=AskStatus.ACCEPTED, now=NOW + timedelta(days=1)
    )
    assert accepted.ask.accepted_at == NOW + timedelta(days=1)
    done = await transition_ask(
        session,
        sent.id,
        to=AskStatus.PUBLISHED,
        now=NOW + timedelta(days=3),
        url="https://g2.com/r/1",
    )
    assert done.ask.published_at == NOW + timedelta(days=3)
    action = await session.scalar(select(AdvocacyAction).where(AdvocacyAction.ask_id == sent.id))
    assert (action.kind, action.url, action.program_id) == (
        "review",
        "https://g2.com/r/1",
        program.id,
    )
    points = (
        await session.scalars(
            select(PointsEntry.points).where(PointsEntry.advocate_id == person.id)
        )
    ).all()
    assert points == [50]
    again = await transition_ask(
        session, sent.id, to=AskStatus.PUBLISHED, now=NOW + timedelta(days=4)
    )
    assert again.action is None
    assert await session.scalar(select(func.count()).select_from(AdvocacyAction)) == 1


async def test_invalid_transitions_write_nothing(session):
    program, person = await setup(session, tier=2)
    queued = await create_ask(
        session,
        advocate_id=person.id,
        program_id=program.id,
        ask_type="review",
        team="marketing",
        now=NOW,
    )
    with pytest.raises(InvalidTransition) as exc:
        await transition_ask(session, queued.id, to=AskStatus.PUBLISHED, now=NOW)
    assert exc.value.message == "an ask that is queued cannot become published"
    with pytest.raises(ValidationFailed):
        await transition_ask(session, queued.id, to=AskStatus.CANCELLED, now=NOW, url="ftp://x")
    cancelled = await transition_ask(session, queued.id, to=AskStatus.CANCELLED, now=NOW)
    assert cancelled.ask.status == "cancelled"
    with pytest.raises(InvalidTransition):
        await send_ask(session, queued.id, now=NOW)
    with pytest.raises(NotFound):
        await transition_ask(session, 999_999, to=AskStatus.ACCEPTED, now=NOW)
    assert await session.scalar(select(func.count()).select_from(AdvocacyAction)) == 0


async def test_manual_ask_validation_and_idempotency(session):
    program, person = await setup(session, tier=2)
    with pytest.raises(ValidationFailed) as exc:
        await create_ask(
            session,
            advocate_id=person.id,
            program_id=program.id,
            ask_type="poem",
            team="sales",
            now=NOW,
        )
    assert exc.value.field == "type"
    with pytest.raises(ValidationFailed) as exc:
        await create_ask(
            session,
            advocate_id=person.id,
            program_id=program.id,
            ask_type="review",
            team="legal",
            now=NOW,
        )
    assert exc.value.field == "team"
    with pytest.raises(ValidationFailed) as exc:
        await create_ask(
            session,
            advocate_id=person.id,
            program_id=program.id,
            ask_type="reference_call",
            team="sales",
            now=NOW,
        )
    assert exc.value.field == "type"
    paused = await make_program(session, status="paused")
    with pytest.raises(DomainError) as exc2:
        await create_ask(
            session,
            advocate_id=person.id,
            program_id=paused.id,
            ask_type="review",
            team="sales",
            now=NOW,
        )
    assert exc2.value.code == ErrorCode.INACTIVE
    one = await create_ask(
        session,
        advocate_id=person.id,
        program_id=program.id,
        ask_type="review",
        team="sales",
        now=NOW,
        request_key="k1",
    )
    two = await create_ask(
        session,
        advocate_id=person.id,
        program_id=program.id,
        ask_type="review",
        team="sales",
        now=NOW,
        request_key="k1",
    )
    assert one.id == two.id
    assert len(await ask_rows(session, person.id)) == 1


async def test_dormant_advocates_are_re_engaged_once_per_stage(session):
    program, person = await setup(session, tier=3)
    session.add(
        AdvocacyAction(
            advocate_id=person.id, program_id=program.id, kind="review", occurred_at=days_ago(35)
        )
    )
    await session.flush()
    first = await evaluate_asks(session, person.id, program.id, now=NOW)
    assert first.sent is not None
    assert (first.sent.type, first.sent.moment) == ("community_invite", "dormant_30")
    again = await evaluate_asks(session, person.id, program.id, now=NOW + timedelta(days=1))
    assert again.queued == []
    at_60 = await evaluate_asks(session, person.id, program.id, now=NOW + timedelta(days=26))
    assert [(a.type, a.moment) for a in at_60.queued] == [("referral_invite", "dormant_60")]
    at_90 = await evaluate_asks(session, person.id, program.id, now=NOW + timedelta(days=56))
    assert [(a.type, a.moment) for a in at_90.queued] == [("survey", "dormant_90")]


async def test_queued_asks_expire_when_the_moment_passes(session):
    program, person = await setup(session, tier=2)
    await make_signal(session, person.id, "renewal_negotiation", at=days_ago(2))
    await make_signal(session, person.id, "review_rating", 5, at=days_ago(1))
    await evaluate_asks(session, person.id, program.id, now=NOW)
    assert await expire_due(session, now=NOW + timedelta(days=59)) == (0, 0)
    assert await expire_due(session, now=NOW + timedelta(days=60)) == (1, 0)
    assert await ask_rows(session, person.id) == [("review", "five_star_rating", "expired", 76)]


async def test_next_best_ask(session):
    program, person = await setup(session, tier=2)
    nothing = await next_best_ask(session, person.id, program_id=program.id, now=NOW)
    assert (nothing.ask, nothing.reason) == (None, "nothing_queued")
    queued = await create_ask(
        session,
        advocate_id=person.id,
        program_id=program.id,
        ask_type="review",
        team="marketing",
        now=NOW,
    )
    ready = await next_best_ask(session, person.id, program_id=program.id, now=NOW)
    assert (ready.ask.id, ready.reason, ready.eligible_at) == (queued.id, "ready", NOW)
    await send_ask(session, queued.id, now=NOW)
    awaiting = await next_best_ask(session, person.id, program_id=None, now=NOW)
    assert (awaiting.ask.id, awaiting.reason) == (queued.id, "awaiting_response")


async def test_advocates_due_for_a_scheduled_run(session):
    program = await make_program(session)
    fresh = await make_advocate(session)
    stale = await make_advocate(session)
    untiered = await make_advocate(session)
    dormant = await make_advocate(session)
    waiting = await make_advocate(session)
    for person in (fresh, stale, waiting):
        await make_scored(session, person.id, program.id, 2)
    await make_signal(session, fresh.id, "nps", 9, at=days_ago(2))
    await make_signal(session, stale.id, "nps", 9, at=days_ago(20))
    await make_signal(session, untiered.id, "renewal", at=days_ago(1))
    session.add(AdvocacyAction(advocate_id=dormant.id, kind="review", occurred_at=days_ago(31)))
    session.add(
        Ask(
            advocate_id=waiting.id,
            program_id=program.id,
            type="review",
            moment="manual",
            status="queued",
            queued_at=days_ago(1),
        )
    )
    await session.flush()
    assert await advocates_due(session, program.id, now=NOW) == [fresh.id, dormant.id, waiting.id]


async def test_an_ask_that_waited_out_the_cap_goes_in_the_next_window(session):
    program, person = await setup(session, tier=2)
    await make_signal(session, person.id, "review_rating", 5, at=days_ago(2))
    await make_signal(session, person.id, "expansion", at=days_ago(1))
    first = await evaluate_asks(session, person.id, program.id, now=NOW)
    assert first.sent is not None
    assert first.sent.type == "review"  # 70 + 6 beats referral_invite 65 + 8
    waiting = await evaluate_asks(session, person.id, program.id, now=NOW + timedelta(days=29))
    assert waiting.sent is None
    nxt = await evaluate_asks(
        session, person.id, program.id, now=NOW + timedelta(days=30, seconds=1)
    )
    assert nxt.sent is not None
    assert (nxt.sent.type, nxt.sent.moment) == ("referral_invite", "expansion")
