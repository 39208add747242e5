"""The chain answers why a dollar is credited to an advocate; re-attribution keeps history."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.attribution.factories import at, make_click, make_referral, make_world
from tests.factories import make_advocate, make_link, make_reward_rule
from vouch.attribution import chain, lifecycle, opportunities, revenue, rewards
from vouch.attribution.opportunities import OpportunityData
from vouch.attribution.revenue import RevenueData
from vouch.core.errors import NotFound, ValidationFailed
from vouch.models import AttributionDecision


async def _journey(session, codec):
    program, advocate, link = await make_world(
        session, codec, attribution_window_days=14, rules_version=3
    )
    await make_reward_rule(session, program=program, amount_minor=5000)
    early = await make_click(session, link=link, occurred_at=at(-20), visitor_id="v-friend")
    c1 = await make_click(session, link=link, occurred_at=at(-2), visitor_id="v-friend")
    c2 = await make_click(session, link=link, occurred_at=at(-1), visitor_id="v-friend")
    await make_click(session, link=link, occurred_at=at(-1), visitor_id="v-other")
    referral = await make_referral(
        session,
        program=program,
        advocate=advocate,
        link=link,
        visitor_id="v-friend",
        click_id=c2.id,
    )
    await opportunities.upsert_opportunity(
        session,
        OpportunityData(
            crm_id="006X",
            stage="Won",
            status="won",
            amount_minor=900_000,
            currency="USD",
            referral_id=referral.id,
        ),
        source="crm:hubspot",
        actor="api_key:hubspot",
        now=at(5),
    )
    charge = await revenue.record_revenue(
        session,
        RevenueData(
            external_id="in_1",
            kind="one_time",
            amount_minor=900_000,
            currency="USD",
            occurred_at=at(6),
            opportunity_crm_id="006X",
        ),
        source="billing",
        actor="api_key:stripe",
        now=at(6),
    )
    return program, advocate, link, referral, charge.event, (early, c1, c2)


async def test_chain_from_revenue_back_to_the_advocate(session, codec):
    _program, advocate, link, referral, charge, (_early, c1, c2) = await _journey(session, codec)
    got = await chain.chain_for_revenue(session, charge.id)
    assert got.referral.id == referral.id
    assert got.advocate.id == advocate.id
    assert got.link is not None
    assert got.link.id == link.id
    assert [c.id for c in got.clicks] == [
        c1.id,
        c2.id,
    ]  # the 20-day-old click is outside the window
    (decision,) = got.decisions
    assert (
        decision.rule,
        decision.rules_version,
        decision.window_days,
        decision.evidence,
        decision.actor,
        decision.click_id,
    ) == ("last_touch", 3, 14, "click", "landing", c2.id)
    assert [(t.from_status, t.to_status, t.source, t.at) for t in got.transitions] == [
        (None, "lead", "landing", at(0)),
        ("lead", "won", "crm:hubspot", at(5)),
    ]
    assert [(o.opportunity.crm_id, [h.to_stage for h in o.history]) for o in got.opportunities] == [
        ("006X", ["Won"])
    ]
    assert [r.external_id for r in got.revenue] == ["in_1"]
    assert [(r.reward.amount_minor, [e.state for e in r.entries]) for r in got.rewards] == [
        (5000, ["pending"])
    ]
    by_opp = await chain.chain_for_opportunity(session, got.opportunities[0].opportunity.id)
    assert by_opp.referral.id == referral.id


async def test_chains_are_built_in_constant_statements(session, codec, count_queries):
    program, advocate, link, *_ = await _journey(session, codec)
    for _ in range(3):
        r = await make_referral(session, program=program, advocate=advocate, link=link)
        await lifecycle.transition(session, r.id, "won", source="crm", actor=None, now=at(2))
    count_queries.reset()
    chains = await chain.chains_for_advocate(session, advocate.id)
    assert len(chains) == 4
    first = count_queries.count
    r = await make_referral(session, program=program, advocate=advocate, link=link)
    count_queries.reset()
    assert len(await chain.chains_for_advocate(session, advocate.id)) == 5
    assert (first, count_queries.count) == (12, 12)


async def test_reattribution_adds_a_decision_and_moves_rewards(session, codec):
    program, advocate, _link, referral, _charge, _ = await _journey(session, codec)
    other = await make_advocate(session)
    other_link = await make_link(session, codec, advocate=other, program=program)
    decision = await chain.reattribute(
        session,
        referral.id,
        link_id=other_link.id,
        evidence="manual",
        actor="admin:ann",
        reason="friend says Grace sent them",
        now=at(7),
    )
    rows = list(await session.scalars(select(AttributionDecision).order_by(AttributionDecision.id)))
    assert [(d.advocate_id, d.is_current, d.supersedes_id) for d in rows] == [
        (advocate.id, False, None),
        (other.id, True, rows[0].id),
    ]
    assert decision.id == rows[1].id
    assert (referral.advocate_id, referral.link_id) == (other.id, other_link.id)
    got = await chain.chain_for_referral(session, referral.id)
    assert got.current_decision is not None
    assert got.current_decision.id == decision.id
    # The credit moved: the old advocate's unpaid reward is voided, the new one earns it.
    assert [(r.reward.advocate_id, r.reward.state, r.reward.round) for r in got.rewards] == [
        (advocate.id, "voided", 0),
        (other.id, "pending", 1),
    ]
    # A move of credit, not of status: recorded by the decisions (the superseded one names the
    # previous advocate), never as a "lead -> lead" transition.
    assert all(t.from_status != t.to_status for t in got.transitions)
    assert "reattribution" not in {t.source for t in got.transitions}
    # The old advocate's forward chains still show the referral and its move.
    assert [c.referral.id for c in await chain.chains_for_advocate(session, advocate.id)] == [
        referral.id
    ]
    with pytest.raises(ValidationFailed):
        await chain.reattribute(
            session,
            referral.id,
            link_id=other_link.id,
            evidence="manual",
            actor="a",
            reason="x",
            now=at(8),
        )
    with pytest.raises(NotFound):
        await chain.reattribute(
            session, referral.id, link_id=10**9, evidence="manual", actor="a", reason="x", now=at(8)
        )


async def test_unknown_or_unsourced_chain_is_not_found(session, codec):
    with pytest.raises(NotFound):
        await chain.chain_for_referral(session, 10**9)
    result = await opportunities.upsert_opportunity(
        session,
        OpportunityData(crm_id="lonely", stage="New", amount_minor=1, currency="USD"),
        source="crm",
        actor=None,
        now=at(0),
    )
    with pytest.raises(NotFound, match="not referral-sourced"):
        await chain.chain_for_opportunity(session, result.opportunity.id)
    assert rewards  # module used by the chain
