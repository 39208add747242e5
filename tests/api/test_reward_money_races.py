"""Issue 13 under concurrency and from the command line (real commits, real connections):
twenty re-wins earn once, twenty payouts of one reward pay once, twenty retried conversions
record one, and ``vouch rewards release`` approves each due reward once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.builders import make_redemption
from tests.attribution.factories import make_referral, make_world
from tests.cli.test_cli import run
from tests.factories import make_advocate, make_api_key, make_link, make_reward_rule
from vouch.api.ids import encode_id
from vouch.attribution import lifecycle, opportunities, rewards
from vouch.attribution.opportunities import OpportunityData
from vouch.core.clock import utcnow
from vouch.core.engine import create_engine
from vouch.core.sessions import session_factory
from vouch.models import (
    Conversion,
    Opportunity,
    OpportunityEvent,
    OutboxEvent,
    ReferralEvent,
    Reward,
    RewardEntry,
)
from vouch.web.app import Overrides, create_app

pytestmark = pytest.mark.committing
N = 20


@pytest.fixture
async def factory(
    committing_engine, database_url
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url, pool_size=N + 2, pool_timeout=30)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def racing_client(settings, factory) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, Overrides(sessionmaker=factory))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def _all_at_once(calls: list[Any]) -> list[Any]:
    return await asyncio.gather(*calls)


async def _graphql(client: httpx.AsyncClient, query: str, variables: dict[str, Any], key: str):
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_twenty_concurrent_rewins_earn_one_reward(factory, racing_client, codec):
    async with factory() as s:
        program, advocate, link = await make_world(s, codec)
        await make_reward_rule(s, program=program, name="won", amount_minor=5000)
        referral = await make_referral(s, program=program, advocate=advocate, link=link)
        deal = OpportunityData(
            crm_id="RACE-1",
            stage="Won",
            amount_minor=90000,
            currency="USD",
            status="won",
            referral_id=referral.id,
        )
        now = utcnow()
        await opportunities.upsert_opportunity(s, deal, source="crm", actor="crm", now=now)
        await lifecycle.transition(s, referral.id, "lost", source="crm", actor="crm", now=now)
        key = await make_api_key(s, scopes=["write"], name="crm")
        await s.commit()
    move = """mutation { moveOpportunityStage(crmId: "RACE-1", stage: "Won again", status: "won") {
        opportunity { status } errors { code } } }"""
    bodies = await _all_at_once([_graphql(racing_client, move, {}, key) for _ in range(N)])
    assert [b["data"]["moveOpportunityStage"]["errors"] for b in bodies] == [[]] * N
    async with factory() as s:
        rows = (
            await s.execute(
                select(Reward.state, Reward.round)
                .where(Reward.referral_id == referral.id)
                .order_by(Reward.id)
            )
        ).all()
        assert [tuple(r) for r in rows] == [("voided", 0), ("pending", 1)]


async def test_twenty_concurrent_payouts_of_one_reward_pay_once(factory, racing_client, codec):
    async with factory() as s:
        program, advocate, link = await make_world(s, codec)
        await make_reward_rule(s, program=program, name="cash", kind="cash", amount_minor=5000)
        referral = await make_referral(s, program=program, advocate=advocate, link=link)
        await lifecycle.transition(s, referral.id, "won", source="crm", actor="crm", now=utcnow())
        reward = await s.scalar(select(Reward).where(Reward.referral_id == referral.id))
        assert reward is not None
        await rewards.approve_reward(s, reward.id, actor="ops", reason=None, now=utcnow())
        key = await make_api_key(s, scopes=["write"], name="payouts")
        await s.commit()
    fulfil = """mutation($id: ID!, $ref: String!) { fulfilReward(rewardId: $id, fulfilmentRef: $ref) {
        fulfilled errors { code } } }"""
    rid = encode_id("Reward", reward.id)
    bodies = await _all_at_once(
        [_graphql(racing_client, fulfil, {"id": rid, "ref": f"po_{i}"}, key) for i in range(N)]
    )
    answers = [b["data"]["fulfilReward"] for b in bodies]
    assert answers.count({"fulfilled": True, "errors": []}) == 1
    assert answers.count({"fulfilled": False, "errors": [{"code": "CONFLICT"}]}) == N - 1
    async with factory() as s:
        entries = await s.scalar(
            select(func.count())
            .select_from(RewardEntry)
            .where(RewardEntry.reward_id == reward.id, RewardEntry.state == "fulfilled")
        )
        announced = await s.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.event_type == "reward.fulfilled")
        )
        assert (entries, announced) == (1, 1)


async def test_twenty_concurrent_keyed_conversions_without_a_time_record_one(
    factory, racing_client, codec
):
    async with factory() as s:
        program, advocate, link = await make_world(s, codec)
        referral = await make_referral(s, program=program, advocate=advocate, link=link)
        redemption = await make_redemption(s, referral=referral)
        key = await make_api_key(s, scopes=["write"], name="shop")
        await s.commit()
    body = {"redemptionCode": redemption.code, "kind": "signup", "externalRef": "acct-9"}
    headers = {"authorization": f"Bearer {key}", "idempotency-key": "same-key"}
    answers = await _all_at_once(
        [racing_client.post("/api/conversions", json=body, headers=headers) for _ in range(N)]
    )
    assert [a.status_code for a in answers] == [200] * N
    assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
    async with factory() as s:
        assert await s.scalar(select(func.count()).select_from(Conversion)) == 1


async def test_release_command_approves_due_rewards_once(factory, database_url, codec, tmp_path):
    async with factory() as s:
        program, advocate, link = await make_world(
            s, codec, settings={"auto_approve_rewards": True}
        )
        await make_reward_rule(s, program=program, name="held", amount_minor=5000, holding_days=7)
        due = await make_referral(s, program=program, advocate=advocate, link=link)
        await lifecycle.transition(
            s, due.id, "won", source="crm", actor="crm", now=utcnow() - timedelta(days=8)
        )
        young = await make_referral(s, program=program, advocate=advocate, link=link)
        await lifecycle.transition(s, young.id, "won", source="crm", actor="crm", now=utcnow())
        await s.commit()
    env = {"DATABASE_URL": database_url, "VOUCH_DATA_DIR": str(tmp_path)}
    first = run(["rewards", "release", "--json"], **env)
    assert first.returncode == 0, first.stderr
    async with factory() as s:
        approved = await s.scalar(
            select(Reward.id).where(Reward.referral_id == due.id, Reward.state == "approved")
        )
        pending = await s.scalar(select(Reward.state).where(Reward.referral_id == young.id))
    assert json.loads(first.stdout) == {"approved": 1, "reward_ids": [approved]}
    assert pending == "pending"
    again = run(["rewards", "release"], **env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "0 reward(s) approved at the end of their holding period"


async def test_twenty_concurrent_reattributions_move_the_credit_once(factory, racing_client, codec):
    async with factory() as s:
        program, a, a_link = await make_world(s, codec)
        await make_reward_rule(s, program=program, name="won", amount_minor=5000)
        b = await make_advocate(s)
        b_link = await make_link(s, codec, advocate=b, program=program)
        referral = await make_referral(s, program=program, advocate=a, link=a_link)
        await lifecycle.transition(s, referral.id, "won", source="crm", actor="crm", now=utcnow())
        key = await make_api_key(s, scopes=["admin"], name="ops")
        await s.commit()
    move = """mutation($r: ID!, $l: ID!) { reattributeReferral(referralId: $r, linkId: $l,
        reason: "CRM") { errors { code } } }"""
    ids = {"r": encode_id("Referral", referral.id), "l": encode_id("ReferralLink", b_link.id)}
    bodies = await _all_at_once([_graphql(racing_client, move, ids, key) for _ in range(N)])
    errors = [b["data"]["reattributeReferral"]["errors"] for b in bodies]
    assert errors.count([]) == 1
    assert errors.count([{"code": "INVALID"}]) == N - 1
    async with factory() as s:
        rows = (
            await s.execute(
                select(Reward.advocate_id, Reward.state)
                .where(Reward.referral_id == referral.id)
                .order_by(Reward.id)
            )
        ).all()
        assert [tuple(r) for r in rows] == [(a.id, "voided"), (b.id, "pending")]


UPSERT = """mutation($i: UpsertOpportunityInput!, $k: String) { upsertOpportunity(input: $i,
    idempotencyKey: $k) { created opportunity { id stage } errors { code } } }"""


async def _deal_effects(s: AsyncSession, crm_id: str) -> tuple[int, int, int]:
    deals = await s.scalar(
        select(func.count()).select_from(Opportunity).where(Opportunity.crm_id == crm_id)
    )
    history = await s.scalar(
        select(func.count())
        .select_from(OpportunityEvent)
        .join(Opportunity, Opportunity.id == OpportunityEvent.opportunity_id)
        .where(Opportunity.crm_id == crm_id)
    )
    announced = await s.scalar(
        select(func.count())
        .select_from(OutboxEvent)
        .where(
            OutboxEvent.event_type == "opportunity.updated",
            OutboxEvent.payload["crm_id"].astext == crm_id,
        )
    )
    return deals or 0, history or 0, announced or 0


async def test_twenty_concurrent_creations_of_one_unlinked_deal_make_one(factory, racing_client):
    """No referral, no key: nothing serialises the twenty but the deal's unique CRM id. One
    inserts it; the others find it under its row lock, identical: no change, no event."""
    async with factory() as s:
        key = await make_api_key(s, scopes=["write"], name="crm")
        await s.commit()
    deal = {"crmId": "RACE-NEW", "stage": "Demo", "amountMinor": 5000, "currency": "EUR"}
    bodies = await _all_at_once(
        [_graphql(racing_client, UPSERT, {"i": deal}, key) for _ in range(N)]
    )
    answers = [b["data"]["upsertOpportunity"] for b in bodies]
    assert [a["errors"] for a in answers] == [[]] * N
    assert [a["created"] for a in answers].count(True) == 1
    assert len({a["opportunity"]["id"] for a in answers}) == 1
    async with factory() as s:
        assert await _deal_effects(s, "RACE-NEW") == (1, 1, 1)


async def test_twenty_concurrent_keyed_deal_pushes_leave_one_effect(factory, racing_client, codec):
    """Twenty retries of one keyed push on a referral's deal: one deal, one history line, one
    event, one move, and every answer the first one."""
    async with factory() as s:
        program, advocate, link = await make_world(s, codec)
        referral = await make_referral(s, program=program, advocate=advocate, link=link)
        key = await make_api_key(s, scopes=["write"], name="crm")
        await s.commit()
    deal = {
        "crmId": "RACE-KEYED",
        "stage": "Demo",
        "amountMinor": 5000,
        "currency": "USD",
        "referralId": encode_id("Referral", referral.id),
    }
    variables = {"i": deal, "k": "push-1"}
    bodies = await _all_at_once([_graphql(racing_client, UPSERT, variables, key) for _ in range(N)])
    assert len({json.dumps(b, sort_keys=True) for b in bodies}) == 1
    assert bodies[0]["data"]["upsertOpportunity"]["created"] is True
    async with factory() as s:
        assert await _deal_effects(s, "RACE-KEYED") == (1, 1, 1)
        moves = await s.scalar(
            select(func.count())
            .select_from(ReferralEvent)
            .where(
                ReferralEvent.referral_id == referral.id, ReferralEvent.to_status == "opportunity"
            )
        )
        assert moves == 1
