"""Issue 13, item 13: the smaller defects, each through the GraphQL API."""

from __future__ import annotations

from datetime import UTC, date, datetime

from tests.api.graphql import gql
from tests.attribution.factories import make_referral
from tests.factories import make_advocate, make_api_key, make_link, make_program, make_reward_rule
from vouch.api.ids import encode_id
from vouch.attribution import opportunities
from vouch.attribution.opportunities import OpportunityData
from vouch.core.clock import utcnow


def d(day: int) -> datetime:
    return datetime(2026, 3, day, 12, tzinfo=UTC)


async def test_cost_per_customer_rounds_half_up(client, session, codec):
    # 10 % of 100 010 and of 100 000: 20 001 of reward cost for 2 customers = 10 000.5.
    p = await make_program(session, currency="USD")
    a = await make_advocate(session)
    link = await make_link(session, codec, advocate=a, program=p)
    await make_reward_rule(
        session, program=p, calc="percent", amount_minor=None, currency=None, percent_bps=1000
    )
    for crm, amount in (("D1", 100_010), ("D2", 100_000)):
        ref = await make_referral(session, program=p, advocate=a, link=link, created_at=d(2))
        await opportunities.upsert_opportunity(
            session,
            OpportunityData(
                crm_id=crm,
                stage="won",
                status="won",
                amount_minor=amount,
                currency="USD",
                referral_id=ref.id,
                close_date=date(2026, 3, 3),
            ),
            source="crm",
            actor="crm",
            now=d(3),
        )
    key = await make_api_key(session, scopes=["read"])
    q = """query($p: ID) { reports(programId: $p, since: "2026-03-01", until: "2026-04-01") {
      cost { currency rewardCostMinor customers costPerCustomerMinor } } }"""
    data = await gql(client, q, {"p": encode_id("Program", p.id)}, token=key)
    assert data["data"]["reports"]["cost"] == [
        {
            "currency": "USD",
            "rewardCostMinor": 20_001,
            "customers": 2,
            "costPerCustomerMinor": 10_001,
        }
    ]


async def test_reattribution_is_a_decision_not_a_status_transition(client, session, codec):
    p = await make_program(session)
    a, b = await make_advocate(session), await make_advocate(session)
    la = await make_link(session, codec, advocate=a, program=p)
    lb = await make_link(session, codec, advocate=b, program=p)
    ref = await make_referral(session, program=p, advocate=a, link=la, created_at=d(2))
    admin = await make_api_key(session, scopes=["admin"])
    rid = encode_id("Referral", ref.id)
    m = """mutation($r: ID!, $l: ID!) { reattributeReferral(referralId: $r, linkId: $l,
      reason: "CRM correction") { errors { code } } }"""
    out = await gql(client, m, {"r": rid, "l": encode_id("ReferralLink", lb.id)}, token=admin)
    assert out["data"]["reattributeReferral"] == {"errors": []}
    q = """query($r: ID!) { attributionChain(referralId: $r) {
      transitions { fromStatus toStatus } decisions { reason isCurrent } } }"""
    chain = (await gql(client, q, {"r": rid}, token=admin))["data"]["attributionChain"]
    assert chain["transitions"] == [{"fromStatus": None, "toStatus": "lead"}]
    assert chain["decisions"] == [  # newest first
        {"reason": "CRM correction", "isCurrent": True},
        {"reason": "last click", "isCurrent": False},
    ]


async def test_me_links_leave_out_revoked_links(client, session, codec, app):
    p = await make_program(session)
    a = await make_advocate(session)
    live = await make_link(session, codec, advocate=a, program=p, channel="email")
    dead = await make_link(session, codec, advocate=a, program=p, channel="x")
    writer = await make_api_key(session, scopes=["write"])
    m = "mutation($id: ID!) { revokeReferralLink(id: $id) { errors { code } } }"
    out = await gql(client, m, {"id": encode_id("ReferralLink", dead.id)}, token=writer)
    assert out["data"]["revokeReferralLink"] == {"errors": []}
    token = app.state.widget_tokens.mint(a.id)
    for q in ("{ me { links { code } } }", "{ me { referralCount links { code } } }"):
        me = (await gql(client, q, token=token))["data"]["me"]
        assert me["links"] == [{"code": live.code}]


async def test_duplicate_slug_is_named_as_such(client, session):
    await make_program(session, slug="customers")
    admin = await make_api_key(session, scopes=["admin"])
    m = """mutation($i: CreateProgramInput!) { createProgram(input: $i) {
      program { id } errors { field code message } } }"""
    for given in ({"slug": "customers"}, {"slug": "Customers", "name": "Again"}):
        out = (await gql(client, m, {"i": given}, token=admin))["data"]["createProgram"]
        assert out == {
            "program": None,
            "errors": [
                {
                    "field": "slug",
                    "code": "CONFLICT",
                    "message": "a program with slug 'customers' already exists",
                }
            ],
        }


async def test_next_best_ask_names_the_guard_when_nothing_is_queued(client, session):
    p = await make_program(session)
    a = await make_advocate(session)
    writer = await make_api_key(session, scopes=["write"])
    rec = """mutation($i: SignalInput!) { recordSignal(input: $i) { errors { code } } }"""
    signal = {
        "advocateId": encode_id("Advocate", a.id),
        "kind": "ESCALATION_OPENED",
        "occurredAt": utcnow().isoformat(),
    }
    assert (await gql(client, rec, {"i": signal}, token=writer))["data"]["recordSignal"] == {
        "errors": []
    }
    q = """query($a: ID!, $p: ID) { nextBestAsk(advocateId: $a, programId: $p) {
      reason ask { id } guards { code } } }"""
    for program in (encode_id("Program", p.id), None):
        out = await gql(client, q, {"a": encode_id("Advocate", a.id), "p": program}, token=writer)
        assert out["data"]["nextBestAsk"] == {
            "reason": "nothing_queued",
            "ask": None,
            "guards": [{"code": "escalation_open"}],
        }
