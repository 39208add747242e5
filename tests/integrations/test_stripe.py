"""POST /integrations/stripe/webhook: events signed with the official ``stripe`` library move a
demo referral end to end (conversion, recurring revenue, partial refunds, churn)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
import stripe
from sqlalchemy import func, select

from tests.attribution.test_webhook_payloads import assert_outbox_matches_schemas
from tests.factories import make_reward_rule
from tests.integrations.conftest import STRIPE_KEY, STRIPE_SECRET, make_friend
from tests.integrations.fake_http import FakeServer
from vouch.api.ids import encode_id
from vouch.jobs.integrations import stripe_promotion_creator, stripe_promotion_pass
from vouch.models import (
    Conversion,
    ExternalRef,
    IntegrationEvent,
    IntegrationJob,
    OfferRedemption,
    OutboxEvent,
    Referral,
    RevenueEvent,
    Reward,
)
from vouch.web.app import Overrides, create_app

_seq = iter(range(1, 10_000))


def stripe_event(
    event_type: str, obj: dict[str, Any], event_id: str | None = None
) -> dict[str, Any]:
    """An event as Stripe sends it (https://docs.stripe.com/api/events/object)."""
    return {
        "id": event_id or f"evt_{next(_seq):024d}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }


async def send(client, event, *, secret=STRIPE_SECRET, timestamp=None, header=None):
    payload = json.dumps(event)
    if header is None:
        header = stripe.WebhookSignature.generate_signature_header(
            payload, secret, timestamp=timestamp
        )
    return await client.post(
        "/integrations/stripe/webhook",
        content=payload.encode(),
        headers={"stripe-signature": header, "content-type": "application/json"},
    )


def checkout_session(**extra: Any) -> dict[str, Any]:
    session = {
        "id": "cs_test_a1",
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "payment_status": "paid",
        "amount_subtotal": 5900,
        "amount_total": 4900,
        "currency": "usd",
        "customer": "cus_N1",
        "customer_details": {"email": "someone.else@example.net", "name": "K. Johnson"},
        "subscription": "sub_N1",
        "payment_intent": None,
        "metadata": {},
        "discounts": [{"coupon": "co_friends", "promotion_code": "promo_1Friend"}],
        "created": int(time.time()) + 1,  # after the claim that made the referral
    }
    session.update(extra)
    return session


def invoice(**extra: Any) -> dict[str, Any]:
    obj = {
        "id": "in_1001",
        "object": "invoice",
        "billing_reason": "subscription_cycle",
        "customer": "cus_N1",
        "customer_email": "someone.else@example.net",
        "amount_due": 4900,
        "amount_paid": 4900,
        "currency": "usd",
        "status": "paid",
        "charge": "ch_1001",
        "payment_intent": "pi_1001",
        # a renewal: paid after the checkout that made the referral (revenue dated before its
        # referral is refused)
        "status_transitions": {"paid_at": int(time.time()) + 1},
        "parent": {"subscription_details": {"subscription": "sub_N1", "metadata": {}}},
        "created": int(time.time()),
    }
    obj.update(extra)
    return obj


def charge(amount_refunded: int, **extra: Any) -> dict[str, Any]:
    obj = {
        "id": "ch_1001",
        "object": "charge",
        "amount": 4900,
        "amount_captured": 4900,
        "amount_refunded": amount_refunded,
        "currency": "usd",
        "customer": "cus_N1",
        "invoice": "in_1001",
        "payment_intent": "pi_1001",
        "refunded": amount_refunded == 4900,
        "billing_details": {"email": "someone.else@example.net"},
    }
    obj.update(extra)
    return obj


def promotion_codes(stripe_api: FakeServer, code: str) -> None:
    """Stripe's API: GET /v1/promotion_codes/{id} (https://docs.stripe.com/api/promotion_codes)."""

    def answer(request):
        assert request.headers["authorization"] == f"Bearer {STRIPE_KEY}"
        return (
            200,
            {},
            {"id": "promo_1Friend", "object": "promotion_code", "code": code, "active": True},
        )

    stripe_api.route("GET", "/v1/promotion_codes/promo_1Friend", answer)


async def test_a_referred_subscription_from_checkout_to_churn(client, session, codec, stripe_api):
    friend = await make_friend(client, session, codec, "katherine@nasa.example")
    await make_reward_rule(session, program=friend.setup.program, amount_minor=2500)
    await session.commit()
    promotion_codes(stripe_api, friend.code.lower())

    # 1. checkout with the friend's redemption code as a promotion code: a purchase conversion
    done = await send(client, stripe_event("checkout.session.completed", checkout_session()))
    assert done.status_code == 200, done.text
    assert done.json() == {
        "status": "processed",
        "event_id": done.json()["event_id"],
        "type": "checkout.session.completed",
        "replayed": False,
        "referral_id": encode_id("Referral", friend.referral.id),
        "detail": None,
    }
    conversion = await session.scalar(select(Conversion))
    assert (
        conversion.referral_id,
        conversion.kind,
        conversion.amount_minor,
        conversion.currency,
    ) == (
        friend.referral.id,
        "purchase",
        4900,
        "USD",
    )
    assert conversion.external_ref == "cs_test_a1"
    await session.refresh(friend.referral)
    assert friend.referral.status == "won"
    reward = await session.scalar(select(Reward).where(Reward.referral_id == friend.referral.id))
    assert (reward.amount_minor, reward.state) == (2500, "pending")
    refs = {
        tuple(r)
        for r in (await session.execute(select(ExternalRef.kind, ExternalRef.external_id))).all()
    }
    assert refs == {
        ("customer", "cus_N1"),
        ("subscription", "sub_N1"),
        ("promotion_code", "promo_1Friend"),
    }

    # 2. the renewal invoice: recurring revenue, found through the customer matched at checkout
    paid = await send(client, stripe_event("invoice.paid", invoice()))
    assert paid.json()["status"] == "processed", paid.text
    rev = await session.scalar(select(RevenueEvent).where(RevenueEvent.external_id == "in_1001"))
    assert (rev.kind, rev.amount_minor, rev.currency, rev.referral_id, rev.source) == (
        "recurring",
        4900,
        "USD",
        friend.referral.id,
        "stripe",
    )

    # 3. a partial refund, then the rest: each records what it adds
    first = await send(client, stripe_event("charge.refunded", charge(1000)))
    assert first.json()["status"] == "processed", first.text
    refunds = list(
        await session.scalars(
            select(RevenueEvent).where(RevenueEvent.kind == "refund").order_by(RevenueEvent.id)
        )
    )
    assert [(r.external_id, r.amount_minor, r.data["refunds_external_id"]) for r in refunds] == [
        ("ch_1001:refunded:1000", 1000, "in_1001")
    ]
    await session.refresh(friend.referral)
    assert friend.referral.status == "won"  # 3,900 of 4,900 still paid

    # 4. the subscription ends: the won referral churns and its reward is clawed back
    gone = {
        "id": "sub_N1",
        "object": "subscription",
        "customer": "cus_N1",
        "status": "canceled",
        "metadata": {},
        "canceled_at": int(time.time()),
    }
    churn = await send(client, stripe_event("customer.subscription.deleted", gone))
    assert churn.json()["status"] == "processed", churn.text
    await session.refresh(friend.referral)
    assert friend.referral.status == "churned"
    await session.refresh(reward)
    assert reward.state == "voided"
    statuses = list(
        await session.scalars(select(IntegrationEvent.status).order_by(IntegrationEvent.id))
    )
    assert statuses == ["processed"] * 4
    events = list(await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))
    assert {"conversion.recorded", "revenue.recorded", "referral.status_changed"} <= (
        assert_outbox_matches_schemas(events)
    )


async def test_full_refund_moves_the_referral_to_refunded(client, session, codec, stripe_api):
    friend = await make_friend(client, session, codec, "dorothy@nasa.example")
    referral_id = encode_id("Referral", friend.referral.id)
    # matched by metadata.vouch_referral_id on the session (no promotion code)
    paid = checkout_session(
        id="cs_pay",
        mode="payment",
        subscription=None,
        customer="cus_P",
        payment_intent="pi_P",
        discounts=[],
        metadata={"vouch_referral_id": referral_id},
    )
    assert (await send(client, stripe_event("checkout.session.completed", paid))).json()[
        "referral_id"
    ] == referral_id
    one_time = await session.scalar(
        select(RevenueEvent).where(RevenueEvent.external_id == "cs_pay")
    )
    assert (one_time.kind, one_time.amount_minor) == ("one_time", 4900)
    partial = charge(1900, id="ch_P", invoice=None, payment_intent="pi_P", customer="cus_P")
    full = charge(4900, id="ch_P", invoice=None, payment_intent="pi_P", customer="cus_P")
    assert (await send(client, stripe_event("charge.refunded", partial))).json()["status"] == (
        "processed"
    )
    assert (await send(client, stripe_event("charge.refunded", full))).json()["status"] == (
        "processed"
    )
    refunds = list(
        await session.scalars(
            select(RevenueEvent).where(RevenueEvent.kind == "refund").order_by(RevenueEvent.id)
        )
    )
    assert [(r.amount_minor, r.data["refunds_external_id"]) for r in refunds] == [
        (1900, "cs_pay"),
        (3000, "cs_pay"),
    ]
    await session.refresh(friend.referral)
    assert friend.referral.status == "refunded"


async def test_matched_by_email_and_unmatched_payments_are_ignored(client, session, codec):
    friend = await make_friend(client, session, codec, "mary@nasa.example")
    by_email = checkout_session(
        id="cs_mail",
        discounts=[],
        customer="cus_M",
        subscription="sub_M",
        customer_details={"email": "Mary@NASA.example"},
    )
    matched = await send(client, stripe_event("checkout.session.completed", by_email))
    assert matched.json()["referral_id"] == encode_id("Referral", friend.referral.id)
    stranger = checkout_session(
        id="cs_other", discounts=[], customer="cus_X", customer_details={"email": "x@y.example"}
    )
    ignored = await send(client, stripe_event("checkout.session.completed", stranger))
    assert ignored.status_code == 200
    assert (ignored.json()["status"], ignored.json()["detail"]) == (
        "ignored",
        "no referral matched",
    )
    unused = await send(
        client, stripe_event("customer.created", {"id": "cus_Z", "object": "customer"})
    )
    assert (unused.json()["status"], unused.json()["detail"]) == (
        "ignored",
        "event type not used by Vouch",
    )
    assert await session.scalar(select(func.count()).select_from(Conversion)) == 1


async def test_redelivery_returns_the_first_answer_and_applies_nothing(
    client, session, codec, stripe_api
):
    friend = await make_friend(client, session, codec, "annie@nasa.example")
    promotion_codes(stripe_api, friend.code)
    event = stripe_event("checkout.session.completed", checkout_session(), event_id="evt_same")
    first = await send(client, event)
    again = await send(client, event)
    assert again.json() == first.json() | {"replayed": True}
    assert await session.scalar(select(func.count()).select_from(Conversion)) == 1
    # the promotion code was read from Stripe once, then remembered
    assert len(stripe_api.requests) == 1
    other = stripe_event("checkout.session.completed", checkout_session(id="cs_two"))
    assert (await send(client, other)).json()["status"] == "processed"
    assert len(stripe_api.requests) == 1


async def test_bad_signatures_stale_events_and_bad_content(client, session, codec):
    friend = await make_friend(client, session, codec, "christine@nasa.example")
    meta = {"vouch_referral_id": encode_id("Referral", friend.referral.id)}
    event = stripe_event("invoice.paid", invoice(metadata=meta, customer="cus_B"))
    forged = await send(client, event, secret="whsec_not_the_secret")
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "FORBIDDEN"
    stale = await send(client, event, timestamp=int(time.time()) - 301)
    assert stale.status_code == 401
    unsigned = await send(client, event, header="")
    assert unsigned.status_code == 401
    assert await session.scalar(select(func.count()).select_from(IntegrationEvent)) == 0
    assert await session.scalar(select(func.count()).select_from(RevenueEvent)) == 0

    broken = stripe_event("invoice.paid", invoice(metadata=meta, currency="dollars"))
    failed = await send(client, broken)
    assert failed.status_code == 200
    assert failed.json()["status"] == "failed"
    assert "currency" in failed.json()["detail"]
    row = await session.scalar(select(IntegrationEvent))
    assert (row.event_id, row.status) == (broken["id"], "failed")
    assert await session.scalar(select(func.count()).select_from(RevenueEvent)) == 0
    assert (await send(client, broken)).json()["status"] == "failed"
    await session.refresh(friend.referral)
    assert friend.referral.status == "lead"
    assert await session.scalar(select(func.count()).select_from(Referral)) == 1


async def test_not_configured_is_404(integration_settings, sessionmaker):
    bare = create_app(
        integration_settings.model_copy(update={"stripe_webhook_secret": None}),
        Overrides(sessionmaker=sessionmaker),
    )
    transport = httpx.ASGITransport(app=bare)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        response = await c.post("/integrations/stripe/webhook", content=b"{}")
    assert response.status_code == 404
    assert "VOUCH_STRIPE_WEBHOOK_SECRET" in response.json()["error"]["message"]


async def test_each_friend_gets_a_promotion_code_in_stripe(
    client, session, codec, stripe_api, sessionmaker, integration_settings
):
    friend = await make_friend(client, session, codec, "gladys@nasa.example")
    redemption = await session.scalar(
        select(OfferRedemption).where(OfferRedemption.referral_id == friend.referral.id)
    )
    refused = await make_friend(client, session, codec, "mae@nasa.example")
    created: list[dict[str, list[str]]] = []

    def create(request):
        """POST /v1/promotion_codes (https://docs.stripe.com/api/promotion_codes/create)."""
        form = parse_qs(request.body.decode())
        created.append(form | {"idempotency-key": [request.headers["idempotency-key"]]})
        if form["code"] == [refused.code]:
            message = f"An active promotion code with `code: {refused.code}` already exists."
            return 400, {}, {"error": {"type": "invalid_request_error", "message": message}}
        return 200, {}, {"id": "promo_vouch1", "object": "promotion_code", "code": form["code"][0]}

    stripe_api.route("POST", "/v1/promotion_codes", create)
    settings = integration_settings.model_copy(update={"stripe_promotion_coupon": "co_FRIENDS20"})
    maker = stripe_promotion_creator(settings)
    assert await stripe_promotion_pass(sessionmaker, maker) == 2
    assert created[0] == {
        "promotion[type]": ["coupon"],
        "promotion[coupon]": ["co_FRIENDS20"],
        "code": [friend.code],
        "max_redemptions": ["1"],
        "metadata[vouch_referral_id]": [encode_id("Referral", friend.referral.id)],
        "expires_at": [str(int(redemption.expires_at.timestamp()))],
        "idempotency-key": [f"vouch-promotion-code-{redemption.id}"],
    }
    jobs = list(await session.scalars(select(IntegrationJob).order_by(IntegrationJob.id)))
    assert [(j.kind, j.status, j.attempts) for j in jobs] == [
        ("promotion_code", "done", 1),
        ("promotion_code", "dead", 1),
    ]
    assert "already exists" in jobs[1].last_error
    assert await stripe_promotion_pass(sessionmaker, maker) == 0  # nothing left to create
    assert len(created) == 2
    # the friend pays with it: matched by the code Vouch created, without asking Stripe
    session_obj = checkout_session(discounts=[{"promotion_code": "promo_vouch1"}])
    paid = await send(client, stripe_event("checkout.session.completed", session_obj))
    assert paid.json()["referral_id"] == encode_id("Referral", friend.referral.id)
    assert [r.method for r in stripe_api.requests] == ["POST", "POST"]


async def test_erasing_the_friend_forgets_their_stripe_customer(client, session, codec):
    from tests.factories import make_api_key

    await make_friend(client, session, codec, "margaret@nasa.example")
    by_email = checkout_session(
        id="cs_erase",
        discounts=[],
        customer="cus_E",
        subscription="sub_E",
        customer_details={"email": "margaret@nasa.example"},
    )
    assert (await send(client, stripe_event("checkout.session.completed", by_email))).json()[
        "status"
    ] == "processed"
    assert await session.scalar(select(func.count()).select_from(ExternalRef)) == 2
    key = await make_api_key(session, scopes=["admin"])
    await session.commit()
    erase = "mutation($email: String){ eraseReferredPerson(email: $email){ erasedReferrals errors { code } } }"
    response = await client.post(
        "/graphql",
        json={"query": erase, "variables": {"email": "margaret@nasa.example"}},
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.json()["data"]["eraseReferredPerson"] == {"erasedReferrals": 1, "errors": []}
    assert await session.scalar(select(func.count()).select_from(ExternalRef)) == 0
    renewal = await send(
        client,
        stripe_event("invoice.paid", invoice(id="in_E", customer="cus_E", customer_email=None)),
    )
    assert (renewal.json()["status"], renewal.json()["detail"]) == (
        "ignored",
        "no referral matched",
    )
