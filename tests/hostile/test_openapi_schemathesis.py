"""Schemathesis against a live ``vouch serve`` from the committed OpenAPI document: generated
requests to every REST endpoint (API key, widget token and inbound signature supplied) never get
a 5xx, and every answer conforms to the document (status, content type, body schema)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import schemathesis
import stripe
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.faults.harness import ROOT, PrivatePostgres, VouchProcess
from vouch.attribution import webhooks

EXAMPLES = 600
# a Standard Webhooks secret: whsec_ + base64 of the key bytes
SECRET = "whsec_c2NoZW1hdGhlc2lzLWluYm91bmQtc2VjcmV0LTAxMjM="
HUBSPOT_SECRET = "hubspot-app-client-secret-for-schemathesis"
STRIPE_SECRET = "whsec_schemathesis_stripe_endpoint_secret"
SALESFORCE_TOKEN = "5a1e5f0rce0utb0undt0ken0f32letters0k"
SALESFORCE_ORG = "00D000000000062EAA"
SCHEMA = schemathesis.openapi.from_path(str(ROOT / "docs" / "openapi.json"))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]  # type: ignore[union-attr]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
STATUSES: Counter[tuple[str, int]] = Counter()


@pytest.fixture(scope="module")
def live() -> Iterator[dict[str, str]]:
    path = ROOT / ".vouch" / f"faults-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    pg = PrivatePostgres(path / "pg")
    vouch = VouchProcess(
        database_url=pg.url,
        data_dir=path / "data",
        extra_env={
            "VOUCH_WEBHOOK_WORKER": "false",
            "VOUCH_INBOUND_WEBHOOK_SECRET": SECRET,
            "VOUCH_HUBSPOT_CLIENT_SECRET": HUBSPOT_SECRET,
            "VOUCH_SALESFORCE_OUTBOUND_TOKEN": SALESFORCE_TOKEN,
            "VOUCH_SALESFORCE_ORG_IDS": SALESFORCE_ORG,
            "VOUCH_STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        },
    )
    vouch.extra_env["VOUCH_HUBSPOT_WEBHOOK_URL"] = f"{vouch.base}/integrations/hubspot/webhook"
    try:
        vouch.cli("migrate")
        demo = json.loads(vouch.cli("demo", "--json"))
        token = parse_qs(urlsplit(demo["widget_demo"]).query)["token"][0]
        key = vouch.admin_key()
        vouch.start()
        yield {"base": vouch.base, "key": key, "token": token}
    finally:
        vouch.stop()
        pg.server.cleanup()
        shutil.rmtree(path, ignore_errors=True)


def test_the_document_covers_every_rest_endpoint():
    assert sorted(op.label for op in OPERATIONS) == [
        "POST /api/conversions",
        "POST /api/redemptions",
        "POST /integrations/hubspot/webhook",
        "POST /integrations/salesforce/outbound",
        "POST /integrations/stripe/webhook",
        "POST /share/events",
        "POST /webhooks/inbound",
    ]


def _send(case: Any, live: dict[str, str], http: requests.Session, draw: Any) -> Any:
    label = case.operation.label
    if label == "POST /webhooks/inbound":
        # Signed as a CRM would sign it, so the payload reaches the mappings.
        body = json.dumps(case.body).encode()
        msg_id = f"msg_{uuid.uuid4().hex}"
        signed = webhooks.signed_headers(SECRET, msg_id, int(time.time()), body)
        return http.post(f"{live['base']}/webhooks/inbound", data=body, headers=signed, timeout=10)
    if label == "POST /integrations/hubspot/webhook" and draw(st.booleans(), label="signed"):
        body = json.dumps(case.body).encode()  # signed as HubSpot signs (v3)
        ts = str(int(time.time() * 1000))
        uri = f"{live['base']}/integrations/hubspot/webhook"
        digest = hmac.new(
            HUBSPOT_SECRET.encode(), b"POST" + uri.encode() + body + ts.encode(), hashlib.sha256
        ).digest()
        hub = {
            "x-hubspot-signature-v3": base64.b64encode(digest).decode(),
            "x-hubspot-request-timestamp": ts,
            "content-type": "application/json",
        }
        return http.post(uri, data=body, headers=hub, timeout=10)
    if label == "POST /integrations/stripe/webhook" and draw(st.booleans(), label="signed"):
        body = json.dumps(case.body).encode()  # signed with Stripe's own library
        header = stripe.WebhookSignature.generate_signature_header(
            body.decode(), STRIPE_SECRET, timestamp=int(time.time())
        )
        return http.post(
            f"{live['base']}/integrations/stripe/webhook",
            data=body,
            headers={"stripe-signature": header, "content-type": "application/json"},
            timeout=10,
        )
    if label == "POST /integrations/salesforce/outbound" and draw(st.booleans(), label="token"):
        case.query = {**(case.query or {}), "token": SALESFORCE_TOKEN}
    headers: dict[str, str] = {}
    if label.startswith("POST /api/") and draw(st.booleans(), label="authenticated"):
        headers["authorization"] = f"Bearer {live['key']}"
    share = label == "POST /share/events" and isinstance(case.body, dict)
    if share and draw(st.booleans(), label="real token"):
        case.body["token"] = live["token"]
    return case.call(base_url=live["base"], session=http, headers=headers, timeout=10)


def test_generated_rest_requests_conform_to_the_document(live):
    http = requests.Session()
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        operation = data.draw(st.sampled_from(OPERATIONS), label="operation")
        case = data.draw(operation.as_strategy(), label="case")
        response = _send(case, live, http, data.draw)
        STATUSES[(operation.label, response.status_code)] += 1
        assert response.status_code < 500, (operation.label, case.body, response.text[:500])
        case.validate_response(response, checks=CHECKS)

    run()
    print(  # noqa: T201 - the measured figures
        f"\nschemathesis (OpenAPI): {sum(STATUSES.values())} requests in "
        f"{time.monotonic() - started:.1f} s; statuses {dict(sorted(STATUSES.items()))}"
    )
    assert sum(STATUSES.values()) >= EXAMPLES
    # the generated data gets past authentication and validation, not only refused
    assert STATUSES[("POST /share/events", 201)] > 0
    assert STATUSES[("POST /webhooks/inbound", 422)] > 0
    # the native receivers were reached past their signature or token checks, not only refused
    assert STATUSES[("POST /integrations/hubspot/webhook", 200)] > 0
    assert STATUSES[("POST /integrations/stripe/webhook", 200)] > 0
    assert STATUSES[("POST /integrations/salesforce/outbound", 422)] > 0
