"""POST /webhooks/inbound: signature, timestamp tolerance, replay, and the payload mappings."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import func, select

from tests.attribution.factories import make_referral, make_world
from tests.conftest import INBOUND_SECRET
from vouch.api.ids import encode_id
from vouch.attribution import webhooks
from vouch.models import IdempotencyKey, Opportunity, OpportunityEvent, RevenueEvent

SECRET = INBOUND_SECRET


async def post(client, payload, *, msg_id="msg_1", ts=None, secret=SECRET, body=None):
    raw = body if body is not None else json.dumps(payload).encode()
    ts = int(time.time()) if ts is None else ts
    headers = webhooks.signed_headers(secret, msg_id, ts, raw)
    return await client.post("/webhooks/inbound", content=raw, headers=headers)


async def _count(session, model):
    return await session.scalar(select(func.count()).select_from(model))


HUBSPOT = {
    "type": "opportunity.upsert",
    "provider": "hubspot",
    "data": {
        "objectId": 987,
        "properties": {
            "dealname": "NewCo platform",
            "amount": "12000.50",
            "deal_currency_code": "EUR",
            "dealstage": "closedwon",
            "hs_is_closed_won": "true",
            "closedate": "2026-03-05T00:00:00Z",
            "dealtype": "newbusiness",
        },
        "contacts": [{"email": "buyer@newco.example", "role": "economic buyer"}],
    },
}


async def test_hubspot_deal_is_upserted_and_moves_the_referral(client, session, codec):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(
        session, program=program, advocate=advocate, link=link, email="buyer@newco.example"
    )
    response = await post(client, HUBSPOT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "processed"
    assert body["created"] is True
    assert body["replayed"] is False
    opp = await session.scalar(select(Opportunity))
    assert (
        opp.provider,
        opp.crm_id,
        opp.amount_minor,
        opp.currency,
        opp.status,
        opp.kind,
        opp.referral_id,
    ) == (
        "hubspot",
        "987",
        1_200_050,
        "EUR",
        "won",
        "new_business",
        referral.id,
    )
    await session.refresh(referral)
    assert referral.status == "won"


async def test_replayed_message_id_is_not_processed_again(client, session, codec):
    first = await post(client, HUBSPOT, msg_id="msg_r")
    again = await post(client, HUBSPOT, msg_id="msg_r")
    assert again.status_code == 200
    assert again.json() == first.json() | {"replayed": True}
    assert await _count(session, OpportunityEvent) == 1
    different = json.loads(json.dumps(HUBSPOT))
    different["data"]["properties"]["amount"] = "1"
    refused = await post(client, different, msg_id="msg_r")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "IDEMPOTENCY_MISMATCH"
    assert (await session.scalar(select(Opportunity.amount_minor))) == 1_200_050


async def test_bad_signature_and_stale_timestamp_are_refused_and_write_nothing(client, session):
    forged = await post(client, HUBSPOT, secret=webhooks.new_secret())
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "FORBIDDEN"
    stale = await post(client, HUBSPOT, ts=int(time.time()) - 301)
    assert stale.status_code == 401
    assert stale.json()["error"]["code"] == "EXPIRED"
    future = await post(client, HUBSPOT, ts=int(time.time()) + 400)
    assert future.status_code == 401
    unsigned = await client.post("/webhooks/inbound", content=json.dumps(HUBSPOT))
    assert unsigned.status_code == 401
    assert await _count(session, Opportunity) == 0
    assert await _count(session, IdempotencyKey) == 0


async def test_invalid_payload_is_422_and_the_id_can_be_retried(client, session):
    bad = json.loads(json.dumps(HUBSPOT))
    bad["data"]["properties"]["amount"] = "12.345"
    response = await post(client, bad, msg_id="msg_fix")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "data.properties.amount"
    assert await _count(session, IdempotencyKey) == 0
    assert (await post(client, b"", msg_id="x", body=b"not json")).status_code == 422
    fixed = await post(client, HUBSPOT, msg_id="msg_fix2")
    assert fixed.status_code == 200


async def test_salesforce_opportunity_and_billing_revenue(client, session, codec):
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    sf = {
        "type": "opportunity.upsert",
        "provider": "salesforce",
        "data": {
            "Id": "0065g00000XyZ",
            "Name": "Acme expansion",
            "Amount": 5000,
            "CurrencyIsoCode": "USD",
            "StageName": "Negotiation/Review",
            "IsClosed": False,
            "IsWon": False,
            "CloseDate": "2026-04-30",
            "Type": "New Business",
            "Vouch_Referral_Id__c": encode_id("Referral", referral.id),
        },
    }
    assert (await post(client, sf, msg_id="sf1")).status_code == 200
    opp = await session.scalar(select(Opportunity))
    assert (opp.provider, opp.crm_id, opp.amount_minor, opp.stage, opp.status, opp.referral_id) == (
        "salesforce",
        "0065g00000XyZ",
        500_000,
        "Negotiation/Review",
        "open",
        referral.id,
    )
    rev = {
        "type": "revenue.recorded",
        "provider": "stripe",
        "data": {
            "external_id": "in_123",
            "kind": "recurring",
            "amount_minor": 49_900,
            "currency": "USD",
            "occurred_at": "2026-05-01T00:00:00+00:00",
            "opportunity_crm_id": "0065g00000XyZ",
        },
    }
    response = await post(client, rev, msg_id="st1")
    assert response.status_code == 200
    event = await session.scalar(select(RevenueEvent))
    assert (event.external_id, event.amount_minor, event.referral_id, event.source) == (
        "in_123",
        49_900,
        referral.id,
        "billing",
    )
    assert response.json()["revenue_event_id"] == encode_id("RevenueEvent", event.id)
    unknown = await post(client, {"type": "nope", "provider": "x", "data": {}}, msg_id="u1")
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "type"


async def test_signal_events_reach_the_advocacy_engine_once(client, session):
    from tests.factories import make_advocate
    from vouch.models import Signal

    advocate = await make_advocate(session, external_id="crm-contact-77")
    payload = {
        "type": "signal.recorded",
        "provider": "delighted",
        "data": {
            "advocate_external_id": "crm-contact-77",
            "kind": "nps",
            "value": 10,
            "occurred_at": "2026-11-01T09:30:00+00:00",
            "external_id": "survey-response-5",
        },
    }
    first = await post(client, payload, msg_id="sig_1")
    assert first.status_code == 200, first.text
    assert (first.json()["type"], first.json()["created"]) == ("signal.recorded", True)
    again = await post(client, payload, msg_id="sig_2")  # a new delivery of the same fact
    assert again.json()["created"] is False
    rows = list(await session.scalars(select(Signal).where(Signal.advocate_id == advocate.id)))
    assert [(s.kind, s.value, s.source) for s in rows] == [("nps", 10.0, "delighted")]
    unknown = await post(client, {"type": "ticket.closed", "data": {}}, msg_id="sig_3")
    assert unknown.status_code == 422
    assert "signal.recorded" in unknown.json()["error"]["message"]


async def test_revenue_names_the_deal_by_the_id_the_crm_gave_it(client, session, codec):
    """A HubSpot deal is stored as 987 (provider hubspot), so revenue for "987" finds it."""
    program, advocate, link = await make_world(session, codec)
    referral = await make_referral(
        session, program=program, advocate=advocate, link=link, email="buyer@newco.example"
    )
    assert (await post(client, HUBSPOT, msg_id="hs_deal")).status_code == 200
    rev = {
        "type": "revenue.recorded",
        "provider": "chargebee",
        "data": {
            "external_id": "inv_987_1",
            "kind": "one_time",
            "amount_minor": 1_200_050,
            "currency": "EUR",
            "occurred_at": "2026-03-06T00:00:00+00:00",
            "opportunity_crm_id": "987",
        },
    }
    response = await post(client, rev, msg_id="rev_987")
    assert response.status_code == 200, response.text
    event = await session.scalar(select(RevenueEvent))
    opp = await session.scalar(select(Opportunity))
    assert (event.opportunity_id, event.referral_id, event.amount_minor) == (
        opp.id,
        referral.id,
        1_200_050,
    )


async def test_an_id_two_crms_share_needs_its_provider(client, session):
    sf = {
        "type": "opportunity.upsert",
        "provider": "salesforce",
        "data": {"Id": "987", "StageName": "Prospecting", "Amount": 10, "CurrencyIsoCode": "EUR"},
    }
    assert (await post(client, HUBSPOT, msg_id="hs_987")).status_code == 200
    assert (await post(client, sf, msg_id="sf_987")).status_code == 200
    assert await _count(session, Opportunity) == 2
    rev: dict[str, Any] = {
        "type": "revenue.recorded",
        "provider": "billing",
        "data": {
            "external_id": "inv_shared",
            "kind": "one_time",
            "amount_minor": 1000,
            "currency": "EUR",
            "occurred_at": "2026-03-06T00:00:00+00:00",
            "opportunity_crm_id": "987",
        },
    }
    ambiguous = await post(client, rev, msg_id="rev_a")
    assert ambiguous.status_code == 422
    assert ambiguous.json()["error"]["field"] == "opportunityCrmId"
    assert "provider" in ambiguous.json()["error"]["message"]
    assert await _count(session, RevenueEvent) == 0
    rev["data"]["opportunity_provider"] = "salesforce"
    named = await post(client, rev, msg_id="rev_b")
    assert named.status_code == 200, named.text
    event = await session.scalar(select(RevenueEvent))
    sf_opp = await session.scalar(select(Opportunity).where(Opportunity.provider == "salesforce"))
    assert event.opportunity_id == sf_opp.id
