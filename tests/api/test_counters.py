"""Issue 13, item 10: every counter uses the report's definition of "referral" and "customer".

A *referral* is a referred person not rejected by moderation (held ones count, erased ones
count); a *customer* is a referral that ever reached won (refunded and churned ones stay
customers: the cost report counts them). See docs/REPORTS.md.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tests.api.graphql import gql
from tests.attribution.factories import make_referral
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.api.ids import encode_id
from vouch.attribution import moderation

TRANSITION = """mutation($id: ID!, $s: String!) {
  transitionReferral(referralId: $id, status: $s) { status errors { code } } }"""
MODERATE = """mutation($id: ID!) {
  moderateReferral(referralId: $id, approve: false, reason: "farm") { status errors { code } } }"""


async def build(session, codec, client):
    program = await make_program(session, currency="USD")
    advocate = await make_advocate(session)
    link = await make_link(session, codec, advocate=advocate, program=program, channel="email")
    when = datetime(2026, 3, 2, 12, tzinfo=UTC)
    lead = await make_referral(
        session, program=program, advocate=advocate, link=link, created_at=when
    )
    refunded = await make_referral(
        session, program=program, advocate=advocate, link=link, created_at=when
    )
    rejected = await make_referral(
        session, program=program, advocate=advocate, link=link, created_at=when
    )
    await moderation.flag_referral(session, rejected, ["velocity_ip"], now=when)
    writer = await make_api_key(session, scopes=["write"])
    admin = await make_api_key(session, scopes=["admin"])
    rid = encode_id("Referral", refunded.id)
    for status in ("qualified", "opportunity", "won", "refunded"):
        out = (await gql(client, TRANSITION, {"id": rid, "s": status}, token=writer))["data"]
        assert out["transitionReferral"] == {"status": status, "errors": []}
    out = await gql(client, MODERATE, {"id": encode_id("Referral", rejected.id)}, token=admin)
    assert out["data"]["moderateReferral"] == {"status": "rejected", "errors": []}
    return program, advocate, link, lead, admin


async def test_counters_agree_with_the_cost_report(client, session, codec, app):
    program, advocate, _link, _lead, admin = await build(session, codec, client)
    q = """query($id: ID!, $p: ID!) {
      advocate(id: $id) { referralCount links { referralCount conversionCount } }
      reports(programId: $p) { funnel { step count } cost { customers } } }"""
    data = (
        await gql(
            client,
            q,
            {"id": encode_id("Advocate", advocate.id), "p": encode_id("Program", program.id)},
            token=admin,
        )
    )["data"]
    assert data["advocate"] == {
        "referralCount": 2,
        "links": [{"referralCount": 2, "conversionCount": 1}],
    }
    funnel = {s["step"]: s["count"] for s in data["reports"]["funnel"]}
    assert (funnel["leads"], funnel["won"]) == (2, 1)
    assert data["reports"]["cost"] == [{"customers": 1}]
    token = app.state.widget_tokens.mint(advocate.id)
    me = (
        await gql(
            client, "{ me { referralCount links { referralCount conversionCount } } }", token=token
        )
    )["data"]["me"]
    assert me == {"referralCount": 2, "links": [{"referralCount": 2, "conversionCount": 1}]}
    stats = await client.get("/share/stats", params={"token": token})
    assert stats.json()["friendsJoined"] == 2
