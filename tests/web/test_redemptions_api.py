"""POST /api/redemptions and /api/conversions: server-to-server, API key + Idempotency-Key."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.factories import make_api_key
from tests.web.conftest import count
from vouch.attribution.claims import ClaimContext, claim_offer, validate_claim
from vouch.core.clock import utcnow
from vouch.models import Conversion, OfferRedemption
from vouch.models.enums import ReferralSource


@pytest.fixture
async def issued(session, setup):
    result = await claim_offer(
        session,
        claim=validate_claim(email="friend@example.org", name=None, company=None, consent=True),
        ctx=ClaimContext(
            program_id=setup.program.id, link_id=setup.link.id, source=ReferralSource.LANDING
        ),
        now=utcnow(),
    )
    await session.commit()
    return result


@pytest.fixture
async def write_key(session):
    key = await make_api_key(session, scopes=["write"])
    await session.commit()
    return key


def headers(key, idem="idem-1"):
    h = {"authorization": f"Bearer {key}"}
    if idem is not None:
        h["idempotency-key"] = idem
    return h


async def test_redeem_once_retry_and_refusal(client, issued, write_key, session):
    body = {"code": issued.redemption_code, "redeemedBy": "acct-7", "orderRef": "A-100"}
    first = await client.post("/api/redemptions", json=body, headers=headers(write_key))
    assert first.status_code == 200
    data = first.json()["redemption"]
    assert (data["code"], data["redeemedBy"], data["orderRef"]) == (
        issued.redemption_code,
        "acct-7",
        "A-100",
    )
    assert data["redeemedAt"] is not None
    retry = await client.post("/api/redemptions", json=body, headers=headers(write_key))
    assert retry.status_code == 200
    assert retry.json() == first.json()
    second = await client.post("/api/redemptions", json=body, headers=headers(write_key, "idem-2"))
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "ALREADY_REDEEMED"
    assert error["message"].startswith("this code was already redeemed at ")
    mismatch = await client.post(
        "/api/redemptions", json={**body, "redeemedBy": "other"}, headers=headers(write_key)
    )
    assert mismatch.status_code == 422
    assert mismatch.json()["error"]["code"] == "IDEMPOTENCY_MISMATCH"


@pytest.mark.parametrize(
    ("hdrs", "body", "status", "code"),
    [
        ({}, {"code": "X", "redeemedBy": "a"}, 401, "UNAUTHENTICATED"),
        (
            {"authorization": "Bearer vk_nope"},
            {"code": "X", "redeemedBy": "a"},
            401,
            "UNAUTHENTICATED",
        ),
        ("read", {"code": "X", "redeemedBy": "a"}, 403, "FORBIDDEN"),
        ("no-idem", {"code": "X", "redeemedBy": "a"}, 400, "INVALID"),
        ("write", {"code": "NOPE-NOPE-NOPE-NOPE", "redeemedBy": "a"}, 404, "NOT_FOUND"),
        ("write", {"code": 5, "redeemedBy": "a"}, 422, "INVALID"),
        ("write", {"redeemedBy": "a"}, 422, "INVALID"),
        ("write", {"code": "X", "redeemedBy": ""}, 422, "INVALID"),
        # PostgreSQL refuses NUL in text: refused at the edge, never a 500 (schemathesis found it)
        ("write", {"code": "AB\x00CD", "redeemedBy": "a"}, 400, "INVALID"),
        ("write", ["not", "an", "object"], 400, "INVALID"),
    ],
)
async def test_redeem_bad_requests_write_nothing(client, session, issued, hdrs, body, status, code):
    if hdrs == "read":
        hdrs = headers(await make_api_key(session, scopes=["read"], name="reader"))
    elif hdrs == "no-idem":
        hdrs = headers(await make_api_key(session, scopes=["write"], name="w"), idem=None)
    elif hdrs == "write":
        hdrs = headers(await make_api_key(session, scopes=["write"], name="w2"))
    await session.commit()
    response = await client.post("/api/redemptions", json=body, headers=hdrs)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert await session.scalar(select(OfferRedemption.redeemed_at)) is None


async def test_conversions_endpoint(client, issued, write_key, session):
    signup = {"redemptionCode": issued.redemption_code, "kind": "signup", "externalRef": "acct-7"}
    response = await client.post("/api/conversions", json=signup, headers=headers(write_key, "c1"))
    assert response.status_code == 200
    assert response.json()["conversion"]["kind"] == "signup"
    purchase = {
        "redemptionCode": issued.redemption_code,
        "kind": "purchase",
        "externalRef": "order-1",
        "amountMinor": 4900,
        "currency": "usd",
        "occurredAt": "2026-11-01T10:00:00+00:00",
    }
    response = await client.post(
        "/api/conversions", json=purchase, headers=headers(write_key, "c2")
    )
    assert response.status_code == 200
    assert response.json()["conversion"] == {
        "kind": "purchase",
        "externalRef": "order-1",
        "amountMinor": 4900,
        "currency": "USD",
        "occurredAt": "2026-11-01T10:00:00+00:00",
    }
    again = await client.post("/api/conversions", json=purchase, headers=headers(write_key, "c3"))
    assert again.status_code == 200
    assert await count(session, Conversion) == 2
    for bad, field in [
        ({**purchase, "amountMinor": "49"}, "amountMinor"),
        ({**purchase, "occurredAt": "yesterday"}, "occurredAt"),
        ({**purchase, "occurredAt": "2026-11-01T10:00:00"}, "occurredAt"),
        ({**purchase, "kind": "refund"}, "kind"),
    ]:
        response = await client.post(
            "/api/conversions", json=bad, headers=headers(write_key, f"bad-{field}")
        )
        assert response.status_code == 422
        assert response.json()["error"]["field"] == field
    conflict = await client.post(
        "/api/conversions", json={**purchase, "amountMinor": 1}, headers=headers(write_key, "c4")
    )
    assert conflict.status_code == 409
    assert await count(session, Conversion) == 2


async def test_a_retry_across_the_owner_upgrade_replays_the_first_answer(
    client, issued, write_key, session, monkeypatch
):
    """Keys stored before idempotency keys had owners were marked ``legacy:<operation>`` by
    the migration; a retry of such a request after the upgrade gets its first answer back
    instead of running again (here: redeeming again would be ALREADY_REDEEMED)."""
    from sqlalchemy import update

    from vouch.access import idempotency
    from vouch.models import IdempotencyKey

    body = {"code": issued.redemption_code, "redeemedBy": "acct-7", "orderRef": "A-100"}
    first = await client.post("/api/redemptions", json=body, headers=headers(write_key, "pre"))
    assert first.status_code == 200
    # What migration 0005_money_a_rewards did to every key stored before it:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.key == "pre")
        .values(owner="legacy:" + IdempotencyKey.scope, request_hash="fingerprint-v1")
    )
    await session.commit()
    monkeypatch.setattr(idempotency._LegacyKeys, "gone", False)
    monkeypatch.setattr(idempotency._LegacyKeys, "checked_at", float("-inf"))
    retry = await client.post("/api/redemptions", json=body, headers=headers(write_key, "pre"))
    assert retry.status_code == 200, retry.text
    assert retry.json() == first.json()
    again = await client.post("/api/redemptions", json=body, headers=headers(write_key, "pre"))
    assert again.json() == first.json()
    # A new key is a new request: the code is spent.
    other = await client.post("/api/redemptions", json=body, headers=headers(write_key, "new"))
    assert other.status_code == 409
