"""Referral links: created once per advocate x program x channel, found by code, revoked."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.builders import make_click, make_referral
from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.api.ids import encode_id
from vouch.attribution.links import create_link
from vouch.core.codes import LinkCodec
from vouch.core.sessions import session_factory
from vouch.models import Advocate, Program, ReferralLink

CREATE = """
mutation($a: ID!, $p: ID!, $c: String!) {
  createReferralLink(advocateId: $a, programId: $p, channel: $c) {
    created
    link { id code channel status shareUrl clickCount referralCount conversionCount }
    errors { field code message }
  }
}"""


async def _links(session) -> int:
    return int(await session.scalar(select(func.count()).select_from(ReferralLink)))


async def test_create_link_once_per_channel(client, session, codec):
    advocate = await make_advocate(session)
    program = await make_program(session)
    key = await make_api_key(session, scopes=["write"])
    ids = {"a": encode_id("Advocate", advocate.id), "p": encode_id("Program", program.id)}
    first = (await gql(client, CREATE, {**ids, "c": "LinkedIn"}, token=key))["data"][
        "createReferralLink"
    ]
    assert first["errors"] == []
    assert first["created"] is True
    link = first["link"]
    stored = await session.scalar(select(ReferralLink))
    assert link == {
        "id": encode_id("ReferralLink", stored.id),
        "code": stored.code,
        "channel": "linkedin",
        "status": "ACTIVE",
        "shareUrl": f"http://testserver/r/{stored.code}",
        "clickCount": 0,
        "referralCount": 0,
        "conversionCount": 0,
    }
    decoded = codec.decode(stored.code)
    assert (decoded.link_id, decoded.nonce) == (stored.id, stored.nonce)
    again = (await gql(client, CREATE, {**ids, "c": "linkedin"}, token=key))["data"][
        "createReferralLink"
    ]
    assert (again["created"], again["link"]) == (False, link)
    other = (await gql(client, CREATE, {**ids, "c": "email"}, token=key))["data"][
        "createReferralLink"
    ]
    assert other["created"] is True
    assert other["link"]["code"] != link["code"]
    assert await _links(session) == 2


async def test_create_link_bad_input_writes_nothing(client, session):
    advocate = await make_advocate(session)
    program = await make_program(session)
    archived = await make_program(session, status="archived")
    erased = await make_advocate(session, email=None, erased_at=func.now())
    key = await make_api_key(session, scopes=["write"])
    a, p = encode_id("Advocate", advocate.id), encode_id("Program", program.id)
    cases = [
        ({"a": a, "p": p, "c": "no spaces"}, "channel", "INVALID"),
        ({"a": a, "p": p, "c": "x" * 33}, "channel", "INVALID"),
        ({"a": a, "p": encode_id("Program", 999999), "c": "direct"}, "programId", "NOT_FOUND"),
        ({"a": a, "p": a, "c": "direct"}, "programId", "INVALID"),
        ({"a": a, "p": "%%%", "c": "direct"}, "programId", "INVALID"),
        ({"a": a, "p": encode_id("Program", archived.id), "c": "direct"}, "programId", "CONFLICT"),
        ({"a": encode_id("Advocate", erased.id), "p": p, "c": "direct"}, "advocateId", "CONFLICT"),
        ({"a": encode_id("Advocate", 999999), "p": p, "c": "direct"}, "advocateId", "NOT_FOUND"),
    ]
    for variables, field, code in cases:
        payload = (await gql(client, CREATE, variables, token=key))["data"]["createReferralLink"]
        assert payload["link"] is None, variables
        assert [(e["field"], e["code"]) for e in payload["errors"]] == [(field, code)], variables
    assert await _links(session) == 0


async def test_revoke_then_create_again_is_a_conflict(client, session, codec):
    advocate = await make_advocate(session)
    program = await make_program(session)
    link = await make_link(session, codec, advocate=advocate, program=program)
    key = await make_api_key(session, scopes=["write"])
    revoke = "mutation($id: ID!){ revokeReferralLink(id: $id){ link { status revokedAt } errors { code } } }"
    payload = (await gql(client, revoke, {"id": encode_id("ReferralLink", link.id)}, token=key))[
        "data"
    ]["revokeReferralLink"]
    assert payload["link"]["status"] == "REVOKED"
    assert payload["link"]["revokedAt"] is not None
    again = (await gql(client, revoke, {"id": encode_id("ReferralLink", link.id)}, token=key))[
        "data"
    ]["revokeReferralLink"]
    assert again["link"]["revokedAt"] == payload["link"]["revokedAt"]
    created = (
        await gql(
            client,
            CREATE,
            {
                "a": encode_id("Advocate", advocate.id),
                "p": encode_id("Program", program.id),
                "c": "direct",
            },
            token=key,
        )
    )["data"]["createReferralLink"]
    assert created["link"] is None
    assert created["errors"][0]["code"] == "CONFLICT"


async def test_link_by_code_with_counts(client, session, codec):
    advocate = await make_advocate(session)
    program = await make_program(session)
    link = await make_link(session, codec, advocate=advocate, program=program)
    for bot in (False, False, True):
        await make_click(session, link=link, is_bot=bot)
    await make_referral(session, link=link, status="won")
    await make_referral(session, link=link, status="lead")
    key = await make_api_key(session, scopes=["read"])
    q = """query($code: String!){ referralLink(code: $code){
        code clickCount referralCount conversionCount clicks { total humans bots lastClickedAt }
        advocate { externalId } program { slug } referrals { totalCount nodes { status } } } }"""
    data = (await gql(client, q, {"code": link.code}, token=key))["data"]["referralLink"]
    assert data["clickCount"] == 2
    assert (data["referralCount"], data["conversionCount"]) == (2, 1)
    assert {k: v for k, v in data["clicks"].items() if k != "lastClickedAt"} == {
        "total": 3,
        "humans": 2,
        "bots": 1,
    }
    assert data["clicks"]["lastClickedAt"] is not None
    assert data["advocate"] == {"externalId": advocate.external_id}
    assert data["program"] == {"slug": program.slug}
    assert data["referrals"] == {"totalCount": 2, "nodes": [{"status": "LEAD"}, {"status": "WON"}]}
    for bad in ("nope", f"{link.code}x", "a" * 5000, ""):
        body = await gql(client, q, {"code": bad}, token=key, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_list_links_filtered(client, session, codec):
    a1, a2 = await make_advocate(session), await make_advocate(session)
    program = await make_program(session)
    await make_link(session, codec, advocate=a1, program=program, channel="email")
    await make_link(
        session, codec, advocate=a1, program=program, channel="linkedin", status="revoked"
    )
    await make_link(session, codec, advocate=a2, program=program, channel="email")
    key = await make_api_key(session, scopes=["read"])
    q = "query($f: ReferralLinkFilterInput){ referralLinks(filter: $f){ totalCount nodes { channel status advocate { externalId } } } }"
    by_advocate = (
        await gql(client, q, {"f": {"advocateId": encode_id("Advocate", a1.id)}}, token=key)
    )["data"]["referralLinks"]
    assert by_advocate["totalCount"] == 2
    active_email = (
        await gql(client, q, {"f": {"channel": "email", "status": "ACTIVE"}}, token=key)
    )["data"]["referralLinks"]
    assert [n["advocate"]["externalId"] for n in active_email["nodes"]] == [
        a1.external_id,
        a2.external_id,
    ]


async def test_concurrent_identical_creates_return_one_link(
    committing_engine: AsyncEngine, codec: LinkCodec
):
    factory = session_factory(committing_engine)
    async with factory() as s:
        advocate = Advocate(external_id="race-adv", email="r@example.com")
        program = Program(slug="race-prog", name="Race")
        s.add_all([advocate, program])
        await s.commit()

    async def one() -> tuple[int, str | None, bool]:
        async with factory() as s:
            result = await create_link(
                s, codec, advocate_id=advocate.id, program_id=program.id, channel="email"
            )
            await s.commit()
            return result.link.id, result.link.code, result.created

    results = await asyncio.gather(*(one() for _ in range(20)))
    assert len({(link_id, code) for link_id, code, _ in results}) == 1
    assert [created for *_, created in results].count(True) == 1
    link_id, code, _ = results[0]
    decoded = codec.decode(code or "")
    assert decoded is not None
    assert decoded.link_id == link_id
    async with factory() as s:
        assert await s.scalar(select(func.count()).select_from(ReferralLink)) == 1
