"""Issue 13, items 5 and 6: the touch that won attribution gives the referral its channel and
is named by the decision; a claim made at once after the page load is flagged too_fast."""

from __future__ import annotations

from sqlalchemy import select

from tests.api.graphql import gql
from tests.factories import make_api_key, make_link
from tests.web.conftest import HUMAN_UA, csrf_from, make_setup, open_offer
from vouch.api.ids import encode_id
from vouch.models import Click, Referral

CHAIN = """query($id: ID!) { referral(id: $id) { channel flags }
  attributionChain(referralId: $id) { clicks { channel namedByDecision } } }"""
PIPELINE = """query($p: ID!) { reports(programId: $p) {
  pipeline(groupBy: "channel") { key leads } } }"""


async def claim_from(client, code: str, html: str, email: str):
    data = {
        "csrf": csrf_from(html),
        "email": email,
        "name": "Katherine Johnson",
        "company": "NASA",
        "consent": "yes",
    }
    return await client.post(f"/r/{code}/claim", data=data, headers={"user-agent": HUMAN_UA})


async def test_share_channel_is_the_referrals_channel_and_a_0s_claim_is_too_fast(
    client, session, codec
):
    setup = await make_setup(session, codec)  # a "direct" link, shared by email from /share
    page = await open_offer(client, setup.code, ch="whatsapp")
    # Posted at once: the click is still in the worker's buffer.
    response = await claim_from(client, setup.code, page.text, "friend@example.org")
    assert response.status_code == 303
    referral = await session.scalar(select(Referral))
    admin = await make_api_key(session, scopes=["admin"])
    rid = encode_id("Referral", referral.id)
    data = (await gql(client, CHAIN, {"id": rid}, token=admin))["data"]
    assert data["referral"] == {"channel": "whatsapp", "flags": ["too_fast"]}
    assert data["attributionChain"]["clicks"] == [{"channel": "whatsapp", "namedByDecision": True}]
    click = await session.scalar(select(Click))
    assert referral.click_id == click.id
    pipeline = (
        await gql(client, PIPELINE, {"p": encode_id("Program", setup.program.id)}, token=admin)
    )["data"]["reports"]["pipeline"]
    assert pipeline == [{"key": "whatsapp", "leads": 1}]


async def test_a_claim_after_the_minimum_delay_is_not_too_fast(client, session, codec):
    # The program allows instant claims: the same flow is not flagged, the channel still kept.
    setup = await make_setup(session, codec, settings={"fraud": {"min_click_to_signup_seconds": 0}})
    page = await open_offer(client, setup.code, ch="sms")
    response = await claim_from(client, setup.code, page.text, "friend2@example.org")
    assert response.status_code == 303
    referral = await session.scalar(select(Referral))
    assert (referral.flags, referral.channel, referral.moderation) == ([], "sms", "clear")


async def test_reattribution_moves_the_channel_with_the_credit(client, session, codec):
    setup = await make_setup(session, codec)
    page = await open_offer(client, setup.code, ch="x")
    assert (await claim_from(client, setup.code, page.text, "f3@example.org")).status_code == 303
    referral = await session.scalar(select(Referral))
    other = await make_link(
        session, codec, advocate=setup.advocate, program=setup.program, channel="linkedin"
    )
    admin = await make_api_key(session, scopes=["admin"])
    m = """mutation($r: ID!, $l: ID!) { reattributeReferral(referralId: $r, linkId: $l,
      reason: "CRM says LinkedIn") { errors { code } } }"""
    out = await gql(
        client,
        m,
        {"r": encode_id("Referral", referral.id), "l": encode_id("ReferralLink", other.id)},
        token=admin,
    )
    assert out["data"]["reattributeReferral"] == {"errors": []}
    pipeline = (
        await gql(client, PIPELINE, {"p": encode_id("Program", setup.program.id)}, token=admin)
    )["data"]["reports"]["pipeline"]
    assert pipeline == [{"key": "linkedin", "leads": 1}]
