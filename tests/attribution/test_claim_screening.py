"""A claim is screened and announced in its own transaction: fraud flags hold it for
moderation, the first lifecycle event, the referral.created webhook and the signup rewards
(pending while held) are written with it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.attribution.test_claims import NOW, _world
from tests.factories import make_reward_rule
from vouch.attribution.claims import ClaimContext, Touch, claim_offer, validate_claim
from vouch.models import Click, OutboxEvent, Referral, Reward
from vouch.models.enums import ReferralSource, RewardSide, RewardTrigger


async def _claim(session, prog, link, email, *, click_age=timedelta(minutes=5)):
    session.add(
        Click(
            link_id=link.id,
            program_id=prog.id,
            occurred_at=NOW - click_age,
            visitor_id="v" * 32,
            utm={},
        )
    )
    await session.flush()
    ctx = ClaimContext(
        program_id=prog.id,
        link_id=link.id,
        source=ReferralSource.LANDING,
        touches=(Touch(link.id, prog.id, NOW - click_age),),
        visitor_id="v" * 32,
        ip_hash="h" * 32,
    )
    claim = validate_claim(email=email, name=None, company=None, consent=True)
    return await claim_offer(session, claim=claim, ctx=ctx, now=NOW)


async def test_clean_claim_is_announced_and_earns_signup_rewards(session, codec):
    prog, grace, _, link, _ = await _world(session, codec)
    rule = await make_reward_rule(
        session,
        program=prog,
        side=RewardSide.REFERRER,
        trigger=RewardTrigger.SIGNUP,
        amount_minor=500,
    )
    result = await _claim(session, prog, link, "friend@example.org")
    referral = await session.get(Referral, result.referral_id)
    assert (referral.flags, referral.moderation) == ([], "clear")
    events = list(await session.scalars(select(OutboxEvent.event_type)))
    assert "referral.created" in events
    reward = await session.scalar(select(Reward).where(Reward.referral_id == referral.id))
    assert (reward.rule_id, reward.advocate_id, reward.amount_minor, reward.state) == (
        rule.id,
        grace.id,
        500,
        "pending",
    )


async def test_suspicious_claim_is_flagged_and_held_not_dropped(session, codec):
    prog, _, _, link, _ = await _world(session, codec)
    await make_reward_rule(session, program=prog, trigger=RewardTrigger.SIGNUP, amount_minor=500)
    # A disposable address, two seconds after the click: flagged twice, kept, held.
    result = await _claim(
        session, prog, link, "someone@mailinator.com", click_age=timedelta(seconds=2)
    )
    referral = await session.get(Referral, result.referral_id)
    assert result.created is True
    assert referral.flags == ["disposable_email", "too_fast"]
    assert referral.moderation == "pending"
    reward = await session.scalar(select(Reward).where(Reward.referral_id == referral.id))
    assert reward.state == "pending"


async def test_an_erased_friend_cannot_claim_again_as_new(session, codec):
    import pytest
    from sqlalchemy import func

    from tests.conftest import TEST_SECRET
    from vouch.attribution.claims import AlreadyClaimed
    from vouch.attribution.erasure import erase_referred_person

    prog, _, _, link, _ = await _world(session, codec)
    await _claim(session, prog, link, "Friend.Person@example.org")
    await erase_referred_person(session, secret=TEST_SECRET, email="friend.person@example.org")
    ctx = ClaimContext(program_id=prog.id, link_id=link.id, source=ReferralSource.LANDING)
    claim = validate_claim(email="friend.person@example.org", name=None, company=None, consent=True)
    with pytest.raises(AlreadyClaimed):
        await claim_offer(session, claim=claim, ctx=ctx, now=NOW, secret=TEST_SECRET)
    assert await session.scalar(select(func.count()).select_from(Referral)) == 1
