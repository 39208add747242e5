"""The console's Integrations page: each provider's endpoint, whether it is set up, what it sent
and what Vouch did with it, for admin keys only; a HubSpot delivery shows up there."""

from __future__ import annotations

import json

from tests.factories import make_api_key
from tests.integrations.test_hubspot import event, sign
from tests.web.test_console import _sign_in


async def test_the_integrations_page_shows_each_delivery(client, session):
    admin = await make_api_key(session, scopes=["admin"])
    await session.commit()
    batch = json.dumps([event("deal.creation"), event("contact.creation")]).encode()
    delivered = await client.post(
        "/integrations/hubspot/webhook", content=batch, headers=sign(batch)
    )
    assert delivered.status_code == 200
    assert (await _sign_in(client, admin)).status_code == 303
    page = await client.get("/console/integrations")
    assert page.status_code == 200
    html = page.text
    assert '<tr data-provider="hubspot" data-configured="yes">' in html
    assert "http://testserver/integrations/hubspot/webhook" in html
    assert html.count('<tr data-status="queued">') == 1  # the deal, fetched off the request
    assert html.count('<tr data-status="ignored">') == 1  # a contact event Vouch does not use
    only = await client.get("/console/integrations?provider=stripe")
    assert "No events yet from stripe" in only.text
    refused = await client.get("/console/integrations?provider=mailchimp")
    assert refused.status_code == 400


async def test_the_integrations_page_is_for_admin_keys(client, session):
    reader = await make_api_key(session, scopes=["read"])
    await session.commit()
    assert (await _sign_in(client, reader)).status_code == 303
    assert (await client.get("/console/integrations")).status_code == 403
    assert "Integrations</a>" not in (await client.get("/console")).text
