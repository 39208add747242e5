"""Real concurrency: separate connections, real commits. The cap and natural keys hold."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.advocacy.conftest import NOW, days_ago
from vouch.advocacy.asks import evaluate_asks, transition_ask
from vouch.advocacy.reservations import reserve_reference
from vouch.advocacy.signals import build_signal, record_signal
from vouch.core.engine import create_engine
from vouch.core.errors import DomainError
from vouch.core.sessions import session_factory
from vouch.models import (
    AdvocacyAction,
    Advocate,
    AdvocateScore,
    Ask,
    Opportunity,
    PointsEntry,
    Program,
    Signal,
)
from vouch.models.enums import AskStatus

pytestmark = pytest.mark.committing

WORKERS = 20


@pytest.fixture
async def factory(committing_engine, database_url):
    engine = create_engine(database_url, pool_size=WORKERS + 2, pool_timeout=30)
    yield session_factory(engine)
    await engine.dispose()


async def seed(factory, *, queued: int = 0) -> dict[str, Any]:
    async with factory() as s:
        program = Program(slug="conc", name="Concurrency")
        advocate = Advocate(external_id="conc-1", email="c@example.com", tier=1)
        s.add_all([program, advocate])
        await s.flush()
        s.add(
            AdvocateScore(
                advocate_id=advocate.id,
                program_id=program.id,
                score=80.0,
                tier=1,
                contributions=[],
                computed_at=NOW,
            )
        )
        for kind, value in (("renewal", None), ("nps", 10.0), ("expansion", None)):
            s.add(Signal(advocate_id=advocate.id, kind=kind, value=value, occurred_at=days_ago(1)))
        for n in range(queued):
            s.add(
                Ask(
                    advocate_id=advocate.id,
                    program_id=program.id,
                    type="review",
                    moment="manual",
                    priority=50 + n,
                    status="queued",
                    queued_at=days_ago(1),
                )
            )
        opps = [
            Opportunity(crm_id=f"conc-opp-{i}", stage="demo", amount_minor=1000, program_id=None)
            for i in range(2)
        ]
        s.add_all(opps)
        await s.flush()
        ids = {"program": program.id, "advocate": advocate.id, "opps": [o.id for o in opps]}
        await s.commit()
    return ids


async def test_concurrent_evaluations_send_one_ask(factory):
    # Two asks already wait in the queue and three moments add three more: every worker sees
    # something to send, and only the per-advocate row lock keeps it to one.
    ids = await seed(factory, queued=2)
    start = asyncio.Event()

    async def worker() -> bool:
        async with factory() as s:
            await start.wait()
            result = await evaluate_asks(s, ids["advocate"], ids["program"], now=NOW)
            await s.commit()
            return result.sent is not None

    tasks = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    start.set()
    sent = await asyncio.gather(*tasks)
    assert sum(sent) == 1
    async with factory() as s:
        rows = (
            await s.execute(
                select(Ask.status, func.count()).group_by(Ask.status).order_by(Ask.status)
            )
        ).all()
    assert [tuple(r) for r in rows] == [("queued", 4), ("sent", 1)]


async def test_concurrent_reservations_never_double_book(factory):
    ids = await seed(factory)
    start = asyncio.Event()

    async def worker(opp_id: int) -> str:
        async with factory() as s:
            await start.wait()
            try:
                ask = await reserve_reference(
                    s, advocate_id=ids["advocate"], opportunity_id=opp_id, now=NOW
                )
            except DomainError as exc:
                return exc.code.value
            await s.commit()
            return f"ok:{ask.id}"

    tasks = [asyncio.create_task(worker(ids["opps"][i % 2])) for i in range(WORKERS)]
    start.set()
    outcomes = await asyncio.gather(*tasks)
    winners = {o for o in outcomes if o.startswith("ok:")}
    assert len(winners) == 1  # same reservation returned to every caller for the winning opp
    assert sum(1 for o in outcomes if o.startswith("ok:")) == WORKERS // 2
    assert sum(1 for o in outcomes if o == "CONFLICT") == WORKERS // 2
    async with factory() as s:
        assert await s.scalar(select(func.count()).select_from(Ask)) == 1


async def test_concurrent_identical_signals_store_one(factory):
    ids = await seed(factory)
    start = asyncio.Event()
    signal = build_signal(
        advocate_id=ids["advocate"],
        kind="csat",
        value=5,
        occurred_at=NOW,
        now=NOW,
        source="zendesk",
        external_id="survey-77",
    )

    async def worker() -> bool:
        async with factory() as s:
            await start.wait()
            recorded = await record_signal(s, signal, now=NOW)
            await s.commit()
            return recorded.created

    tasks = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    start.set()
    created = await asyncio.gather(*tasks)
    assert sum(created) == 1
    async with factory() as s:
        assert (
            await s.scalar(
                select(func.count()).select_from(Signal).where(Signal.source == "zendesk")
            )
            == 1
        )


async def test_concurrent_evaluations_across_programs_still_send_one_ask(factory):
    ids = await seed(factory)
    async with factory() as s:
        other = Program(slug="conc-2", name="Second program")
        s.add(other)
        await s.flush()
        s.add(
            AdvocateScore(
                advocate_id=ids["advocate"],
                program_id=other.id,
                score=80.0,
                tier=1,
                contributions=[],
                computed_at=NOW,
            )
        )
        other_id = other.id
        await s.commit()
    start = asyncio.Event()

    async def worker(program_id: int) -> bool:
        async with factory() as s:
            await start.wait()
            result = await evaluate_asks(s, ids["advocate"], program_id, now=NOW)
            await s.commit()
            return result.sent is not None

    programs = [ids["program"], other_id]
    tasks = [asyncio.create_task(worker(programs[i % 2])) for i in range(WORKERS)]
    start.set()
    assert sum(await asyncio.gather(*tasks)) == 1
    async with factory() as s:
        sent = await s.scalar(select(func.count()).select_from(Ask).where(Ask.status == "sent"))
    assert sent == 1


async def test_concurrent_publishes_record_one_action_and_one_award(factory):
    await seed(factory, queued=1)
    async with factory() as s:
        ask = await s.scalar(select(Ask))
        assert ask is not None
        ask.status = "sent"
        ask.sent_at = NOW
        ask_id = ask.id
        await s.commit()
    start = asyncio.Event()

    async def worker() -> int:
        async with factory() as s:
            await start.wait()
            result = await transition_ask(s, ask_id, to=AskStatus.PUBLISHED, now=NOW)
            await s.commit()
            return result.action.points if result.action else 0

    tasks = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    start.set()
    awarded = await asyncio.gather(*tasks)
    assert sorted(awarded, reverse=True)[:2] == [50, 0]
    async with factory() as s:
        assert await s.scalar(select(func.count()).select_from(AdvocacyAction)) == 1
        assert await s.scalar(select(func.sum(PointsEntry.points))) == 50
