"""CRM opportunities and billing revenue: upserts, history, idempotency, reversals."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select, text

from tests.attribution.factories import at, make_referral, make_world
from tests.factories import make_reward_rule
from vouch.attribution import opportunities, revenue, rollups
from vouch.attribution.opportunities import ContactData, OpportunityData
from vouch.attribution.revenue import RevenueData
from vouch.core.errors import Conflict, DomainError, NotFound, ValidationFailed
from vouch.models import Opportunity, OpportunityContact, OpportunityEvent, RevenueEvent, Reward


def opp(**kw):
    values: dict[str, Any] = {
        "crm_id": "006A",
        "stage": "Discovery",
        "amount_minor": 1_000_000,
        "currency": "usd",
    }
    values.update(kw)
    return OpportunityData(**values)


async def _history(session, opp_id):
    rows = await session.scalars(
        select(OpportunityEvent)
        .where(OpportunityEvent.opportunity_id == opp_id)
        .order_by(OpportunityEvent.id)
    )
    return [(e.from_stage, e.to_stage, e.from_amount_minor, e.to_amount_minor) for e in rows]


async def test_upsert_keeps_stage_and_amount_history_and_moves_the_referral(session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program, amount_minor=5000)
    referral = await make_referral(
        session, program=program, advocate=advocate, link=link, email="cto@newco.example"
    )
    first = await opportunities.upsert_opportunity(
        session,
        opp(contacts=[ContactData("CTO@newco.example", "champion")]),
        source="crm",
        actor="crm",
        now=at(1),
    )
    assert (first.created, first.changed) == (True, True)
    o = first.opportunity
    assert (o.referral_id, o.program_id, o.currency) == (referral.id, program.id, "USD")
    assert referral.status == "opportunity"
    same = await opportunities.upsert_opportunity(
        session, opp(), source="crm", actor="crm", now=at(2)
    )
    assert (same.created, same.changed) == (False, False)
    await opportunities.upsert_opportunity(
        session,
        opp(stage="Negotiation", amount_minor=1_200_000, referral_id=referral.id),
        source="crm",
        actor="crm",
        now=at(3),
    )
    await opportunities.move_stage(
        session,
        "006A",
        stage="Closed Won",
        status="won",
        amount_minor=None,
        source="crm",
        actor="crm",
        now=at(4),
    )
    assert await _history(session, o.id) == [
        (None, "Discovery", None, 1_000_000),
        ("Discovery", "Negotiation", 1_000_000, 1_200_000),
        ("Negotiation", "Closed Won", 1_200_000, 1_200_000),
    ]
    assert referral.status == "won"
    contacts = list(await session.scalars(select(OpportunityContact)))
    assert [(c.person_key, c.role, c.referral_id) for c in contacts] == [
        ("cto@newco.example", "champion", referral.id)
    ]
    assert await session.scalar(select(func.count()).select_from(Reward)) == 1


async def test_lost_reverses_a_won_referral_and_claws_back(session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_reward_rule(session, program=program)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await opportunities.upsert_opportunity(
        session,
        opp(status="won", stage="Closed Won", referral_id=referral.id),
        source="crm",
        actor=None,
        now=at(1),
    )
    assert referral.status == "won"
    await opportunities.upsert_opportunity(
        session,
        opp(status="lost", stage="Closed Lost", referral_id=referral.id),
        source="crm",
        actor=None,
        now=at(5),
    )
    assert referral.status == "lost"
    assert [r.state for r in await session.scalars(select(Reward))] == ["voided"]


async def test_expansion_does_not_move_the_referral(session, codec):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await opportunities.upsert_opportunity(
        session,
        opp(kind="expansion", status="won", referral_id=referral.id),
        source="crm",
        actor=None,
        now=at(1),
    )
    assert referral.status == "lead"


async def test_upsert_validation_writes_nothing(session, codec):
    for bad, field in (
        (opp(currency="XXX"), "currency"),
        (opp(amount_minor=-1), "amountMinor"),
        (opp(kind="upsell"), "kind"),
        (opp(crm_id=" "), "crmId"),
        (opp(contacts=[ContactData("nope")]), "contacts[0].email"),
    ):
        with pytest.raises(ValidationFailed) as exc:
            await opportunities.upsert_opportunity(
                session, bad, source="crm", actor=None, now=at(0)
            )
        assert exc.value.field == field
    with pytest.raises(NotFound):
        await opportunities.upsert_opportunity(
            session, opp(referral_id=999999), source="crm", actor=None, now=at(0)
        )
    assert await session.scalar(select(func.count()).select_from(Opportunity)) == 0


async def test_idempotency_key_replays_and_refuses_a_different_request(session, codec):
    first = await opportunities.upsert_opportunity(
        session, opp(), source="crm", actor=None, now=at(0), idempotency_key="k1"
    )
    replay = await opportunities.upsert_opportunity(
        session, opp(), source="crm", actor=None, now=at(1), idempotency_key="k1"
    )
    assert replay.opportunity.id == first.opportunity.id
    # A retry gets the first answer back.
    assert (replay.created, replay.changed) == (True, True)
    with pytest.raises(DomainError) as exc:
        await opportunities.upsert_opportunity(
            session, opp(stage="Other"), source="crm", actor=None, now=at(2), idempotency_key="k1"
        )
    assert exc.value.code == "IDEMPOTENCY_MISMATCH"
    assert first.opportunity.stage == "Discovery"


def charge(**kw):
    values: dict[str, Any] = {
        "external_id": "ch_1",
        "kind": "one_time",
        "amount_minor": 50_000,
        "currency": "USD",
        "occurred_at": at(10),
    }
    values.update(kw)
    return RevenueData(**values)


async def test_revenue_via_opportunity_and_refund_clawback(session, codec):
    program, advocate, link = await make_world(session, codec)
    share = await make_reward_rule(
        session,
        program=program,
        trigger="revenue",
        calc="percent",
        percent_bps=1000,
        amount_minor=0,
        clawback_days=30,
    )
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    await opportunities.upsert_opportunity(
        session,
        opp(status="won", stage="Won", referral_id=referral.id, close_date=date(2026, 3, 5)),
        source="crm",
        actor=None,
        now=at(5),
    )
    first = await revenue.record_revenue(
        session, charge(opportunity_crm_id="006A"), source="billing", actor=None, now=at(10)
    )
    second = await revenue.record_revenue(
        session,
        charge(
            external_id="ch_2",
            kind="recurring",
            amount_minor=20_000,
            referral_id=referral.id,
            occurred_at=at(40),
        ),
        source="billing",
        actor=None,
        now=at(40),
    )
    assert first.created
    assert second.created
    assert (first.event.referral_id, first.event.program_id) == (referral.id, program.id)
    replay = await revenue.record_revenue(
        session, charge(opportunity_crm_id="006A"), source="billing", actor=None, now=at(11)
    )
    assert (replay.created, replay.event.id) == (False, first.event.id)
    with pytest.raises(Conflict):
        await revenue.record_revenue(
            session,
            charge(opportunity_crm_id="006A", amount_minor=1),
            source="billing",
            actor=None,
            now=at(11),
        )
    rewards_rows = list(
        await session.scalars(select(Reward).where(Reward.rule_id == share.id).order_by(Reward.id))
    )
    assert [(r.amount_minor, r.state) for r in rewards_rows] == [
        (5000, "pending"),
        (2000, "pending"),
    ]

    # Refund of the first charge inside its window voids that charge's reward only.
    await revenue.record_revenue(
        session,
        charge(
            external_id="re_1",
            kind="refund",
            amount_minor=50_000,
            referral_id=referral.id,
            refunds_external_id="ch_1",
            occurred_at=at(20),
        ),
        source="billing",
        actor=None,
        now=at(20),
    )
    assert [r.state for r in rewards_rows] == ["voided", "pending"]
    assert referral.status == "won"  # net revenue is still positive
    await revenue.record_revenue(
        session,
        charge(
            external_id="re_2",
            kind="refund",
            amount_minor=20_000,
            referral_id=referral.id,
            refunds_external_id="ch_2",
            occurred_at=at(45),
        ),
        source="billing",
        actor=None,
        now=at(45),
    )
    assert referral.status == "refunded"
    assert [r.state for r in rewards_rows] == ["voided", "voided"]
    assert await revenue.net_revenue(session, referral.id) == 0


async def test_revenue_validation_writes_nothing(session, codec):
    for bad, field in (
        (charge(), "opportunityCrmId"),
        (charge(referral_id=1, amount_minor=0), "amountMinor"),
        (charge(referral_id=1, kind="chargeback"), "kind"),
        (charge(referral_id=1, currency="EURO"), "currency"),
        (charge(referral_id=1, refunds_external_id="ch_0"), "refundsExternalId"),
        (charge(referral_id=1, occurred_at=at(0).replace(tzinfo=None)), "occurredAt"),
    ):
        with pytest.raises(ValidationFailed) as exc:
            await revenue.record_revenue(session, bad, source="billing", actor=None, now=at(0))
        assert exc.value.field == field
    with pytest.raises(NotFound):
        await revenue.record_revenue(
            session, charge(opportunity_crm_id="missing"), source="billing", actor=None, now=at(0)
        )
    assert await session.scalar(select(func.count()).select_from(RevenueEvent)) == 0


async def _rollup_is_its_rebuild(session) -> None:
    incremental = await rollups.snapshot(session)
    per_program = await rollups.snapshot(session, per_program=True)
    await session.execute(text("DELETE FROM referral_daily_rollups"))
    await session.execute(text("DELETE FROM program_daily_rollups"))
    await rollups.rebuild(session)
    assert await rollups.snapshot(session) == incremental
    assert await rollups.snapshot(session, per_program=True) == per_program


async def test_a_deals_changes_keep_the_rollup_equal_to_its_rebuild(session, codec):
    """A deal of one referral adds its own rows to the rollup (``rollups.add_deal_change``),
    not the referral's contribution before and after: opened, amount and currency changed,
    won (with and without a close date), charged, kind changed (its charges move between
    sourced and expansion revenue), reopened, lost, then moved to another referral."""
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    other = await make_referral(
        session, program=program, advocate=advocate, link=link, email="other@example.org"
    )
    steps: list[dict[str, Any]] = [
        {"stage": "Demo"},
        {"stage": "Demo", "amount_minor": 2_000_000},
        {"stage": "Proposal", "currency": "eur"},
        {"stage": "Won", "status": "won"},
        {"stage": "Won", "status": "won", "close_date": date(2026, 3, 9)},
        {"stage": "Won", "status": "won", "kind": "expansion", "amount_minor": 900_000},
        {"stage": "Reopened", "status": "open", "kind": "renewal"},
        {"stage": "Lost", "status": "lost", "kind": "new_business"},
    ]
    for day, step in enumerate(steps, start=1):
        await opportunities.upsert_opportunity(
            session,
            opp(referral_id=referral.id, **step),
            source="crm",
            actor="crm",
            now=at(day),
        )
        if day == 4:
            await revenue.record_revenue(
                session,
                charge(opportunity_crm_id="006A", currency="EUR", occurred_at=at(4)),
                source="billing",
                actor=None,
                now=at(4),
            )
        await _rollup_is_its_rebuild(session)
    await opportunities.upsert_opportunity(
        session, opp(referral_id=other.id, stage="Moved"), source="crm", actor="crm", now=at(20)
    )
    await _rollup_is_its_rebuild(session)
