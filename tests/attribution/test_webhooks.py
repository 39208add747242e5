"""Outbound webhooks: Standard Webhooks signatures, the outbox, retries and the dead letter."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random

import pytest
from sqlalchemy import func, select

from tests.attribution.factories import at
from vouch.attribution import webhooks
from vouch.attribution.webhooks import EndpointInput, SendResult
from vouch.core.errors import ValidationFailed
from vouch.core.ids import encode_id
from vouch.models import OutboxEvent, WebhookDelivery


def test_signature_follows_standard_webhooks():
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    body = b'{"type":"reward.approved"}'
    expected = base64.b64encode(
        hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    ).decode()
    assert webhooks.sign(secret, "msg_1", 1700000000, body) == f"v1,{expected}"
    assert webhooks.verify_signature(secret, "msg_1", 1700000000, body, f"v1,bogus v1,{expected}")
    assert not webhooks.verify_signature(secret, "msg_1", 1700000001, body, f"v1,{expected}")
    assert not webhooks.verify_signature(secret, "msg_1", 1700000000, body + b" ", f"v1,{expected}")


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    rng = random.Random(7)
    delays = [webhooks.backoff(n, rng).total_seconds() for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(6 * 3600, 30 * 2 ** (n - 1))
        assert 15 <= delay <= ceiling
    assert webhooks.backoff(1, random.Random(0)) != webhooks.backoff(1, random.Random(1))


async def test_enqueue_fans_out_to_subscribed_active_endpoints(session):
    everything = await webhooks.create_endpoint(
        session, EndpointInput(url="https://a.example/h", event_types=[])
    )
    rewards_only = await webhooks.create_endpoint(
        session, EndpointInput(url="https://b.example/h", event_types=["reward.approved"])
    )
    await webhooks.create_endpoint(
        session, EndpointInput(url="https://c.example/h", event_types=[], active=False)
    )
    event = await webhooks.enqueue(session, "referral.created", {"referral_id": 1}, now=at(0))
    rows = list(
        await session.scalars(select(WebhookDelivery).where(WebhookDelivery.event_id == event))
    )
    assert [(d.endpoint_id, d.status, d.attempts) for d in rows] == [(everything.id, "pending", 0)]
    event2 = await webhooks.enqueue(session, "reward.approved", {"reward_id": 1}, now=at(0))
    rows = list(
        await session.scalars(
            select(WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.event_id == event2)
            .order_by(WebhookDelivery.endpoint_id)
        )
    )
    assert rows == [everything.id, rewards_only.id]
    assert everything.secret.startswith("whsec_")
    assert len(base64.b64decode(everything.secret[6:])) == 32


async def test_outbox_is_part_of_the_callers_transaction(sessionmaker):
    async with sessionmaker() as s:
        await webhooks.enqueue(s, "referral.created", {"referral_id": 1}, now=at(0))
        await s.rollback()
        assert await s.scalar(select(func.count()).select_from(OutboxEvent)) == 0


async def test_endpoint_validation(session):
    with pytest.raises(ValidationFailed) as exc:
        await webhooks.create_endpoint(session, EndpointInput(url="ftp://x", event_types=[]))
    assert exc.value.field == "url"
    with pytest.raises(ValidationFailed) as exc:
        await webhooks.create_endpoint(
            session, EndpointInput(url="https://x.example", event_types=["nope"])
        )
    assert exc.value.field == "eventTypes"
    with pytest.raises(ValidationFailed):
        await webhooks.create_endpoint(
            session, EndpointInput(url="http://x.example", event_types=[]), production=True
        )
    for internal in (
        "https://127.0.0.1/h",
        "https://10.0.0.8/h",
        "https://[::1]/h",
        "https://localhost/h",
        "https://169.254.169.254/latest",
    ):
        with pytest.raises(ValidationFailed, match="loopback, private"):
            await webhooks.create_endpoint(
                session, EndpointInput(url=internal, event_types=[]), production=True
            )
    assert (await webhooks.list_endpoints(session, first=10, after=None)).items == []


class FakeReceiver:
    def __init__(self, codes):
        self.codes = list(codes)
        self.calls = []

    async def __call__(self, url, headers, body):
        self.calls.append((url, headers, body))
        code = self.codes.pop(0)
        if code is None:
            return SendResult(status_code=None, error="ConnectError")
        return SendResult(status_code=code)


async def test_delivery_retries_with_backoff_then_succeeds(session):
    endpoint = await webhooks.create_endpoint(
        session, EndpointInput(url="https://a.example/h", event_types=[])
    )
    event = await webhooks.enqueue(session, "reward.approved", {"reward_id": 9}, now=at(0))
    receiver = FakeReceiver([500, None, 200])
    rng = random.Random(3)

    run = await webhooks.deliver_due(session, receiver, now=at(0), rng=rng)
    assert (run.delivered, run.retried, run.dead) == (0, 1, 0)
    (delivery,) = await session.scalars(select(WebhookDelivery))
    assert (delivery.attempts, delivery.last_status_code, delivery.status) == (1, 500, "pending")
    first_retry = delivery.next_attempt_at
    assert at(0, seconds=15) <= first_retry <= at(0, seconds=30)

    # Not due yet: nothing is sent.
    run = await webhooks.deliver_due(session, receiver, now=at(0, seconds=10), rng=rng)
    assert (run.delivered, run.retried) == (0, 0)
    assert len(receiver.calls) == 1

    await webhooks.deliver_due(session, receiver, now=first_retry, rng=rng)
    assert (delivery.attempts, delivery.last_error) == (2, "ConnectError")
    await webhooks.deliver_due(session, receiver, now=delivery.next_attempt_at, rng=rng)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)

    # Every attempt carries the same message id, a fresh timestamp, and a valid signature.
    ids = {headers["webhook-id"] for _, headers, _ in receiver.calls}
    assert ids == {f"msg_{event}"}
    for url, headers, body in receiver.calls:
        assert url == "https://a.example/h"
        assert webhooks.verify_signature(
            endpoint.secret,
            headers["webhook-id"],
            int(headers["webhook-timestamp"]),
            body,
            headers["webhook-signature"],
        )
        # the outbox keeps row ids; the body carries the opaque id GraphQL accepts
        assert json.loads(body)["data"] == {"reward_id": encode_id("Reward", 9)}
        assert json.loads(body)["type"] == "reward.approved"


async def test_delivery_is_dead_lettered_after_max_attempts(session):
    await webhooks.create_endpoint(
        session, EndpointInput(url="https://a.example/h", event_types=[])
    )
    await webhooks.enqueue(session, "reward.approved", {"reward_id": 9}, now=at(0))
    receiver = FakeReceiver([503] * webhooks.MAX_ATTEMPTS)
    now = at(0)
    for _ in range(webhooks.MAX_ATTEMPTS):
        await webhooks.deliver_due(session, receiver, now=now)
        (delivery,) = await session.scalars(select(WebhookDelivery))
        now = delivery.next_attempt_at
    assert (delivery.status, delivery.attempts) == ("dead", webhooks.MAX_ATTEMPTS)
    run = await webhooks.deliver_due(session, receiver, now=at(30))
    assert run == webhooks.WorkerRun(0, 0, 0)
    await webhooks.redeliver(session, delivery.id, now=at(30))
    assert (delivery.status, delivery.attempts) == ("pending", 0)


async def test_worker_pass_commits_its_results(sessionmaker, session):
    from vouch.cli.attribution import deliver_once

    await webhooks.create_endpoint(
        session, EndpointInput(url="https://a.example/h", event_types=[])
    )
    await webhooks.enqueue(session, "offer.redeemed", {"referral_id": 3})
    await session.commit()
    receiver = FakeReceiver([204])
    run = await deliver_once(sessionmaker, receiver)
    assert run == webhooks.WorkerRun(delivered=1, retried=0, dead=0)
    (delivery,) = await session.scalars(
        select(WebhookDelivery).execution_options(populate_existing=True)
    )
    assert (delivery.status, delivery.last_status_code) == ("delivered", 204)
    assert await deliver_once(sessionmaker, receiver) == webhooks.WorkerRun(0, 0, 0)


def test_payload_json_is_the_payload_and_falls_back_for_what_orjson_refuses():
    import json

    from vouch.attribution.webhooks import payload_json

    payload = {"referral_id": 7, "name": "Zoë", "amount_minor": 2**63 - 1, "nested": [1, None]}
    assert json.loads(payload_json(payload)) == payload
    huge = {"amount_minor": 2**70}  # beyond 64 bits: orjson refuses, json encodes
    assert json.loads(payload_json(huge)) == huge
