"""Every report cell checked against a hand-built ledger of journeys (see the docstring)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, text

from tests.attribution.factories import make_click, make_referral
from tests.factories import make_advocate, make_link, make_program, make_reward_rule
from vouch.attribution import (
    chain,
    lifecycle,
    moderation,
    opportunities,
    reports,
    revenue,
    reward_fulfilment,
    rewards,
    rollups,
)
from vouch.attribution.opportunities import OpportunityData
from vouch.attribution.reports import FunnelStep, PipelineRow, ReportFilter
from vouch.attribution.revenue import RevenueData
from vouch.core.errors import ValidationFailed
from vouch.core.ids import encode_id
from vouch.models import Reward


def d(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


async def build_ledger(session, codec):
    """Program P (USD): advocates A (tier 1, email), B (tier 2, linkedin), C (no tier, email).
      r1 A: lead 3/2, qualified 3/3, O1 new 100 000 (3/4) won 3/10, charge 100 000 3/11,
            O2 expansion 50 000 (4/5) won 4/6, charge 50 000 4/7 via O2.
      r2 A: lead 3/5, qualified 3/6, O3 new 80 000 (3/7) lost 3/20.
      r3 B: lead 3/8, O4 new 40 000 (3/9) won 3/12, charge 40 000 3/13, full refund 4/2.
      r4 B: lead 3/9, flagged, rejected 3/10.
      r5 C: lead 4/3.
    Program Q (EUR): A via a direct link, r6 3/15, O5 20 000 (3/16) won 3/17, charge 3/18.
    Rules in P: referrer 10 000 on won; friend 2 000 on signup. Clicks: LA 3 (1 bot) and LB 2
    in March, LC 1 in April.
    """
    p = await make_program(session, name="P", currency="USD")
    q = await make_program(session, name="Q", currency="EUR")
    a = await make_advocate(session, first_name="Ann", last_name="Alpha", tier=1)
    b = await make_advocate(session, first_name="Bob", last_name="Beta", tier=2)
    c = await make_advocate(session, first_name="Cid", last_name="Gamma", tier=None)
    la = await make_link(session, codec, advocate=a, program=p, channel="email", created_at=d(3, 1))
    lb = await make_link(
        session, codec, advocate=b, program=p, channel="linkedin", created_at=d(3, 1)
    )
    lc = await make_link(session, codec, advocate=c, program=p, channel="email", created_at=d(3, 1))
    lq = await make_link(
        session, codec, advocate=a, program=q, channel="direct", created_at=d(3, 1)
    )
    referrer_rule = await make_reward_rule(session, program=p, name="referrer", amount_minor=10_000)
    await make_reward_rule(
        session, program=p, name="friend", side="referred", trigger="signup", amount_minor=2_000
    )
    for day in (1, 2):
        await make_click(session, link=la, occurred_at=d(3, day))
    await make_click(session, link=la, occurred_at=d(3, 2), is_bot=True)
    for day in (7, 8):
        await make_click(session, link=lb, occurred_at=d(3, day))
    await make_click(session, link=lc, occurred_at=d(4, 2))

    async def upsert(
        crm_id, ref, amount, currency, now, *, status="open", kind="new_business", close=None
    ):
        await opportunities.upsert_opportunity(
            session,
            OpportunityData(
                crm_id=crm_id,
                stage=status,
                status=status,
                kind=kind,
                amount_minor=amount,
                currency=currency,
                referral_id=ref.id,
                close_date=close,
            ),
            source="crm",
            actor="crm",
            now=now,
        )

    async def charge(ext, ref, amount, currency, when, *, kind="one_time", opp=None, refunds=None):
        await revenue.record_revenue(
            session,
            RevenueData(
                external_id=ext,
                kind=kind,
                amount_minor=amount,
                currency=currency,
                occurred_at=when,
                referral_id=None if opp else ref.id,
                opportunity_crm_id=opp,
                refunds_external_id=refunds,
            ),
            source="billing",
            actor="billing",
            now=when,
        )

    r1 = await make_referral(session, program=p, advocate=a, link=la, created_at=d(3, 2))
    await lifecycle.transition(session, r1.id, "qualified", source="crm", actor="crm", now=d(3, 3))
    await upsert("O1", r1, 100_000, "USD", d(3, 4))
    await upsert("O1", r1, 100_000, "USD", d(3, 10), status="won", close=date(2026, 3, 10))
    await charge("ch1", r1, 100_000, "USD", d(3, 11), opp="O1")
    await upsert("O2", r1, 50_000, "USD", d(4, 5), kind="expansion")
    await upsert(
        "O2", r1, 50_000, "USD", d(4, 6), kind="expansion", status="won", close=date(2026, 4, 6)
    )
    await charge("ch2", r1, 50_000, "USD", d(4, 7), opp="O2")

    r2 = await make_referral(session, program=p, advocate=a, link=la, created_at=d(3, 5))
    await lifecycle.transition(session, r2.id, "qualified", source="crm", actor="crm", now=d(3, 6))
    await upsert("O3", r2, 80_000, "USD", d(3, 7))
    await upsert("O3", r2, 80_000, "USD", d(3, 20), status="lost")

    r3 = await make_referral(session, program=p, advocate=b, link=lb, created_at=d(3, 8))
    await upsert("O4", r3, 40_000, "USD", d(3, 9))
    await upsert("O4", r3, 40_000, "USD", d(3, 12), status="won", close=date(2026, 3, 12))
    await charge("ch3", r3, 40_000, "USD", d(3, 13))
    await charge("re3", r3, 40_000, "USD", d(4, 2), kind="refund", refunds="ch3")

    r4 = await make_referral(session, program=p, advocate=b, link=lb, created_at=d(3, 9))
    await moderation.flag_referral(session, r4, ["velocity_ip"], now=d(3, 9))
    await moderation.moderate_referral(
        session, r4.id, approve=False, reason="farm", actor="admin", now=d(3, 10)
    )

    r5 = await make_referral(session, program=p, advocate=c, link=lc, created_at=d(4, 3))

    r6 = await make_referral(session, program=q, advocate=a, link=lq, created_at=d(3, 15))
    await upsert("O5", r6, 20_000, "EUR", d(3, 16))
    await upsert("O5", r6, 20_000, "EUR", d(3, 17), status="won", close=date(2026, 3, 17))
    await charge("ch6", r6, 20_000, "EUR", d(3, 18), opp="O5")

    # Revenue from a customer who was not referred: counts only in the revenue share.
    await opportunities.upsert_opportunity(
        session,
        OpportunityData(
            crm_id="O9", stage="won", status="won", amount_minor=50_000, currency="USD"
        ),
        source="crm",
        actor="crm",
        now=d(3, 20),
    )
    await charge("ch9", None, 50_000, "USD", d(3, 21), opp="O9")

    # Reward states: r1's referrer reward paid out, r2's friend reward approved.
    r1_referrer = await session.scalar(
        select(Reward).where(Reward.referral_id == r1.id, Reward.rule_id == referrer_rule.id)
    )
    await rewards.approve_reward(session, r1_referrer.id, actor="admin", reason=None, now=d(3, 15))
    await reward_fulfilment.fulfil_reward(session, r1_referrer.id, actor="admin", now=d(3, 16))
    r2_friend = await session.scalar(select(Reward).where(Reward.referral_id == r2.id))
    await rewards.approve_reward(session, r2_friend.id, actor="admin", reason=None, now=d(3, 16))
    return {"p": p, "q": q, "a": a, "b": b, "c": c, "refs": [r1, r2, r3, r4, r5, r6]}


def row(key, label, currency, *values):
    return PipelineRow(key, label, currency, *values)


async def test_pipeline_by_every_dimension(session, codec):
    w = await build_ledger(session, codec)
    p, q, a, b, c = w["p"], w["q"], w["a"], w["b"], w["c"]
    #            leads opps pipeline won won_minor revenue sourced expansion
    assert await reports.pipeline(session, ReportFilter(), group_by="program") == [
        row(
            encode_id("Program", p.id),
            "P",
            "USD",
            4,
            4,
            270_000,
            3,
            190_000,
            150_000,
            100_000,
            50_000,
        ),
        row(encode_id("Program", q.id), "Q", "EUR", 1, 1, 20_000, 1, 20_000, 20_000, 20_000, 0),
    ]
    only_p = ReportFilter(program_id=p.id)
    assert await reports.pipeline(session, only_p, group_by="advocate") == [
        row(
            encode_id("Advocate", a.id),
            "Ann Alpha",
            "USD",
            2,
            3,
            230_000,
            2,
            150_000,
            150_000,
            100_000,
            50_000,
        ),
        row(encode_id("Advocate", b.id), "Bob Beta", "USD", 1, 1, 40_000, 1, 40_000, 0, 0, 0),
        row(encode_id("Advocate", c.id), "Cid Gamma", "USD", 1, 0, 0, 0, 0, 0, 0, 0),
    ]
    assert await reports.pipeline(session, only_p, group_by="tier") == [
        row("1", "1", "USD", 2, 3, 230_000, 2, 150_000, 150_000, 100_000, 50_000),
        row("2", "2", "USD", 1, 1, 40_000, 1, 40_000, 0, 0, 0),
        row("none", "none", "USD", 1, 0, 0, 0, 0, 0, 0, 0),
    ]
    assert await reports.pipeline(session, only_p, group_by="channel") == [
        row("email", "email", "USD", 3, 3, 230_000, 2, 150_000, 150_000, 100_000, 50_000),
        row("linkedin", "linkedin", "USD", 1, 1, 40_000, 1, 40_000, 0, 0, 0),
    ]
    assert await reports.pipeline(session, only_p, group_by="month") == [
        row("2026-03", "2026-03", "USD", 3, 3, 220_000, 2, 140_000, 140_000, 140_000, 0),
        row("2026-04", "2026-04", "USD", 1, 1, 50_000, 1, 50_000, 10_000, -40_000, 50_000),
    ]
    april = ReportFilter(program_id=p.id, since=date(2026, 4, 1), until=date(2026, 5, 1))
    assert await reports.pipeline(session, april, group_by="program") == [
        row(
            encode_id("Program", p.id), "P", "USD", 1, 1, 50_000, 1, 50_000, 10_000, -40_000, 50_000
        ),
    ]


async def test_report_revenue_agrees_with_the_chain(session, codec):
    w = await build_ledger(session, codec)
    chains = await chain.build_chains(session, [r.id for r in w["refs"]])
    usd = sum(
        (-e.amount_minor if e.kind == "refund" else e.amount_minor)
        for ch in chains
        if ch.referral.status != "rejected"
        for e in ch.revenue
        if e.currency == "USD"
    )
    (p_row, _) = await reports.pipeline(session, ReportFilter(), group_by="program")
    assert usd == p_row.revenue_minor == 150_000
    # The incrementally kept rollup equals a rebuild from raw events.
    incremental = await rollups.snapshot(session)
    per_program = await rollups.snapshot(session, per_program=True)

    def totals(rows):
        return [sum(v[i] for v in rows.values()) for i in range(len(rollups.MEASURES))]

    assert (
        totals(per_program)
        == totals(incremental)
        == [5, 5, 290_000, 4, 210_000, 170_000, 120_000, 50_000]
    )
    # Lose both rollups (as after a bad deploy): the rebuild restores them exactly.
    await session.execute(text("DELETE FROM referral_daily_rollups"))
    await session.execute(text("DELETE FROM program_daily_rollups"))
    assert await rollups.snapshot(session, per_program=True) == {}
    assert await rollups.rebuild(session) == len(incremental)
    assert await rollups.snapshot(session) == incremental
    assert await rollups.snapshot(session, per_program=True) == per_program


async def test_funnel_with_rates(session, codec):
    w = await build_ledger(session, codec)
    assert await reports.funnel(session, ReportFilter(program_id=w["p"].id)) == [
        FunnelStep("clicks", 5, None, None),
        FunnelStep("leads", 4, 0.8, 0.8),
        FunnelStep("qualified", 3, 0.75, 0.6),
        FunnelStep("opportunities", 3, 1.0, 0.6),
        FunnelStep("won", 2, 0.6667, 0.4),
    ]
    march = ReportFilter(program_id=w["p"].id, since=date(2026, 3, 1), until=date(2026, 4, 1))
    assert [s.count for s in await reports.funnel(session, march)] == [4, 3, 3, 3, 2]


async def test_time_to_first_referral_and_retention(session, codec):
    w = await build_ledger(session, codec)
    ttfr = await reports.time_to_first_referral(session, ReportFilter(program_id=w["p"].id))
    assert ttfr == reports.TimeToFirstReferral(advocates=3, median_days=7.0, mean_days=13.67)
    kept = await reports.retention(
        session, ReportFilter(program_id=w["p"].id), after_days=30, now=d(5, 20)
    )
    assert kept == reports.Retention(after_days=30, customers=2, retained=1, rate=0.5)
    with pytest.raises(ValidationFailed):
        await reports.retention(session, ReportFilter(), after_days=0, now=d(5, 20))


async def test_cost_roi_and_leaderboard(session, codec):
    w = await build_ledger(session, codec)
    assert await reports.cost_and_roi(session, ReportFilter(program_id=w["p"].id)) == [
        reports.CostRow(
            currency="USD",
            pending_minor=4_000,
            approved_minor=2_000,
            fulfilled_minor=10_000,
            voided_minor=14_000,
            reward_cost_minor=16_000,
            revenue_minor=150_000,
            total_revenue_minor=200_000,
            revenue_share=0.75,
            customers=2,
            cost_per_customer_minor=8_000,
            roi=8.375,
        )
    ]
    everywhere = await reports.cost_and_roi(session, ReportFilter())
    assert [
        (
            c.currency,
            c.reward_cost_minor,
            c.revenue_minor,
            c.total_revenue_minor,
            c.revenue_share,
            c.customers,
            c.cost_per_customer_minor,
            c.roi,
        )
        for c in everywhere
    ] == [
        ("EUR", 0, 20_000, 20_000, 1.0, 3, 0, None),
        ("USD", 16_000, 150_000, 200_000, 0.75, 3, 5_333, 8.375),
    ]
    board = await reports.leaderboard(session, ReportFilter(program_id=w["p"].id), limit=10)
    assert [(r.rank, r.name, r.tier, r.leads, r.won, r.revenue) for r in board] == [
        (1, "Ann Alpha", 1, 2, 2, (reports.Amount("USD", 150_000),)),
        (2, "Bob Beta", 2, 1, 1, ()),  # charged, then refunded in full
        (3, "Cid Gamma", None, 1, 0, ()),
    ]


async def test_csv_export(session, codec):
    w = await build_ledger(session, codec)
    text = await reports.export_csv(
        session, "pipeline", ReportFilter(program_id=w["p"].id), group_by="channel"
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0] == {
        "key": "email",
        "label": "email",
        "currency": "USD",
        "leads": "3",
        "opportunities": "3",
        "pipeline_minor": "230000",
        "won": "2",
        "won_minor": "150000",
        "revenue_minor": "150000",
        "sourced_revenue_minor": "100000",
        "expansion_revenue_minor": "50000",
    }
    assert len(rows) == 2
    funnel_csv = await reports.export_csv(session, "funnel", ReportFilter(program_id=w["p"].id))
    assert funnel_csv.splitlines()[:2] == [
        "step,count,rate_from_previous,rate_from_first",
        "clicks,5,,",
    ]
    with pytest.raises(ValidationFailed):
        await reports.export_csv(session, "secrets", ReportFilter())


async def test_report_input_validation(session):
    with pytest.raises(ValidationFailed) as exc:
        await reports.pipeline(session, ReportFilter(), group_by="color")
    assert exc.value.field == "groupBy"
    with pytest.raises(ValidationFailed) as exc:
        await reports.funnel(session, ReportFilter(since=date(2026, 2, 1), until=date(2026, 1, 1)))
    assert exc.value.field == "since"
    with pytest.raises(ValidationFailed):
        await reports.leaderboard(session, ReportFilter(), limit=1000)
