"""How many SQL statements each hot write path costs, asserted exactly as the read paths' are
(issue 16). A change that adds a round trip to a claim or a conversion fails here and has to say
why. Counted on the test connection, with the API key already cached (as in steady state);
transaction control (savepoints) is not counted.

The program earns as a real one does: a friend credit on signup (referred side) and a capped
advocate reward on won (referrer side)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import select

from tests.api.graphql import gql
from tests.conftest import INBOUND_SECRET
from tests.factories import make_api_key, make_reward_rule
from tests.web.conftest import claim, make_setup, open_offer
from vouch.access import idempotency
from vouch.api.ids import encode_id
from vouch.attribution import webhooks
from vouch.attribution.claims import ClaimContext, claim_offer, validate_claim
from vouch.core.clock import utcnow
from vouch.models import Reward
from vouch.models.enums import ReferralSource

CONVERT = """mutation($i: RecordConversionInput!) { recordConversion(input: $i) {
    conversion { externalRef } errors { code } } }"""
REVENUE = """mutation($i: RecordRevenueInput!, $k: String) { recordRevenue(input: $i,
    idempotencyKey: $k) { created errors { code } } }"""
UPSERT = """mutation($i: UpsertOpportunityInput!, $k: String) { upsertOpportunity(input: $i,
    idempotencyKey: $k) { created opportunity { stage } errors { code } } }"""
REDEEM = """mutation($i: RedeemOfferInput!) { redeemOffer(input: $i) {
    redemption { redeemed } errors { code } } }"""


@pytest.fixture
async def world(session, codec) -> Any:
    setup = await make_setup(session, codec)
    await make_reward_rule(
        session, program=setup.program, side="referred", trigger="signup", amount_minor=2000
    )
    await make_reward_rule(
        session, program=setup.program, trigger="won", amount_minor=5000, cap_count=100
    )
    key = await make_api_key(session, scopes=["write"])
    await session.commit()
    return setup, key


async def _claimed(session, setup, email: str) -> Any:
    result = await claim_offer(
        session,
        claim=validate_claim(email=email, name=None, company=None, consent=True),
        ctx=ClaimContext(
            program_id=setup.program.id, link_id=setup.link.id, source=ReferralSource.API
        ),
        now=utcnow(),
    )
    await session.commit()
    return result


async def _warm(client, key: str) -> None:
    """One request first, so the API key is cached as it is in steady state."""
    await gql(client, "{ __typename }", token=key)


async def test_a_claim_from_the_offer_page(client, world, count_queries):
    setup, _ = world
    page = await open_offer(client, setup.code)  # buffers the landing's click
    assert page.status_code == 200
    count_queries.reset()
    response = await claim(client, setup.code, csrf=None)
    assert response.status_code == 303
    # rate-limit hit 1 and, on a window's first hit, pruning old windows 1 (own transaction);
    # the claim's reads 1 (program, erased-person check, signup rules, live candidate links
    # with their advocates and the visitor's latest click); the buffered click: write it 1,
    # look it up 1; referral + redemption + decision 1; fraud counts 1; flags + first event +
    # rollup + outbox 1 (a claim right after the page loads is too fast); the friend's reward
    # with its history line and outbox event 1. (The friend's one-rung, uncapped credit needs
    # no advocate lock and no ladder count.)
    assert count_queries.count == 9, count_queries.statements


@pytest.fixture
def no_legacy_keys(monkeypatch):
    """Steady state after the owner upgrade: no process looks for legacy idempotency keys."""
    monkeypatch.setattr(idempotency._LegacyKeys, "gone", True)


async def test_a_keyed_conversion_that_wins_the_referral(
    client, session, world, count_queries, no_legacy_keys
):
    setup, key = world
    result = await _claimed(session, setup, "buyer@example.org")
    await _warm(client, key)
    count_queries.reset()
    variables = {
        "i": {
            "redemptionCode": result.redemption_code,
            "kind": "PURCHASE",
            "externalRef": "order-1",
            "amountMinor": 1999,
            "currency": "USD",
            "idempotencyKey": "conv-1",
        }
    }
    body = await gql(client, CONVERT, variables, token=key)
    assert body["data"]["recordConversion"]["errors"] == []
    # key 1; referral locked by code with its program and qualified + won rules 1; conversion
    # with its outbox event and the key's stored answer 1; status move with its event and
    # outbox event 1; advocate lock 1; ordinal and cap 1; reward with its history line and
    # outbox event 1
    assert count_queries.count == 7, count_queries.statements
    count_queries.reset()
    again = await gql(client, CONVERT, variables, token=key)
    assert again["data"]["recordConversion"] == body["data"]["recordConversion"]
    # the key's insert (it exists), the stored answer, the first conversion
    assert count_queries.count == 3, count_queries.statements


async def test_revenue_and_opportunity_writes(
    client, session, world, count_queries, no_legacy_keys
):
    setup, key = world
    result = await _claimed(session, setup, "deal@example.org")
    referral = encode_id("Referral", result.referral_id)
    await _warm(client, key)
    deal = {
        "crmId": "D-1",
        "stage": "Demo",
        "amountMinor": 250_000,
        "currency": "USD",
        "referralId": referral,
    }
    counts = {}
    for name, query, variables in (
        ("opportunity created", UPSERT, {"i": deal, "k": "o-1"}),
        ("stage moved", UPSERT, {"i": {**deal, "stage": "Proposal"}, "k": "o-2"}),
        ("deal won", UPSERT, {"i": {**deal, "stage": "Won", "status": "won"}, "k": "o-3"}),
        (
            "revenue",
            REVENUE,
            {
                "i": {
                    "externalId": "in_1",
                    "kind": "recurring",
                    "amountMinor": 9900,
                    "currency": "USD",
                    "occurredAt": utcnow().isoformat(),
                    "referralId": referral,
                },
                "k": "r-1",
            },
        ),
        (
            "redemption",
            REDEEM,
            {
                "i": {
                    "code": result.redemption_code,
                    "redeemedBy": "acct-1",
                    "idempotencyKey": "x-1",
                }
            },
        ),
    ):
        count_queries.reset()
        body = await gql(client, query, variables, token=key)
        payload = next(iter(body["data"].values()))
        assert payload["errors"] == [], (name, payload)
        counts[name] = count_queries.count
    # Each with its idempotency key (claimed; the answer stored, in the write's statement on
    # the revenue path) and outbox event(s).
    assert counts == {
        # key 1; the deal's current link and currency 1; the referral locked with its
        # program's settings and its qualified and won rules 1 (the rollup and the move take no
        # lock of their own, the move reads no rules); the deal inserted with its history line 1;
        # what it adds to both rollups (its own rows: ``rollups.deal_change_args``) with its
        # outbox event and the key's answer 1; the referral moves to opportunity (status,
        # event, outbox) 1
        "opportunity created": 6,
        # key 1; link and currency 1; referral locked (and rules) 1; the deal locked 1; its
        # update, history line, rollup rows (none: a stage move adds nothing), outbox event and
        # the key's answer 1 (the referral is an opportunity already: no move)
        "stage moved": 5,
        # key 1; link and currency 1; referral locked with settings and rules 1; the deal
        # locked (with its close date) 1; update, history line, rollup, outbox and answer 1; the
        # win moves the referral 1; won before? 1; advocate lock 1; ladder and cap 1; the
        # reward with its history line and outbox event 1
        "deal won": 10,
        # key 1; referral locked with its program's currency and settings and its revenue
        # rules 1; the event with what it adds to both rollups, its outbox event and the key's
        # answer 1 (the program shares no revenue: no rule, no reward; with a deal's CRM id
        # instead of the referral id, reading the deal is one more)
        "revenue": 3,
        "redemption": 4,  # key, redeemed (returning the row), outbox, answer
    }


SIGNAL = """mutation($i: SignalInput!) { recordSignal(input: $i) {
    signals { created } errors { code } } }"""
APPROVE = """mutation($id: ID!) { approveReward(rewardId: $id) {
    reward { state } errors { code } } }"""
VOID = """mutation($id: ID!) { voidReward(rewardId: $id, reason: "duplicate") {
    reward { state } errors { code } } }"""
HUBSPOT_DEAL = {
    "type": "opportunity.upsert",
    "provider": "hubspot",
    "data": {
        "objectId": 987,
        "properties": {
            "dealname": "NewCo",
            "amount": "120.50",
            "deal_currency_code": "USD",
            "dealstage": "demo",
            "dealtype": "newbusiness",
        },
        "contacts": [{"email": "contact@example.org"}],
    },
}


async def test_signal_reward_and_inbound_writes(
    client, session, world, count_queries, no_legacy_keys
):
    """The other hot writes the issue names: a signal (with the advocate's score refresh), a
    reward approved and voided by an admin, and a signed inbound CRM event (a HubSpot deal
    matched to its referral by the contact's email)."""
    setup, key = world
    admin = await make_api_key(session, scopes=["admin"], name="ops")
    await session.commit()
    await _claimed(session, setup, "first@example.org")
    await _claimed(session, setup, "contact@example.org")
    await _warm(client, key)
    await _warm(client, admin)
    first, second = (await session.scalars(select(Reward.id).order_by(Reward.id))).all()[:2]
    signal = {
        "advocateId": encode_id("Advocate", setup.advocate.id),
        "kind": "NPS",
        "value": 10,
        "occurredAt": "2026-01-05T10:00:00Z",
        "source": "delighted",
        "externalId": "resp-1",
    }
    counts = {}
    for name, query, variables, token in (
        ("signal", SIGNAL, {"i": signal}, key),
        ("reward approved", APPROVE, {"id": encode_id("Reward", first)}, admin),
        ("reward voided", VOID, {"id": encode_id("Reward", second)}, admin),
    ):
        count_queries.reset()
        body = await gql(client, query, variables, token=token)
        payload = next(iter(body["data"].values()))
        assert payload["errors"] == [], (name, payload)
        counts[name] = count_queries.count
    raw = json.dumps(HUBSPOT_DEAL).encode()
    headers = webhooks.signed_headers(INBOUND_SECRET, "msg_1", int(time.time()), raw)
    count_queries.reset()
    response = await client.post("/webhooks/inbound", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["created"] is True
    counts["inbound deal"] = count_queries.count
    assert counts == {
        # the advocate live? 1; the signal (once per source and external id) 1 and read back
        # 1; the advocate's programs 1; the signals its score weighs 1; the score row 1; the
        # advocate's tier and score 1
        "signal": 7,
        # the reward locked 1; its referral's moderation 1 (a held referral's reward waits); the
        # state with its history line and ``reward.approved`` in the outbox 1
        # (``rewards._MOVE``)
        "reward approved": 3,
        # the reward locked 1; the state, history line and ``reward.voided`` 1
        "reward voided": 2,
        # the delivery's key 1; the deal's link and currency 1; the contact's referral 1, locked
        # with the rules its move may earn 1; the deal with its history line 1; its rollup rows
        # and outbox event with the key's answer 1; the contact 1; the referral moves to
        # opportunity 1; the delivery's answer 1
        "inbound deal": 9,
    }
