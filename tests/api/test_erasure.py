"""GDPR erasure: personal data goes, aggregate rows and counts stay, dedup still holds."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.api.builders import make_click, make_redemption, make_referral
from tests.api.graphql import gql
from tests.conftest import TEST_SECRET
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.api.ids import encode_id
from vouch.core.emails import normalize_email
from vouch.core.security import erased_key
from vouch.models import Advocate, Click, Referral, ReferralLink

ERASE_ADVOCATE = "mutation($id: ID!){ eraseAdvocate(id: $id){ advocate { email firstName lastName externalId erased referralCount links { status } } errors { field code } } }"
ERASE_PERSON = "mutation($email: String, $rid: ID){ eraseReferredPerson(email: $email, referralId: $rid){ erasedReferrals clearedClicks errors { field code } } }"


async def test_erase_advocate_keeps_counts(client, session, codec):
    program = await make_program(session)
    advocate = await make_advocate(session, external_id="crm-42", email="ada@example.com")
    link = await make_link(session, codec, advocate=advocate, program=program)
    await make_referral(session, link=link, status="won")
    key = await make_api_key(session, scopes=["admin"])
    payload = (
        await gql(client, ERASE_ADVOCATE, {"id": encode_id("Advocate", advocate.id)}, token=key)
    )["data"]["eraseAdvocate"]
    assert payload == {
        "advocate": {
            "email": None,
            "firstName": None,
            "lastName": None,
            "externalId": erased_key(TEST_SECRET, "crm-42"),
            "erased": True,
            "referralCount": 1,
            "links": [{"status": "REVOKED"}],
        },
        "errors": [],
    }
    await session.refresh(advocate)
    assert (advocate.email, advocate.email_normalized, advocate.consent_referral) == (
        None,
        None,
        False,
    )
    assert await session.scalar(select(func.count()).select_from(Referral)) == 1
    assert await session.scalar(select(func.count()).select_from(ReferralLink)) == 1
    # Erasing twice is fine; upserting the same CRM id again is refused, not silently re-created.
    again = (
        await gql(client, ERASE_ADVOCATE, {"id": encode_id("Advocate", advocate.id)}, token=key)
    )["data"]["eraseAdvocate"]
    assert again["errors"] == []
    upsert = 'mutation{ upsertAdvocate(input: {externalId: "crm-42", email: "ada@example.com"}){ advocate { id } errors { field code } } }'
    refused = (await gql(client, upsert, token=key))["data"]["upsertAdvocate"]
    assert refused == {"advocate": None, "errors": [{"field": "externalId", "code": "CONFLICT"}]}
    assert await session.scalar(select(func.count()).select_from(Advocate)) == 1


async def test_erase_needs_admin(client, session):
    advocate = await make_advocate(session)
    key = await make_api_key(session, scopes=["write"])
    body = await gql(
        client,
        ERASE_ADVOCATE,
        {"id": encode_id("Advocate", advocate.id)},
        token=key,
        expect_errors=True,
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    await session.refresh(advocate)
    assert advocate.erased_at is None


async def test_erase_referred_person_by_email(client, session, codec):
    p1, p2 = await make_program(session), await make_program(session)
    advocate = await make_advocate(session)
    l1 = await make_link(session, codec, advocate=advocate, program=p1)
    l2 = await make_link(session, codec, advocate=advocate, program=p2)
    click = await make_click(session, link=l1, visitor_id="visitor-1")
    later_click = await make_click(session, link=l2, visitor_id="visitor-1")
    unrelated = await make_click(session, link=l1, visitor_id="visitor-2")
    key_email = "Friend.Person+promo@gmail.com"
    person_key = normalize_email(key_email)
    r1 = await make_referral(
        session,
        link=l1,
        person_key=person_key,
        email=key_email,
        click_id=click.id,
        visitor_id="visitor-1",
        ip_hash="b" * 32,
        status="won",
    )
    r2 = await make_referral(session, link=l2, person_key=person_key, email=key_email)
    other = await make_referral(session, link=l1)
    await make_redemption(session, referral=r1)
    key = await make_api_key(session, scopes=["admin"])
    payload = (await gql(client, ERASE_PERSON, {"email": "friendperson@gmail.com"}, token=key))[
        "data"
    ]["eraseReferredPerson"]
    assert payload == {"erasedReferrals": 2, "clearedClicks": 2, "errors": []}
    for referral in (r1, r2):
        await session.refresh(referral)
        assert (
            referral.email,
            referral.name,
            referral.company,
            referral.visitor_id,
            referral.ip_hash,
        ) == (None,) * 5
        assert referral.person_key == erased_key(TEST_SECRET, person_key)
        assert referral.erased_at is not None
    assert r1.status == "won"
    for c in (click, later_click):
        await session.refresh(c)
        assert (c.ip_hash, c.user_agent, c.visitor_id) == (None, None, None)
    await session.refresh(unrelated)
    await session.refresh(other)
    assert unrelated.visitor_id == "visitor-2"
    assert other.email is not None
    assert await session.scalar(select(func.count()).select_from(Click)) == 3
    assert await session.scalar(select(func.count()).select_from(Referral)) == 3


async def test_erase_referred_person_bad_input(client, session, codec):
    key = await make_api_key(session, scopes=["admin"])
    cases = [
        ({}, "email", "INVALID"),
        ({"email": "a@example.com", "rid": encode_id("Referral", 1)}, "email", "INVALID"),
        ({"email": "not an email"}, "email", "INVALID"),
        ({"email": "nobody@example.com"}, "email", "NOT_FOUND"),
        ({"rid": encode_id("Referral", 999999)}, "referralId", "NOT_FOUND"),
        ({"rid": encode_id("Advocate", 1)}, "referralId", "INVALID"),
    ]
    for variables, field, code in cases:
        payload = (await gql(client, ERASE_PERSON, variables, token=key))["data"][
            "eraseReferredPerson"
        ]
        assert payload["errors"] == [{"field": field, "code": code}], variables
        assert payload["erasedReferrals"] == 0
