"""The console's Integrations page in a real browser, after a HubSpot batch, a Salesforce
Outbound Message and a Stripe event were delivered to a live server the way each provider
sends them. Its screenshots are the ones the guides show: with VOUCH_WRITE_GUIDE_SCREENSHOTS=1
this test rewrites docs/guides/img/console-integrations-<provider>.png (else it keeps them in
tests/artifacts/ like the other browser tests)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
import stripe
import uvicorn

from tests.browser.conftest import _free_port
from tests.browser.test_console import ARTIFACTS, seed
from tests.browser.test_journey import wait_for
from tests.integrations.conftest import (
    HUBSPOT_CLIENT_SECRET,
    SALESFORCE_ORG,
    SALESFORCE_TOKEN,
    STRIPE_SECRET,
)
from tests.integrations.test_hubspot import event, sign
from tests.integrations.test_salesforce import envelope, opportunity
from tests.integrations.test_stripe import invoice, stripe_event
from vouch.core.codes import LinkCodec
from vouch.web.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.committing]
GUIDE_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "guides" / "img"


def test_the_integrations_page_after_one_delivery_from_each_provider(
    browser, database_url, settings, committing_engine
):
    from selenium.webdriver.common.by import By

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    live = settings.model_copy(
        update={
            "database_url": database_url,
            "public_base_url": base,
            "hubspot_client_secret": HUBSPOT_CLIENT_SECRET,
            "salesforce_outbound_token": SALESFORCE_TOKEN,
            "salesforce_org_ids": [SALESFORCE_ORG],
            "stripe_webhook_secret": STRIPE_SECRET,
        }
    )
    codec = LinkCodec(live.resolved_hashid_salt(), live.hashid_min_length)
    key, _ = seed(database_url, codec, live.resolved_secret())
    server = uvicorn.Server(
        uvicorn.Config(create_app(live), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        change = event("deal.propertyChange", propertyName="dealstage", propertyValue="closedwon")
        hub = json.dumps([event("deal.creation"), change]).encode()
        uri = f"{base}/integrations/hubspot/webhook"
        assert httpx.post(uri, content=hub, headers=sign(hub, uri=uri)).status_code == 200
        sf = envelope(opportunity("04l5g00000Z9"))
        sent = httpx.post(
            f"{base}/integrations/salesforce/outbound?token={SALESFORCE_TOKEN}", content=sf
        )
        assert sent.status_code == 200
        paid = json.dumps(stripe_event("invoice.paid", invoice(), event_id="evt_guide"))
        header = stripe.WebhookSignature.generate_signature_header(paid, STRIPE_SECRET)
        sent = httpx.post(
            f"{base}/integrations/stripe/webhook",
            content=paid,
            headers={"stripe-signature": header, "content-type": "application/json"},
        )
        assert sent.status_code == 200

        browser.set_window_size(1366, 900)
        browser.get(f"{base}/console/login")
        browser.find_element(By.ID, "api_key").send_keys(key)
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait_for(lambda: browser.current_url == f"{base}/console")
        for provider in ("hubspot", "salesforce", "stripe"):
            browser.get(f"{base}/console/integrations?provider={provider}")
            rows = browser.find_elements(By.CSS_SELECTOR, "#events tr[data-status]")
            assert rows, provider
            configured = browser.find_element(By.CSS_SELECTOR, f'tr[data-provider="{provider}"]')
            assert configured.get_attribute("data-configured") == "yes"
            _keep(browser, f"console-integrations-{provider}")
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _keep(driver, name: str) -> None:
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1366, min(max(height + 120, 600), 2000))
    folder = GUIDE_IMAGES if os.environ.get("VOUCH_WRITE_GUIDE_SCREENSHOTS") == "1" else ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / f"{name}.png"))
