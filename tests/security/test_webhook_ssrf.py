"""Issue 14 item 6: the SSRF guard was bypassed by other spellings of an address, only ran in
production, and lastError/lastStatusCode made the delivery log a port scanner. Hosts are now
resolved at delivery time, every address must be public, the request goes to the checked
address, and a failed delivery reports a neutral reason."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from tests.api.graphql import gql
from tests.factories import make_api_key
from vouch.attribution import webhooks
from vouch.attribution.egress import EgressPolicy
from vouch.core.clock import utcnow
from vouch.models import WebhookDelivery, WebhookEndpoint

CREATE = """mutation($i: WebhookEndpointInput!) { createWebhookEndpoint(input: $i) {
  endpoint { url } errors { field code message } } }"""
LOG = "{ webhookDeliveries { nodes { status attempts lastStatusCode lastError } } }"
ATTACKS = [
    "https://2130706433/",
    "https://0x7f000001/",
    "https://127.1/",
    "https://0/",
    "https://localhost./",
    "https://2852039166/latest/meta-data",
    "https://100.64.0.1/",
    "https://[::ffff:127.0.0.1]/",
    "https://[64:ff9b::a9fe:a9fe]/",
    "https://metadata.google.internal/",
]


@pytest.mark.parametrize("url", ATTACKS)
async def test_other_spellings_of_internal_addresses_are_refused_in_every_environment(
    client, session, settings, url
):
    assert not settings.is_production
    key = await make_api_key(session, scopes=["admin"])
    await session.commit()
    body = await gql(client, CREATE, {"i": {"url": url, "eventTypes": []}}, token=key)
    payload = body["data"]["createWebhookEndpoint"]
    assert payload["endpoint"] is None
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [("url", "INVALID")]
    assert "loopback, private or link-local" in payload["errors"][0]["message"]
    assert await session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


def _resolver(table: dict[str, list[str]]):
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such name")
        return table[host]

    return resolve


class Recorder:
    def __init__(self, status: int = 204) -> None:
        self.requests: list[httpx.Request] = []
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status)


async def _deliver(session, policy: EgressPolicy, recorder: Recorder) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as http:
        await webhooks.deliver_due(session, webhooks.httpx_sender(http, policy), now=utcnow())
    await session.commit()


async def _endpoint(session, url: str) -> None:
    await webhooks.create_endpoint(session, webhooks.EndpointInput(url=url, event_types=[]))
    await webhooks.enqueue(session, "referral.created", {"referral_id": 1})
    await session.commit()


@pytest.mark.parametrize(
    "addresses",
    [["127.0.0.1"], ["93.184.216.34", "10.0.0.7"], ["169.254.169.254"], ["::1"], []],
    ids=["loopback", "one-of-two-private", "metadata", "ipv6-loopback", "nxdomain"],
)
async def test_a_name_that_resolves_inward_is_never_contacted(client, session, addresses):
    await _endpoint(session, "https://rebind.example/hook")
    table = {"rebind.example": addresses} if addresses else {}
    recorder = Recorder()
    await _deliver(session, EgressPolicy(resolver=_resolver(table)), recorder)
    assert recorder.requests == []
    key = await make_api_key(session, scopes=["admin"])
    await session.commit()
    log = await gql(client, LOG, token=key)
    # the same neutral answer whatever stopped it: no status code, no error class, no address
    assert log["data"]["webhookDeliveries"]["nodes"] == [
        {"status": "pending", "attempts": 1, "lastStatusCode": None, "lastError": "delivery failed"}
    ]


async def test_delivery_connects_to_the_address_it_checked(session):
    await _endpoint(session, "https://hooks.example:8443/in?x=1")
    recorder = Recorder()
    policy = EgressPolicy(resolver=_resolver({"hooks.example": ["93.184.216.34"]}))
    await _deliver(session, policy, recorder)
    [request] = recorder.requests
    assert str(request.url) == "https://93.184.216.34:8443/in?x=1"
    assert request.headers["host"] == "hooks.example:8443"
    assert request.extensions["sni_hostname"] == "hooks.example"
    delivery = await session.scalar(select(WebhookDelivery))
    await session.refresh(delivery)
    assert (delivery.status, delivery.last_status_code, delivery.last_error) == (
        "delivered",
        204,
        None,
    )


async def test_a_transport_failure_is_reported_neutrally(session):
    await _endpoint(session, "https://hooks.example/in")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    policy = EgressPolicy(resolver=_resolver({"hooks.example": ["93.184.216.34"]}))
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        await webhooks.deliver_due(session, webhooks.httpx_sender(http, policy), now=utcnow())
    delivery = await session.scalar(select(WebhookDelivery))
    assert (delivery.last_status_code, delivery.last_error) == (None, "delivery failed")


async def test_named_private_receivers_can_be_allowed_for_development(client, session, settings):
    dev = settings.model_copy(update={"webhook_allow_private_hosts": ["receiver.local"]})
    await webhooks.create_endpoint(
        session,
        webhooks.EndpointInput(url="http://receiver.local:9000/h", event_types=[]),
        allowed_private_hosts=dev.webhook_allow_private_hosts,
    )
    await webhooks.enqueue(session, "referral.created", {"referral_id": 1})
    await session.commit()
    recorder = Recorder()
    table = {"receiver.local": ["127.0.0.1"], "other.local": ["127.0.0.1"]}
    await _deliver(
        session, EgressPolicy.allowing(dev.webhook_allow_private_hosts, _resolver(table)), recorder
    )
    [request] = recorder.requests
    assert str(request.url) == "http://127.0.0.1:9000/h"
    assert request.headers["host"] == "receiver.local:9000"
    # only by name: another private name is still refused
    with pytest.raises(Exception, match="loopback, private"):
        await webhooks.create_endpoint(
            session,
            webhooks.EndpointInput(url="http://other.local/h", event_types=[]),
            allowed_private_hosts=dev.webhook_allow_private_hosts,
        )
