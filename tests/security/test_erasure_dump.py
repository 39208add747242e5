"""Issue 14 item 11: erasure left personal data behind (offer_redemptions.redeemed_by and
order_ref, the offer.redeemed webhook payload, free text in signals.data). After erasing an
advocate and a referred friend, every table is dumped and none of their values is found."""

from __future__ import annotations

from sqlalchemy import func, select, text

from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.api.ids import encode_id
from vouch.attribution.claims import ClaimContext, claim_offer, validate_claim
from vouch.core.clock import utcnow
from vouch.models import (
    Base,
    OfferRedemption,
    OutboxEvent,
    RevenueEvent,
    Signal,
    WebhookDelivery,
    WebhookEndpoint,
)
from vouch.models.enums import ReferralSource

ADVOCATE_VALUES = [
    "crm-augusta-1815",
    "augusta.king@analytical.example",
    "Augusta",
    "Byron-King",
    "survey-augusta-77",
    "reviews.example/augusta",
]
FRIEND_VALUES = [
    "zed.quimby@mail.example",
    "Zed Quimby",
    "Quimby Widgets",
    "cust-zed-991",
    "ORDER-ZED-7781",
]

SIGNALS = """mutation($s: [SignalInput!]!) { recordSignals(signals: $s) { errors { field } } }"""
ACTION = """mutation($a: ID!, $at: DateTime!, $d: JSON) { recordAction(advocateId: $a,
  kind: "review", occurredAt: $at, url: "https://reviews.example/augusta-byron-king",
  externalId: "review-1", data: $d) { errors { field code } } }"""
REDEEM = """mutation($input: RedeemOfferInput!) { redeemOffer(input: $input) {
  redemption { redeemedBy } errors { code } } }"""
ERASE_ADVOCATE = "mutation($id: ID!) { eraseAdvocate(id: $id) { errors { code } } }"
ERASE_PERSON = """mutation($e: String) { eraseReferredPerson(email: $e) {
  erasedReferrals errors { code } } }"""


async def _dump(session) -> str:
    """Every row of every table, as PostgreSQL prints it."""
    parts: list[str] = []
    for table in Base.metadata.sorted_tables:
        rows = await session.scalars(text(f'SELECT CAST(t AS text) FROM "{table.name}" t'))
        parts.extend(f"{table.name}: {row}" for row in rows)
    return "\n".join(parts).lower()


async def test_nothing_of_an_erased_person_is_left_in_any_table(client, session, codec):
    program = await make_program(session)
    advocate = await make_advocate(
        session,
        external_id="crm-augusta-1815",
        email="augusta.king@analytical.example",
        first_name="Augusta",
        last_name="Byron-King",
        persona="champion",
    )
    link = await make_link(session, codec, advocate=advocate, program=program)
    session.add(WebhookEndpoint(url="https://hooks.example/vouch", secret="s" * 32))
    key = await make_api_key(session, scopes=["admin"])
    claimed = await claim_offer(
        session,
        claim=validate_claim(
            email="zed.quimby@mail.example",
            name="Zed Quimby",
            company="Quimby Widgets",
            consent=True,
        ),
        ctx=ClaimContext(program_id=program.id, link_id=link.id, source=ReferralSource.LANDING),
        now=utcnow(),
    )
    await session.commit()
    advocate_id = encode_id("Advocate", advocate.id)
    now = utcnow().isoformat()
    comment = "Augusta Byron-King (augusta.king@analytical.example): we love it"
    body = await gql(
        client,
        SIGNALS,
        {
            "s": [
                {
                    "advocateId": advocate_id,
                    "kind": "NPS",
                    "value": 10,
                    "occurredAt": now,
                    "source": "survey",
                    "externalId": "survey-augusta-77",
                    "data": {"comment": comment, "responseSeconds": 42},
                }
            ]
        },
        token=key,
    )
    assert body["data"]["recordSignals"]["errors"] == []
    body = await gql(
        client, ACTION, {"a": advocate_id, "at": now, "d": {"quote": comment}}, token=key
    )
    assert body["data"]["recordAction"]["errors"] == []
    redeem = {
        "code": claimed.redemption_code,
        "redeemedBy": "cust-zed-991",
        "orderRef": "ORDER-ZED-7781",
        "idempotencyKey": "redeem-zed",
    }
    body = await gql(client, REDEEM, {"input": redeem}, token=key)
    assert body["data"]["redeemOffer"] == {
        "redemption": {"redeemedBy": "cust-zed-991"},
        "errors": [],
    }
    session.add(
        RevenueEvent(
            external_id="ch_1",
            referral_id=claimed.referral_id,
            program_id=program.id,
            kind="one_time",
            amount_minor=9900,
            currency="USD",
            occurred_at=utcnow(),
            source="stripe",
            data={"customer_email": "zed.quimby@mail.example", "livemode": False},
        )
    )
    await session.commit()
    before = await _dump(session)
    for value in ADVOCATE_VALUES + FRIEND_VALUES:  # the test sees what it looks for
        assert value.lower() in before, value
    pending = await session.scalar(
        select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "pending")
    )
    assert pending >= 1

    erased = await gql(client, ERASE_ADVOCATE, {"id": advocate_id}, token=key)
    assert erased["data"]["eraseAdvocate"]["errors"] == []
    erased = await gql(client, ERASE_PERSON, {"e": "Zed.Quimby@mail.example"}, token=key)
    assert erased["data"]["eraseReferredPerson"] == {"erasedReferrals": 1, "errors": []}

    after = await _dump(session)
    left = [v for v in ADVOCATE_VALUES + FRIEND_VALUES if v.lower() in after]
    assert left == [], [line for line in after.splitlines() if any(v.lower() in line for v in left)]

    # what is counted stays: the signal's value and numbers, the redemption, the revenue
    signal = await session.scalar(select(Signal))
    await session.refresh(signal)
    assert (signal.value, signal.data) == (10, {"responseSeconds": 42})
    redemption = await session.scalar(select(OfferRedemption))
    await session.refresh(redemption)
    assert redemption.redeemed_at is not None
    assert redemption.redeemed_by.startswith("erased:")
    revenue = await session.scalar(select(RevenueEvent))
    await session.refresh(revenue)
    assert (revenue.amount_minor, revenue.data) == (9900, {"livemode": False})
    # the pending delivery will send the erased payload
    event = await session.scalar(
        select(OutboxEvent).where(OutboxEvent.event_type == "offer.redeemed")
    )
    await session.refresh(event)
    assert event.payload["order_ref"] == redemption.order_ref
    assert event.payload["order_ref"].startswith("erased:")
    # a retried redeemOffer still gets its first answer, without the person's data
    retry = await gql(client, REDEEM, {"input": redeem}, token=key)
    assert retry["data"]["redeemOffer"]["errors"] == []
    assert retry["data"]["redeemOffer"]["redemption"]["redeemedBy"].startswith("erased:")
