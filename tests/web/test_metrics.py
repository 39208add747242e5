"""/metrics: business metrics read from the database at scrape time and inbound refusals by
reason (counters across ``--workers N``: tests/faults/test_metrics_workers.py)."""

from __future__ import annotations

import re

from sqlalchemy import select, update

from tests.attribution.factories import make_referral, make_world
from tests.web.test_inbound_webhooks import post
from vouch.attribution import webhooks
from vouch.attribution.webhooks import EndpointInput
from vouch.models import Referral, WebhookDelivery


def _value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} ([0-9.e+]+)$", text, re.M)
    assert match, f"{sample} not in:\n{text}"
    return float(match.group(1))


async def test_business_metrics_come_from_the_database(client, session, codec):
    program, advocate, link = await make_world(session, codec)
    for _ in range(3):
        await make_referral(session, program=program, advocate=advocate, link=link)
    first = await session.scalar(select(Referral.id).order_by(Referral.id).limit(1))
    await session.execute(update(Referral).where(Referral.id == first).values(status="won"))
    endpoint = await webhooks.create_endpoint(
        session, EndpointInput(url="https://crm.example/h", event_types=[])
    )
    await webhooks.enqueue(session, "referral.created", {"referral_id": 1})
    await webhooks.enqueue(session, "referral.created", {"referral_id": 2})
    oldest = await session.scalar(
        select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id).limit(1)
    )
    await session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == oldest).values(status="dead")
    )
    await session.commit()
    refused = await post(
        client,
        {"type": "opportunity.upsert"},
        secret="whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE=",
    )
    assert refused.status_code == 401
    invalid = await post(client, {"type": "nope", "data": {}}, msg_id="msg_metrics_2")
    assert invalid.status_code == 422

    text = (await client.get("/metrics")).text
    assert _value(text, 'vouch_referrals{status="lead"}') == 2
    assert _value(text, 'vouch_referrals{status="won"}') == 1
    assert _value(text, 'vouch_webhook_deliveries{status="dead"}') == 1
    assert _value(text, 'vouch_webhook_deliveries{status="pending"}') == 1
    assert _value(text, "vouch_webhook_dead_letters") == 1
    assert _value(text, 'vouch_inbound_refusals_total{reason="FORBIDDEN"}') >= 1
    assert _value(text, 'vouch_inbound_refusals_total{reason="INVALID"}') >= 1
    for family in ("vouch_conversions", "vouch_rewards", "vouch_offer_claims"):
        assert f"# TYPE {family} gauge" in text, family
