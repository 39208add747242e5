"""Tiers by percentile or threshold; changes become events; the ready-account rate."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.advocacy.conftest import NOW, days_ago, make_signal
from tests.factories import make_advocate, make_program
from vouch.advocacy.tiers import (
    TierConfig,
    assign_tiers,
    parse_tiers,
    recompute_all_tiers,
    recompute_tiers,
    referral_ready_account_rate,
    tier_distribution,
)
from vouch.core.errors import ValidationFailed
from vouch.models import Advocate, AdvocateScore, TierEvent


def test_default_percentiles_on_ten_advocates():
    scores = {pk: float(100 - pk) for pk in range(1, 11)}
    scores[11] = 0.0
    tiers = assign_tiers(scores, parse_tiers(None))
    assert tiers == {
        1: 1,
        2: 2,
        3: 2,
        4: 3,
        5: 3,
        6: 3,
        7: None,
        8: None,
        9: None,
        10: None,
        11: None,
    }


def test_percentiles_on_a_hundred_and_ties_broken_by_id():
    scores = dict.fromkeys(range(1, 101), 50.0)
    tiers = assign_tiers(scores, parse_tiers(None))
    assert [pk for pk, t in tiers.items() if t == 1] == list(range(1, 11))
    assert sum(1 for t in tiers.values() if t == 2) == 20
    assert sum(1 for t in tiers.values() if t == 3) == 30
    assert sum(1 for t in tiers.values() if t is None) == 40


def test_thresholds():
    config = TierConfig(mode="threshold", thresholds=(70, 40, 10))
    assert assign_tiers({1: 70.0, 2: 69.9, 3: 40.0, 4: 9.99, 5: 0.0}, config) == {
        1: 1,
        2: 2,
        3: 2,
        4: None,
        5: None,
    }


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"mode": "vibes"}, "tiers.mode"),
        ({"percentiles": [50, 40, 20]}, "tiers.percentiles"),
        ({"percentiles": [10, 20]}, "tiers.percentiles"),
        ({"thresholds": [10, 20, 30]}, "tiers.thresholds"),
        ({"levels": 3}, "tiers"),
    ],
)
def test_bad_tier_settings(raw, field):
    with pytest.raises(ValidationFailed) as exc:
        parse_tiers(raw)
    assert exc.value.field == field


async def test_recompute_writes_tiers_events_and_summary(session):
    program = await make_program(
        session, settings={"tiers": {"mode": "threshold", "thresholds": [50, 25, 10]}}
    )
    top = await make_advocate(session, account_id="acct-a")
    mid = await make_advocate(session, account_id="acct-a")
    low = await make_advocate(session, account_id="acct-b")
    await make_advocate(session, account_id="acct-c")
    await make_signal(session, top.id, "nps", 10, at=days_ago(1))
    await make_signal(session, top.id, "renewal", at=days_ago(1))
    await make_signal(session, mid.id, "nps", 10, at=days_ago(1))
    await make_signal(session, low.id, "support_resolved", at=days_ago(1))
    run = await recompute_tiers(session, program.id, now=NOW)
    assert (run.scored, run.changes) == (4, 3)
    assert run.distribution == {1: 1, 2: 1, 3: 1, None: 1}
    events = (await session.scalars(select(TierEvent).order_by(TierEvent.advocate_id))).all()
    assert [(e.advocate_id, e.from_tier, e.to_tier, e.reason) for e in events] == [
        (top.id, None, 1, "on_demand"),
        (mid.id, None, 2, "on_demand"),
        (low.id, None, 3, "on_demand"),
    ]
    await session.refresh(top)
    assert (top.tier, top.score) == (1, 54.79)  # (30 + 25) * 0.5 ** (1 / 180)

    # Nothing changed: no new events. Then the top advocate escalates and drops.
    again = await recompute_tiers(session, program.id, now=NOW)
    assert again.changes == 0
    await make_signal(session, top.id, "escalation_opened", at=NOW)
    await recompute_tiers(session, program.id, now=NOW, reason="scheduled")
    last = await session.scalar(select(TierEvent).order_by(TierEvent.id.desc()).limit(1))
    assert last is not None
    assert (last.advocate_id, last.from_tier, last.to_tier, last.reason) == (
        top.id,
        1,
        2,
        "scheduled",
    )

    dist = await tier_distribution(session, program.id)
    assert (dist.counts, dist.untiered, dist.scored) == ({1: 0, 2: 2, 3: 1}, 1, 4)
    rate = await referral_ready_account_rate(session, program.id)
    assert (rate.ready_accounts, rate.total_accounts, rate.rate) == (2, 3, 0.6667)


async def test_recompute_all_covers_active_programs_only(session):
    active = await make_program(session)
    await make_program(session, status="paused")
    advocate = await make_advocate(session)
    await make_signal(session, advocate.id, "nps", 9, at=days_ago(1))
    runs = await recompute_all_tiers(session, now=NOW)
    assert [r.program_id for r in runs] == [active.id]
    stored = (await session.scalars(select(AdvocateScore))).all()
    # One scored advocate: 10% and 30% of 1 round to 0, 60% rounds to 1.
    assert [(s.program_id, s.tier) for s in stored] == [(active.id, 3)]
    refreshed = await session.scalar(select(Advocate.tier).where(Advocate.id == advocate.id))
    assert refreshed == 3
