"""Redemptions and conversions close the loop: the webhook goes out, a signup qualifies the
lead, a purchase wins it and the won rewards follow."""

from __future__ import annotations

from sqlalchemy import select

from tests.attribution.test_claim_screening import _claim
from tests.attribution.test_claims import _world
from tests.factories import make_reward_rule
from vouch.attribution.redemptions import (
    record_conversion,
    redeem_offer,
    validate_conversion,
    validate_redeem,
)
from vouch.core.clock import utcnow
from vouch.models import OutboxEvent, Referral, ReferralEvent, Reward
from vouch.models.enums import RewardTrigger


async def _conversion(session, code, kind, amount=0):
    request = validate_conversion(
        redemption_code=code,
        kind=kind,
        external_ref=f"{kind}-1",
        amount_minor=amount,
        currency="USD",
        occurred_at=utcnow(),
        now=utcnow(),
    )
    return await record_conversion(session, request)


async def test_redeem_announces_offer_redeemed(session, codec):
    prog, _, _, link, _ = await _world(session, codec)
    claimed = await _claim(session, prog, link, "friend@example.org")
    redemption = await redeem_offer(
        session, validate_redeem(claimed.redemption_code, "shop-user-1", "order-9"), now=utcnow()
    )
    event = await session.scalar(
        select(OutboxEvent).where(OutboxEvent.event_type == "offer.redeemed")
    )
    assert event.payload["redemption_id"] == redemption.id
    assert event.payload["referral_id"] == claimed.referral_id
    assert event.payload["order_ref"] == "order-9"


async def test_signup_qualifies_and_purchase_wins_with_rewards(session, codec):
    prog, grace, _, link, _ = await _world(session, codec)
    won_rule = await make_reward_rule(
        session, program=prog, trigger=RewardTrigger.WON, amount_minor=5000
    )
    claimed = await _claim(session, prog, link, "friend@example.org")

    await _conversion(session, claimed.redemption_code, "signup")
    referral = await session.get(Referral, claimed.referral_id)
    await session.refresh(referral)
    assert referral.status == "qualified"

    _, created = await _conversion(session, claimed.redemption_code, "purchase", 12900)
    assert created is True
    await session.refresh(referral)
    assert referral.status == "won"
    steps = [
        (e.from_status, e.to_status, e.source)
        for e in await session.scalars(
            select(ReferralEvent)
            .where(ReferralEvent.referral_id == referral.id)
            .order_by(ReferralEvent.id)
        )
    ]
    assert steps == [
        (None, "lead", "landing"),
        ("lead", "qualified", "conversion"),
        ("qualified", "won", "conversion"),
    ]
    rewards = list(await session.scalars(select(Reward).where(Reward.referral_id == referral.id)))
    assert [(r.rule_id, r.advocate_id, r.amount_minor) for r in rewards] == [
        (won_rule.id, grace.id, 5000)
    ]
    kinds = list(await session.scalars(select(OutboxEvent.event_type).order_by(OutboxEvent.id)))
    assert kinds.count("conversion.recorded") == 2

    # Re-reporting the same purchase changes nothing.
    _, created_again = await _conversion(session, claimed.redemption_code, "purchase", 12900)
    assert created_again is False
    assert (
        len(list(await session.scalars(select(Reward).where(Reward.referral_id == referral.id))))
        == 1
    )
