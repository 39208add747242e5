"""GraphQL redeemOffer and recordConversion."""

from __future__ import annotations

import pytest

from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.attribution.claims import ClaimContext, claim_offer, validate_claim
from vouch.core.clock import utcnow
from vouch.models import Conversion, OfferRedemption
from vouch.models.enums import ReferralSource

REDEEM = """
mutation($input: RedeemOfferInput!) {
  redeemOffer(input: $input) {
    redemption { code redeemedBy orderRef redeemedAt }
    errors { message field code }
  }
}"""

CONVERT = """
mutation($input: RecordConversionInput!) {
  recordConversion(input: $input) {
    conversion { kind externalRef amountMinor currency }
    errors { message field code }
  }
}"""


@pytest.fixture
async def code(session, codec):
    program = await make_program(session)
    link = await make_link(session, codec, advocate=await make_advocate(session), program=program)
    result = await claim_offer(
        session,
        claim=validate_claim(email="friend@example.org", name=None, company=None, consent=True),
        ctx=ClaimContext(program_id=program.id, link_id=link.id, source=ReferralSource.LANDING),
        now=utcnow(),
    )
    await session.commit()
    return result.redemption_code


async def test_redeem_offer_exactly_once(client, session, code):
    key = await make_api_key(session, scopes=["write"])
    variables = {
        "input": {"code": code, "redeemedBy": "acct-1", "orderRef": "o-1", "idempotencyKey": "k1"}
    }
    body = await gql(client, REDEEM, variables, token=key)
    payload = body["data"]["redeemOffer"]
    assert payload["errors"] == []
    assert (payload["redemption"]["code"], payload["redemption"]["redeemedBy"]) == (code, "acct-1")
    retry = await gql(client, REDEEM, variables, token=key)
    assert retry["data"]["redeemOffer"] == payload
    variables["input"]["idempotencyKey"] = "k2"
    refused = (await gql(client, REDEEM, variables, token=key))["data"]["redeemOffer"]
    assert refused["redemption"] is None
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("code", "ALREADY_REDEEMED")]


async def test_redeem_offer_errors_are_data_and_write_nothing(client, session, code):
    key = await make_api_key(session, scopes=["write"])
    for code_value, field, error_code in [
        ("NOPE-NOPE-NOPE-NOPE", "code", "NOT_FOUND"),
        ("", "code", "INVALID"),
    ]:
        body = await gql(
            client, REDEEM, {"input": {"code": code_value, "redeemedBy": "a"}}, token=key
        )
        payload = body["data"]["redeemOffer"]
        assert payload["redemption"] is None
        assert [(e["field"], e["code"]) for e in payload["errors"]] == [(field, error_code)]
    from sqlalchemy import select

    assert await session.scalar(select(OfferRedemption.redeemed_at)) is None


async def test_redeem_offer_needs_a_write_key(client, session, code):
    reader = await make_api_key(session, scopes=["read"], name="reader")
    body = await gql(
        client,
        REDEEM,
        {"input": {"code": code, "redeemedBy": "a"}},
        token=reader,
        expect_errors=True,
    )
    assert body["data"] is None
    assert body["errors"][0]["message"] == "this API key lacks the 'write' scope"
    body = await gql(
        client, REDEEM, {"input": {"code": code, "redeemedBy": "a"}}, expect_errors=True
    )
    assert "authentication required" in body["errors"][0]["message"]


async def test_record_conversion(client, session, code):
    key = await make_api_key(session, scopes=["write"])
    variables = {
        "input": {
            "redemptionCode": code,
            "kind": "PURCHASE",
            "externalRef": "order-1",
            "amountMinor": 2500,
            "currency": "EUR",
        }
    }
    first = (await gql(client, CONVERT, variables, token=key))["data"]["recordConversion"]
    assert first == {
        "conversion": {
            "kind": "PURCHASE",
            "externalRef": "order-1",
            "amountMinor": 2500,
            "currency": "EUR",
        },
        "errors": [],
    }
    again = (await gql(client, CONVERT, variables, token=key))["data"]["recordConversion"]
    assert again == first
    variables["input"]["amountMinor"] = -5
    bad = (await gql(client, CONVERT, variables, token=key))["data"]["recordConversion"]
    assert bad["conversion"] is None
    assert [(e["field"], e["code"]) for e in bad["errors"]] == [("amountMinor", "INVALID")]
    from sqlalchemy import func, select

    assert await session.scalar(select(func.count()).select_from(Conversion)) == 1
