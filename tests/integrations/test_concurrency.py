"""Twenty identical provider deliveries at once leave one effect (real commits, real
connections): Stripe events, Salesforce notifications and HubSpot events alike."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import stripe
from sqlalchemy import func, select

from tests.attribution.factories import make_referral, make_world
from tests.integrations.conftest import STRIPE_SECRET
from tests.integrations.test_hubspot import event as hubspot_event
from tests.integrations.test_hubspot import sign as hubspot_sign
from tests.integrations.test_salesforce import envelope, opportunity
from tests.integrations.test_stripe import invoice, stripe_event
from vouch.api.ids import encode_id
from vouch.core.engine import create_engine
from vouch.core.sessions import session_factory
from vouch.models import IntegrationEvent, IntegrationJob, Opportunity, RevenueEvent
from vouch.web.app import Overrides, create_app

pytestmark = pytest.mark.committing
N = 20


async def test_twenty_identical_deliveries_at_once(
    committing_engine, database_url, codec, integration_settings
):
    engine = create_engine(database_url, pool_size=N, pool_timeout=30)
    factory = session_factory(engine)
    try:
        async with factory() as s:
            program, advocate, link = await make_world(s, codec)
            referral = await make_referral(s, program=program, advocate=advocate, link=link)
            await s.commit()
        app = create_app(integration_settings, Overrides(sessionmaker=factory))
        meta = {"vouch_referral_id": encode_id("Referral", referral.id)}
        paid = json.dumps(stripe_event("invoice.paid", invoice(metadata=meta), event_id="evt_x"))
        sf = envelope(opportunity("04l5g00000Z1", Vouch_Referral_Id__c=meta["vouch_referral_id"]))
        hs = json.dumps([hubspot_event("deal.creation")]).encode()

        async def deliver(client: httpx.AsyncClient, kind: str) -> httpx.Response:
            if kind == "stripe":
                header = stripe.WebhookSignature.generate_signature_header(paid, STRIPE_SECRET)
                return await client.post(
                    "/integrations/stripe/webhook",
                    content=paid.encode(),
                    headers={"stripe-signature": header},
                )
            if kind == "salesforce":
                token = integration_settings.salesforce_outbound_token
                return await client.post(
                    f"/integrations/salesforce/outbound?token={token}", content=sf
                )
            return await client.post(
                "/integrations/hubspot/webhook", content=hs, headers=hubspot_sign(hs)
            )

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for kind in ("stripe", "salesforce", "hubspot"):
                answers = await asyncio.gather(*(deliver(client, kind) for _ in range(N)))
                assert [a.status_code for a in answers] == [200] * N, kind
                if kind == "stripe":
                    assert sorted(a.json()["replayed"] for a in answers) == [False] + [True] * (
                        N - 1
                    )
                    assert {a.json()["status"] for a in answers} == {"processed"}
                if kind == "hubspot":
                    assert sum(a.json()["queued"] for a in answers) == 1
        async with factory() as s:
            count = select(func.count())
            assert await s.scalar(count.select_from(RevenueEvent)) == 1
            assert await s.scalar(count.select_from(Opportunity)) == 1
            assert await s.scalar(count.select_from(IntegrationJob)) == 1
            assert await s.scalar(count.select_from(IntegrationEvent)) == 3
    finally:
        await engine.dispose()
