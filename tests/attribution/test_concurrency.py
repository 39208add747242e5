"""Twenty identical events at once leave exactly one effect (real commits, real connections)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from tests.attribution.factories import at, make_referral, make_world
from tests.factories import make_reward_rule
from vouch.attribution import lifecycle, revenue
from vouch.attribution.revenue import RevenueData
from vouch.core.codes import LinkCodec
from vouch.core.engine import create_engine
from vouch.core.sessions import session_factory
from vouch.models import ReferralEvent, RevenueEvent, Reward, RewardEntry

pytestmark = pytest.mark.committing
N = 20


async def _setup(factory, codec: LinkCodec):
    async with factory() as s:
        program, advocate, link = await make_world(s, codec)
        await make_reward_rule(s, program=program, name="won", amount_minor=5000)
        await make_reward_rule(
            s,
            program=program,
            name="share",
            trigger="revenue",
            calc="percent",
            percent_bps=1000,
            amount_minor=0,
        )
        referral = await make_referral(s, program=program, advocate=advocate, link=link)
        await s.commit()
        return referral.id


async def _count(factory, stmt):
    async with factory() as s:
        return await s.scalar(stmt)


async def test_twenty_concurrent_wins_and_charges_leave_one_reward_each(
    committing_engine, database_url, codec
):
    engine = create_engine(database_url, pool_size=N, pool_timeout=30)
    factory = session_factory(engine)
    try:
        referral_id = await _setup(factory, codec)
        start = asyncio.Event()

        async def win() -> None:
            async with factory() as s:
                await start.wait()
                await lifecycle.transition(
                    s, referral_id, "won", source="crm", actor="crm", now=at(1)
                )
                await s.commit()

        async def charge() -> None:
            async with factory() as s:
                await start.wait()
                await revenue.record_revenue(
                    s,
                    RevenueData(
                        external_id="ch_1",
                        kind="one_time",
                        amount_minor=40000,
                        currency="USD",
                        occurred_at=at(2),
                        referral_id=referral_id,
                    ),
                    source="billing",
                    actor="billing",
                    now=at(2),
                )
                await s.commit()

        tasks = [asyncio.create_task(win()) for _ in range(N)]
        tasks += [asyncio.create_task(charge()) for _ in range(N)]
        await asyncio.sleep(0.05)
        start.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert [r for r in results if r is not None] == []

        async with factory() as s:
            got = (
                await s.execute(
                    select(Reward.trigger_ref, Reward.amount_minor).order_by(Reward.amount_minor)
                )
            ).all()
            assert [tuple(r) for r in got] == [
                (f"rev:{await s.scalar(select(RevenueEvent.id))}", 4000),
                ("", 5000),
            ]
        assert await _count(factory, select(func.count()).select_from(RewardEntry)) == 2
        assert await _count(factory, select(func.count()).select_from(RevenueEvent)) == 1
        assert (
            await _count(
                factory,
                select(func.count())
                .select_from(ReferralEvent)
                .where(ReferralEvent.to_status == "won"),
            )
            == 1
        )
    finally:
        await engine.dispose()


async def test_cap_and_tiers_hold_under_concurrent_wins_of_different_referrals(
    committing_engine, database_url, codec
):
    """Twenty different referrals of one advocate won at once: the cap of 5 per period and the
    tier ladder (bonus from the 3rd) are counted without races."""
    engine = create_engine(database_url, pool_size=N, pool_timeout=30)
    factory = session_factory(engine)
    try:
        async with factory() as s:
            program, advocate, link = await make_world(s, codec)
            await make_reward_rule(
                s, program=program, name="base", amount_minor=1000, cap_count=5, cap_period_days=30
            )
            await make_reward_rule(
                s,
                program=program,
                name="bonus",
                amount_minor=3000,
                from_nth_referral=3,
                cap_count=5,
                cap_period_days=30,
            )
            ids = [
                (await make_referral(s, program=program, advocate=advocate, link=link)).id
                for _ in range(N)
            ]
            await s.commit()
        start = asyncio.Event()

        async def win(referral_id: int) -> None:
            async with factory() as s:
                await start.wait()
                await lifecycle.transition(
                    s, referral_id, "won", source="crm", actor="crm", now=at(1)
                )
                await s.commit()

        tasks = [asyncio.create_task(win(i)) for i in ids]
        await asyncio.sleep(0.05)
        start.set()
        assert [
            r for r in await asyncio.gather(*tasks, return_exceptions=True) if r is not None
        ] == []
        async with factory() as s:
            amounts = sorted((await s.scalars(select(Reward.amount_minor))).all())
        # Referrals 1-2 earn the base rule; from the 3rd the bonus applies, capped at 5.
        assert amounts == [1000, 1000, 3000, 3000, 3000, 3000, 3000]
    finally:
        await engine.dispose()
