"""Advocate and referral expose the whole loop: rewards, next ask, points, badges, signals,
opportunities and revenue — through dataloaders, and within the caller's rights."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.api.graphql import gql
from tests.attribution.factories import make_referral
from tests.factories import make_advocate, make_api_key, make_link, make_program, make_reward_rule
from vouch.api.ids import encode_id
from vouch.attribution import lifecycle
from vouch.models import AdvocateBadge, Ask, Opportunity, PointsEntry, RevenueEvent, Signal
from vouch.models.enums import RewardTrigger

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

ADVOCATE = """query($id: ID!) { advocate(id: $id) {
  rewards { amountMinor currency state }
  nextAsk { type status }
  points
  badges { code }
} }"""


async def _advocate_with_history(session, codec):
    program = await make_program(session)
    advocate = await make_advocate(session)
    link = await make_link(session, codec, advocate=advocate, program=program)
    await make_reward_rule(session, program=program, trigger=RewardTrigger.WON, amount_minor=5000)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await lifecycle.transition(session, referral.id, "won", source="crm_sync", actor="crm", now=NOW)
    session.add_all(
        [
            Ask(
                advocate_id=advocate.id,
                program_id=program.id,
                type="review",
                moment="nps_promoter",
                status="queued",
                queued_at=NOW,
                priority=70,
            ),
            PointsEntry(
                advocate_id=advocate.id,
                program_id=program.id,
                points=30,
                reason="review",
                ref="a1",
                at=NOW,
            ),
            AdvocateBadge(advocate_id=advocate.id, badge="first_referral"),
            Signal(advocate_id=advocate.id, kind="nps", value=10, occurred_at=NOW, source="survey"),
        ]
    )
    opp = Opportunity(
        crm_id="006X",
        referral_id=referral.id,
        program_id=program.id,
        amount_minor=120000,
        currency="USD",
        stage="Closed Won",
        status="won",
    )
    session.add(opp)
    await session.flush()
    session.add(
        RevenueEvent(
            external_id="ch_1",
            opportunity_id=opp.id,
            referral_id=referral.id,
            program_id=program.id,
            kind="one_time",
            amount_minor=120000,
            currency="USD",
            occurred_at=NOW,
            source="billing",
        )
    )
    await session.flush()
    return advocate, referral


async def test_api_key_reads_the_whole_advocate(client, session, codec):
    advocate, _ = await _advocate_with_history(session, codec)
    key = await make_api_key(session, scopes=["read"])
    query = ADVOCATE.replace(
        "badges { code }", "badges { code } signals { kind value } asks { type }"
    )
    body = await gql(client, query, {"id": encode_id("Advocate", advocate.id)}, token=key)
    assert body["data"]["advocate"] == {
        "rewards": [{"amountMinor": 5000, "currency": "USD", "state": "pending"}],
        "nextAsk": {"type": "REVIEW", "status": "QUEUED"},
        "points": 30,
        "badges": [{"code": "first_referral"}],
        "signals": [{"kind": "NPS", "value": 10.0}],
        "asks": [{"type": "REVIEW"}],
    }


async def test_widget_sees_rewards_points_and_next_ask_but_not_signals(client, session, codec, app):
    advocate, _ = await _advocate_with_history(session, codec)
    token = app.state.widget_tokens.mint(advocate.id)
    own = await gql(client, ADVOCATE, {"id": encode_id("Advocate", advocate.id)}, token=token)
    assert own["data"]["advocate"]["points"] == 30
    assert len(own["data"]["advocate"]["rewards"]) == 1
    assert own["data"]["advocate"]["nextAsk"] is not None
    denied = await gql(
        client,
        "query($id: ID!) { advocate(id: $id) { signals { kind } } }",
        {"id": encode_id("Advocate", advocate.id)},
        token=token,
        expect_errors=True,
    )
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_referral_reaches_opportunities_and_revenue(client, session, codec):
    _, referral = await _advocate_with_history(session, codec)
    key = await make_api_key(session, scopes=["read"])
    query = """query($id: ID!) { referral(id: $id) { status
      opportunities { crmId amountMinor } revenue { amountMinor kind } rewards { amountMinor } } }"""
    body = await gql(client, query, {"id": encode_id("Referral", referral.id)}, token=key)
    data = body["data"]["referral"]
    assert data["opportunities"] == [{"crmId": "006X", "amountMinor": 120000}]
    assert [r["amountMinor"] for r in data["revenue"]] == [120000]
    assert data["rewards"] == [{"amountMinor": 5000}]


NESTED = """query($first: Int!) { advocates(first: $first) { nodes {
  externalId rewards { amountMinor } nextAsk { type } points badges { code }
  links { code } clicks { total } referralCount } } }"""


async def _count_for(client, session, key, count_queries, first):
    await gql(client, "{ __typename }", token=key)  # last_used_at written once
    count_queries.reset()
    body = await gql(client, NESTED, {"first": first}, token=key)
    assert len(body["data"]["advocates"]["nodes"]) == first
    return count_queries.count


async def test_nested_advocate_lists_cost_the_same_for_5_and_100(
    client, session, codec, count_queries
):
    program = await make_program(session)
    for i in range(100):
        advocate = await make_advocate(session)
        await make_link(session, codec, advocate=advocate, program=program)
        session.add(
            PointsEntry(advocate_id=advocate.id, points=i + 1, reason="seed", ref=f"s{i}", at=NOW)
        )
    await session.flush()
    key = await make_api_key(session, scopes=["read"])
    small = await _count_for(client, session, key, count_queries, 5)
    large = await _count_for(client, session, key, count_queries, 100)
    # count, page, then one batch each: rewards, next ask, points, badges, links, clicks,
    # referral count (the API key is cached after the warm-up call).
    assert (small, large) == (9, 9)
