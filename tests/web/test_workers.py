"""The in-process delivery loop sends what the outbox holds, signed, and marks it delivered."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from vouch.attribution import webhooks
from vouch.attribution.webhooks import EndpointInput, SendResult
from vouch.core.sessions import session_factory
from vouch.jobs.delivery import webhook_delivery_loop
from vouch.models import WebhookDelivery


async def test_delivery_loop_sends_signed_events_and_marks_them_delivered(committing_engine):
    factory = session_factory(committing_engine)
    async with factory() as s:
        endpoint = await webhooks.create_endpoint(
            s, EndpointInput(url="https://hooks.example.com/vouch", event_types=[])
        )
        await webhooks.enqueue(s, "referral.created", {"referral_id": 1})
        await s.commit()
    sent: list[tuple[str, dict[str, str], bytes]] = []

    async def send(url: str, headers: dict[str, str], body: bytes) -> SendResult:
        sent.append((url, headers, body))
        return SendResult(status_code=200)

    async def delivery_state() -> tuple[str, int, int | None]:
        async with factory() as s:
            d = (await s.scalars(select(WebhookDelivery))).one()
            return d.status, d.attempts, d.last_status_code

    task = asyncio.create_task(webhook_delivery_loop(factory, interval=0.05, send=send))
    # Wait for the loop's commit, not for the send: cancelling between the two (as this test
    # once did) rolls the pass back and leaves the delivery pending, to be sent again.
    for _ in range(100):
        if (await delivery_state())[0] != "pending":
            break
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert len(sent) == 1
    url, headers, body = sent[0]
    assert url == "https://hooks.example.com/vouch"
    assert webhooks.verify_signature(
        endpoint.secret,
        headers["webhook-id"],
        int(headers["webhook-timestamp"]),
        body,
        headers["webhook-signature"],
    )
    assert await delivery_state() == ("delivered", 1, 200)
