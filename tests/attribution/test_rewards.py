"""The rewards engine: two-sided, tiers, caps, percentages, the ledger and its state changes."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.attribution.factories import at, make_referral, make_world
from tests.factories import make_reward_rule
from vouch.attribution import lifecycle, moderation, reward_fulfilment, reward_reads, rewards
from vouch.core.errors import Conflict, InvalidTransition, ValidationFailed
from vouch.models import OutboxEvent, PointsEntry, Reward, RewardEntry


async def _ledger(session, reward_id):
    rows = await session.scalars(
        select(RewardEntry).where(RewardEntry.reward_id == reward_id).order_by(RewardEntry.id)
    )
    return [(e.state, e.actor, e.reason, e.fulfilment_ref) for e in rows]


async def _rewards(session, **where):
    stmt = select(Reward).order_by(Reward.id)
    for key, value in where.items():
        stmt = stmt.where(getattr(Reward, key) == value)
    return list(await session.scalars(stmt))


async def test_two_sided_rewards_on_won(session, codec):
    program, advocate, link = await make_world(session, codec)
    referrer = await make_reward_rule(session, program=program, name="referrer", amount_minor=5000)
    friend = await make_reward_rule(
        session, program=program, name="friend", side="referred", amount_minor=2500
    )
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await lifecycle.transition(session, referral.id, "won", source="crm", actor="crm", now=at(3))
    got = await _rewards(session, referral_id=referral.id)
    assert [(r.rule_id, r.side, r.advocate_id, r.amount_minor, r.state) for r in got] == [
        (referrer.id, "referrer", advocate.id, 5000, "pending"),
        (friend.id, "referred", None, 2500, "pending"),
    ]
    assert got[0].clawback_until == at(3 + 60)
    assert await _ledger(session, got[0].id) == [
        ("pending", "crm", "won (rule 'referrer', referral #1)", None)
    ]


async def test_signup_and_qualified_triggers_fire_once_each(session, codec):
    program, advocate, link = await make_world(session, codec)
    signup = await make_reward_rule(
        session, program=program, trigger="signup", kind="points", points=10, amount_minor=0
    )
    qualified = await make_reward_rule(
        session, program=program, trigger="qualified", amount_minor=1000
    )
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    # Jumping straight to won passes the qualified milestone.
    await lifecycle.transition(session, referral.id, "won", source="crm", actor=None, now=at(1))
    got = await _rewards(session, referral_id=referral.id)
    assert [(r.rule_id, r.amount_minor, r.points) for r in got] == [
        (signup.id, 0, 10),
        (qualified.id, 1000, 0),
    ]


async def test_tiered_reward_from_the_third_referral(session, codec):
    program, advocate, link = await make_world(session, codec)
    base = await make_reward_rule(session, program=program, name="base", amount_minor=5000)
    bonus = await make_reward_rule(
        session, program=program, name="bonus", amount_minor=10000, from_nth_referral=3
    )
    for i in range(4):
        referral = await make_referral(session, program=program, advocate=advocate, link=link)
        await lifecycle.transition(session, referral.id, "won", source="crm", actor=None, now=at(i))
    got = await _rewards(session, advocate_id=advocate.id)
    assert [(r.rule_id, r.amount_minor) for r in got] == [
        (base.id, 5000),
        (base.id, 5000),
        (bonus.id, 10000),
        (bonus.id, 10000),
    ]


async def test_a_referred_side_ladder_counts_the_advocates_earlier_friends(session, codec):
    """The friend of an advocate's third referral gets the third rung: the count is the
    advocate's earlier referrals whose friend was rewarded on that ladder (the friend's reward
    itself names no advocate). Before, the count looked for the advocate on those rewards and
    always found none, so every friend got the first rung."""
    program, advocate, link = await make_world(session, codec)
    other_advocate = (await make_world(session, codec))[1]
    base = await make_reward_rule(
        session, program=program, name="friend", side="referred", trigger="won", amount_minor=1000
    )
    bonus = await make_reward_rule(
        session,
        program=program,
        name="friend bonus",
        side="referred",
        trigger="won",
        amount_minor=2500,
        from_nth_referral=3,
    )
    # another advocate's friends do not move this advocate up the ladder
    stranger = await make_referral(session, program=program, advocate=other_advocate, link=link)
    await lifecycle.transition(session, stranger.id, "won", source="crm", actor=None, now=at(0))
    mine = []
    for i in range(4):
        referral = await make_referral(session, program=program, advocate=advocate, link=link)
        await lifecycle.transition(session, referral.id, "won", source="crm", actor=None, now=at(i))
        mine.append(referral.id)
    got = [r for r in await _rewards(session, side="referred") if r.referral_id in mine]
    assert [(r.rule_id, r.amount_minor, r.advocate_id) for r in got] == [
        (base.id, 1000, None),
        (base.id, 1000, None),
        (bonus.id, 2500, None),
        (bonus.id, 2500, None),
    ]


async def test_a_ladder_rewards_a_referral_once_whatever_rung_it_reaches_later(session, codec):
    """Qualified is earned when a referral reaches opportunity and again implied when it is won.
    If the advocate climbed a rung in between, the second evaluation picks another rule of the
    same ladder; it must not pay the referral a second time (it did: the uniqueness was per
    rule)."""
    program, advocate, link = await make_world(session, codec)
    first_rung = await make_reward_rule(
        session, program=program, trigger="qualified", amount_minor=1000
    )
    await make_reward_rule(
        session, program=program, trigger="qualified", amount_minor=3000, from_nth_referral=2
    )
    slow = await make_referral(session, program=program, advocate=advocate, link=link)
    await lifecycle.transition(session, slow.id, "opportunity", source="crm", actor=None, now=at(0))
    fast = await make_referral(session, program=program, advocate=advocate, link=link)
    await lifecycle.transition(session, fast.id, "qualified", source="crm", actor=None, now=at(1))
    await lifecycle.transition(session, slow.id, "won", source="crm", actor=None, now=at(2))
    got = await _rewards(session, referral_id=slow.id)
    assert [(r.rule_id, r.amount_minor) for r in got] == [(first_rung.id, 1000)]


async def test_cap_per_advocate_per_period(session, codec):
    program, advocate, link = await make_world(session, codec)
    rule = await make_reward_rule(session, program=program, cap_count=2, cap_period_days=30)
    referrals = [
        await make_referral(session, program=program, advocate=advocate, link=link)
        for _ in range(4)
    ]
    evaluations = []
    for day, referral in zip((0, 1, 2, 31), referrals, strict=True):
        evaluations.append(await rewards.on_referral_event(session, referral, "won", now=at(day)))
    assert [len(e.created) for e in evaluations] == [1, 1, 0, 1]
    assert evaluations[2].skipped == [(rule.id, "capped")]


async def test_revenue_percent_reward_per_charge(session, codec):
    program, advocate, link = await make_world(session, codec)
    rule = await make_reward_rule(
        session,
        program=program,
        trigger="revenue",
        calc="percent",
        percent_bps=1000,
        amount_minor=0,
    )
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await rewards.on_referral_event(
        session,
        referral,
        "revenue",
        now=at(1),
        base_amount_minor=12345,
        base_currency="EUR",
        trigger_ref="rev:1",
    )
    await rewards.on_referral_event(
        session,
        referral,
        "revenue",
        now=at(2),
        base_amount_minor=20000,
        base_currency="EUR",
        trigger_ref="rev:2",
    )
    again = await rewards.on_referral_event(
        session,
        referral,
        "revenue",
        now=at(3),
        base_amount_minor=20000,
        base_currency="EUR",
        trigger_ref="rev:2",
    )
    assert again.skipped == [(rule.id, "already_rewarded")]
    got = await _rewards(session, referral_id=referral.id)
    assert [(r.amount_minor, r.currency, r.trigger_ref) for r in got] == [
        (1234, "EUR", "rev:1"),
        (2000, "EUR", "rev:2"),
    ]


async def test_approve_fulfil_credit_and_totals(session, codec):
    program, advocate, link = await make_world(session, codec)
    rule = await make_reward_rule(session, program=program, amount_minor=5000)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await lifecycle.transition(session, referral.id, "won", source="crm", actor=None, now=at(1))
    (reward,) = await _rewards(session, referral_id=referral.id)
    await rewards.approve_reward(session, reward.id, actor="admin:ann", reason="checked", now=at(2))
    again = await rewards.approve_reward(
        session, reward.id, actor="admin:ann", reason=None, now=at(2)
    )
    assert again.state == "approved"
    _, done = await reward_fulfilment.fulfil_reward(
        session, reward.id, actor="admin:ann", now=at(3)
    )
    assert done is True
    assert await _ledger(session, reward.id) == [
        ("pending", "crm", f"won (rule '{rule.name}', referral #1)", None),
        ("approved", "admin:ann", "checked", None),
        ("fulfilled", "admin:ann", None, f"credit:{reward.id}"),
    ]
    totals = await reward_reads.reward_totals(
        session, reward_reads.RewardFilter(advocate_id=advocate.id)
    )
    assert [(t.state, t.currency, t.count, t.amount_minor) for t in totals] == [
        ("fulfilled", "USD", 1, 5000)
    ]
    with pytest.raises(InvalidTransition):
        await rewards.approve_reward(session, reward.id, actor="admin", reason=None, now=at(4))


async def test_fulfilment_by_kind(session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program, name="cash", kind="cash", amount_minor=5000)
    await make_reward_rule(
        session, program=program, name="pts", kind="points", points=250, amount_minor=0
    )
    await make_reward_rule(
        session, program=program, name="code", kind="discount_code", amount_minor=1000
    )
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await lifecycle.transition(session, referral.id, "won", source="crm", actor=None, now=at(1))
    cash, points, code = await _rewards(session, referral_id=referral.id)
    for r in (cash, points, code):
        await rewards.approve_reward(session, r.id, actor="admin", reason=None, now=at(2))

    # Cash goes out by webhook and stays approved until the payout system reports back.
    _, done = await reward_fulfilment.fulfil_reward(session, cash.id, actor="admin", now=at(3))
    assert (done, cash.state) == (False, "approved")
    requested = await session.scalar(
        select(OutboxEvent).where(OutboxEvent.event_type == "reward.fulfilment_requested")
    )
    assert requested.payload["reward_id"] == cash.id
    assert requested.payload["amount_minor"] == 5000
    _, done = await reward_fulfilment.fulfil_reward(
        session, cash.id, actor="api_key:payouts", now=at(4), fulfilment_ref="payout_123"
    )
    assert (done, cash.state) == (True, "fulfilled")
    assert (await _ledger(session, cash.id))[-1] == (
        "fulfilled",
        "api_key:payouts",
        None,
        "payout_123",
    )

    await reward_fulfilment.fulfil_reward(session, points.id, actor="admin", now=at(3))
    await reward_fulfilment.fulfil_reward(
        session, points.id, actor="admin", now=at(3)
    )  # idempotent
    entries = list(await session.scalars(select(PointsEntry)))
    assert [(p.advocate_id, p.points, p.ref) for p in entries] == [
        (advocate.id, 250, f"reward:{points.id}")
    ]
    await reward_fulfilment.fulfil_reward(session, code.id, actor="admin", now=at(3))
    ref = (await _ledger(session, code.id))[-1][3]
    assert ref.startswith("code:")
    assert len(ref) == 17


async def test_pending_fulfil_is_refused(session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await lifecycle.transition(session, referral.id, "won", source="crm", actor=None, now=at(1))
    (reward,) = await _rewards(session, referral_id=referral.id)
    with pytest.raises(InvalidTransition, match="only approved"):
        await reward_fulfilment.fulfil_reward(session, reward.id, actor="admin", now=at(2))
    assert [e[0] for e in await _ledger(session, reward.id)] == ["pending"]


async def test_void_needs_a_reason_and_is_final(session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await lifecycle.transition(session, referral.id, "won", source="crm", actor=None, now=at(1))
    (reward,) = await _rewards(session, referral_id=referral.id)
    with pytest.raises(ValidationFailed):
        await rewards.void_reward(session, reward.id, actor="admin", reason="  ", now=at(2))
    assert reward.state == "pending"
    await rewards.void_reward(session, reward.id, actor="admin", reason="duplicate deal", now=at(2))
    with pytest.raises(InvalidTransition):
        await rewards.approve_reward(session, reward.id, actor="admin", reason=None, now=at(3))
    assert [e[0] for e in await _ledger(session, reward.id)] == ["pending", "voided"]


async def test_clawback_inside_window_only(session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program, clawback_days=30)
    early = await make_referral(session, program=program, advocate=advocate, link=link)
    late = await make_referral(session, program=program, advocate=advocate, link=link)
    for r in (early, late):
        await lifecycle.transition(session, r.id, "won", source="crm", actor=None, now=at(0))
        (reward,) = await _rewards(session, referral_id=r.id)
        await rewards.approve_reward(session, reward.id, actor="admin", reason=None, now=at(1))
        await reward_fulfilment.fulfil_reward(session, reward.id, actor="admin", now=at(2))
    await lifecycle.transition(
        session, early.id, "churned", source="billing", actor=None, now=at(20)
    )
    await lifecycle.transition(
        session, late.id, "churned", source="billing", actor=None, now=at(45)
    )
    (r_early,) = await _rewards(session, referral_id=early.id)
    (r_late,) = await _rewards(session, referral_id=late.id)
    assert (r_early.state, r_late.state) == ("voided", "fulfilled")
    assert (await _ledger(session, r_early.id))[-1] == (
        "voided",
        "billing",
        "referral churned after won",
        None,
    )


async def test_moderation_holds_rewards_pending(session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await moderation.flag_referral(session, referral, ["velocity_ip"], now=at(0))
    await lifecycle.transition(session, referral.id, "won", source="crm", actor=None, now=at(1))
    (reward,) = await _rewards(session, referral_id=referral.id)
    with pytest.raises(Conflict, match="awaiting moderation"):
        await rewards.approve_reward(session, reward.id, actor="admin", reason=None, now=at(2))
    assert reward.state == "pending"
    await moderation.moderate_referral(
        session, referral.id, approve=True, reason="known customer", actor="admin", now=at(3)
    )
    await rewards.approve_reward(session, reward.id, actor="admin", reason=None, now=at(4))
    assert reward.state == "approved"


async def test_auto_approval_when_the_program_says_so(session, codec):
    program, advocate, link = await make_world(
        session, codec, settings={"auto_approve_rewards": True}
    )
    await make_reward_rule(session, program=program)
    clean = await make_referral(session, program=program, advocate=advocate, link=link)
    flagged = await make_referral(session, program=program, advocate=advocate, link=link)
    await moderation.flag_referral(session, flagged, ["too_fast"], now=at(0))
    for r in (clean, flagged):
        await lifecycle.transition(session, r.id, "won", source="crm", actor=None, now=at(1))
    assert [r.state for r in await _rewards(session, referral_id=clean.id)] == ["approved"]
    assert [r.state for r in await _rewards(session, referral_id=flagged.id)] == ["pending"]
    await moderation.moderate_referral(
        session, flagged.id, approve=True, reason="ok", actor="admin", now=at(2)
    )
    assert [r.state for r in await _rewards(session, referral_id=flagged.id)] == ["approved"]


async def test_rejection_voids_rewards(session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program, trigger="signup")
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await moderation.flag_referral(session, referral, ["self_referral"], now=at(0))
    await moderation.moderate_referral(
        session, referral.id, approve=False, reason="own second account", actor="admin", now=at(1)
    )
    assert referral.status == "rejected"
    assert [r.state for r in await _rewards(session, referral_id=referral.id)] == ["voided"]
    # A later won event earns nothing for a rejected referral.
    evaluation = await rewards.on_referral_event(session, referral, "won", now=at(2))
    assert evaluation.created == []
    assert await session.scalar(select(func.count()).select_from(Reward)) == 1


async def test_a_reference_too_long_for_its_column_is_refused_not_cut(session, codec):
    """The one-statement reward write types its parameters without lengths: a value too long
    for its column is an error, never silently truncated into another reference."""
    from asyncpg.exceptions import StringDataRightTruncationError

    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(
        session, program=program, trigger="revenue", calc="percent", percent_bps=1000
    )
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await lifecycle.transition(session, referral.id, "won", source="crm", actor="crm", now=at(3))

    async def charge(ref: str) -> rewards.Evaluation:
        return await rewards.on_referral_event(
            session,
            referral,
            "revenue",
            now=at(4),
            base_amount_minor=10_000,
            base_currency="USD",
            trigger_ref=ref,
        )

    fits = await charge("r" * 64)
    assert [(r.trigger_ref, r.amount_minor) for r in fits.created] == [("r" * 64, 1000)]
    with pytest.raises(StringDataRightTruncationError, match="too long"):
        await charge("s" * 65)
