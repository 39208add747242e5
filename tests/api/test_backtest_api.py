"""GraphQL: rewardBacktest costs a proposed policy over recorded events, writes nothing, and
answers bad rules with a clear error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from tests.api.builders import make_referral
from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_link, make_program, make_reward_rule
from vouch.api.ids import encode_id
from vouch.attribution import lifecycle
from vouch.models import Reward, RewardRule

T0 = datetime(2026, 9, 1, tzinfo=UTC)
BACKTEST = """query($p: ID!, $s: Date!, $u: Date!, $policy: BacktestPolicyInput) {
  rewardBacktest(programId: $p, since: $s, until: $u, policy: $policy) {
    rules
    proposed { byState { key currency count amountMinor } bySide { key count amountMinor } }
    actual { byState { key currency count amountMinor } }
    currencies { currency proposedCostMinor actualCostMinor differenceMinor customers
      proposedCostPerCustomerMinor actualCostPerCustomerMinor }
    advocates { advocateId proposedMinor actualMinor } } }"""


async def test_backtest_costs_a_two_sided_proposal_against_the_ledger(client, session, codec):
    program = await make_program(session)
    await make_reward_rule(session, program=program, name="Referrer credit", amount_minor=5_000)
    advocate = await make_advocate(session)
    link = await make_link(session, codec, advocate=advocate, program=program)
    for day in (1, 2, 3):
        at = T0 + timedelta(days=day)
        referral = await make_referral(session, link=link, created_at=at)
        await lifecycle.on_referral_created(session, referral, source="landing", actor=None, now=at)
        await lifecycle.transition(session, referral.id, "won", source="crm", actor=None, now=at)
    key = await make_api_key(session, scopes=["read"])
    period = {"p": encode_id("Program", program.id), "s": "2026-09-01", "u": "2026-10-01"}

    current = (await gql(client, BACKTEST, period, token=key))["data"]["rewardBacktest"]
    assert current["rules"] == ["Referrer credit"]
    assert (
        current["proposed"]["byState"]
        == current["actual"]["byState"]
        == [{"key": "pending", "currency": "USD", "count": 3, "amountMinor": 15_000}]
    )
    assert current["currencies"][0]["differenceMinor"] == 0

    policy = {
        "rules": [
            {"name": "Referrer credit", "side": "REFERRER", "trigger": "WON", "amountMinor": 4_000},
            {"name": "Friend credit", "side": "REFERRED", "trigger": "WON", "amountMinor": 2_500},
        ],
        "autoApprove": True,
    }
    rewards_before = await session.scalar(select(func.count()).select_from(Reward))
    rules_before = await session.scalar(select(func.count()).select_from(RewardRule))
    out = (await gql(client, BACKTEST, period | {"policy": policy}, token=key))["data"][
        "rewardBacktest"
    ]
    assert out["proposed"]["byState"] == [
        {"key": "approved", "currency": "USD", "count": 6, "amountMinor": 19_500}
    ]
    assert out["proposed"]["bySide"] == [
        {"key": "referred", "count": 3, "amountMinor": 7_500},
        {"key": "referrer", "count": 3, "amountMinor": 12_000},
    ]
    assert out["currencies"] == [
        {
            "currency": "USD",
            "proposedCostMinor": 19_500,
            "actualCostMinor": 15_000,
            "differenceMinor": 4_500,
            "customers": 3,
            "proposedCostPerCustomerMinor": 6_500,
            "actualCostPerCustomerMinor": 5_000,
        }
    ]
    assert out["advocates"] == [
        {
            "advocateId": encode_id("Advocate", advocate.id),
            "proposedMinor": 12_000,
            "actualMinor": 15_000,
        }
    ]
    assert await session.scalar(select(func.count()).select_from(Reward)) == rewards_before
    assert await session.scalar(select(func.count()).select_from(RewardRule)) == rules_before


async def test_bad_proposals_and_periods_are_clear_errors(client, session):
    program = await make_program(session)
    key = await make_api_key(session, scopes=["read"])
    period = {"p": encode_id("Program", program.id), "s": "2026-09-01", "u": "2026-10-01"}
    percent_on_won = {
        "rules": [
            {
                "name": "x",
                "side": "REFERRER",
                "trigger": "WON",
                "calc": "PERCENT",
                "percentBps": 500,
            }
        ]
    }
    body = await gql(
        client, BACKTEST, period | {"policy": percent_on_won}, token=key, expect_errors=True
    )
    assert body["data"] is None
    assert body["errors"][0]["message"] == (
        "percent rules pay a share of revenue: use the revenue trigger"
    )
    assert body["errors"][0]["extensions"]["code"] == "INVALID"
    assert body["errors"][0]["extensions"]["field"] == "rules.0.trigger"
    backwards = await gql(
        client,
        BACKTEST,
        period | {"s": "2026-10-01", "u": "2026-09-01"},
        token=key,
        expect_errors=True,
    )
    assert backwards["errors"][0]["extensions"]["field"] == "since"
    too_long = await gql(
        client, BACKTEST, period | {"s": "2025-01-01"}, token=key, expect_errors=True
    )
    assert too_long["errors"][0]["message"] == "a backtest covers at most 366 days"
