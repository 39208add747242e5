"""Backtests of large programs replayed in worker processes, one share of the advocates each:
the same answer as the replay in the request's own process, cent for cent, with re-attributed
referrals whose advocates fall in different shares by id (so the shares must keep them
together)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from tests.attribution.test_backtest import T0, _generated
from vouch.attribution import backtest as bt
from vouch.models import RewardRule


async def test_shares_in_worker_processes_add_up_to_the_single_replay(committing_engine, codec):
    factory = async_sessionmaker(committing_engine, expire_on_commit=False)
    async with factory() as session:
        program = await _generated(session, codec, 31, rounds="CLAW_BACK")
        await session.commit()
    async with factory() as session:
        pairs = await bt.session_fetch(session)(bt.REATTRIBUTED_PAIRS, program.id)
        # re-attributions between advocates that share 1 of 2 would not hold together by id
        assert any(a % 2 != b % 2 for a, b in pairs)
        shares = await bt.partitions(session, program.id, 2)
        assert shares[0].advocates
        stored = [
            bt.PolicyRule.of(r)
            for r in await session.scalars(
                select(RewardRule).where(RewardRule.program_id == program.id)
            )
        ]
    proposals = [None, [replace(r, amount_minor=r.amount_minor * 3) for r in stored]]
    periods = [
        (T0.date(), (T0 + timedelta(days=200)).date()),
        ((T0 + timedelta(days=20)).date(), (T0 + timedelta(days=50)).date()),
    ]
    for rules in proposals:
        for since, until in periods:
            async with factory() as session:
                alone = await bt.backtest(session, program.id, rules, since=since, until=until)
            for processes in (2, 3):
                async with factory() as session:
                    split = await bt.backtest(
                        session,
                        program.id,
                        rules,
                        since=since,
                        until=until,
                        processes=processes,
                        processes_from=0,
                    )
                assert split == alone
    assert sum(b.count for b in alone.proposed.by_state) > 0


async def test_workers_that_cannot_replay_leave_the_request_to_replay_alone(
    committing_engine, codec, monkeypatch, caplog
):
    """A worker that cannot reach the database (or dies) does not fail the backtest: the
    request replays in its own process, logs why, and the next backtest gets a fresh pool."""
    factory = async_sessionmaker(committing_engine, expire_on_commit=False)
    async with factory() as session:
        program = await _generated(session, codec, 32)
        await session.commit()
    since, until = T0.date(), (T0 + timedelta(days=200)).date()
    async with factory() as session:
        alone = await bt.backtest(session, program.id, None, since=since, until=until)
    real = bt._connect_arguments
    monkeypatch.setattr(
        bt, "_connect_arguments", lambda session: real(session) | {"host": "/nonexistent"}
    )
    async with factory() as session:
        pool = bt._pool(2)
        split = await bt.backtest(
            session, program.id, None, since=since, until=until, processes=2, processes_from=0
        )
    assert split == alone
    assert "backtest workers failed" in caplog.text
    assert bt._pool(2) is not pool
