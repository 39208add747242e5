"""Issue 14 item 5: a widget token minted unlimited links, and with them got around revocation,
consent and program status, and joined programs the advocate had no link in."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.api.ids import encode_id
from vouch.attribution.links import create_link
from vouch.core.codes import LinkCodec
from vouch.core.sessions import session_factory
from vouch.models import Advocate, Program, ReferralLink
from vouch.models.enums import LinkStatus

CREATE = """mutation($a: ID!, $p: ID!, $c: String!) {
  createReferralLink(advocateId: $a, programId: $p, channel: $c) {
    created link { channel status } errors { code field message } } }"""


async def _enrolled(session, codec, *, program_status="active", consent=True):
    program = await make_program(session, status=program_status)
    advocate = await make_advocate(session, consent_referral=consent)
    link = await make_link(session, codec, advocate=advocate, program=program, channel="direct")
    await session.commit()
    return program, advocate, link


async def _create(client, app, advocate, program, channel):
    token = app.state.widget_tokens.mint(advocate.id)
    body = await gql(
        client,
        CREATE,
        {
            "a": encode_id("Advocate", advocate.id),
            "p": encode_id("Program", program.id),
            "c": channel,
        },
        token=token,
    )
    return body["data"]["createReferralLink"]


async def _links(session, advocate) -> list[tuple[str, str]]:
    rows = await session.execute(
        select(ReferralLink.channel, ReferralLink.status)
        .where(ReferralLink.advocate_id == advocate.id)
        .order_by(ReferralLink.id)
    )
    return [tuple(r) for r in rows.all()]


@pytest.mark.parametrize("status", ["paused", "draft"])
async def test_widget_cannot_create_links_in_an_inactive_program(
    client, session, codec, app, status
):
    program, advocate, _ = await _enrolled(session, codec, program_status=status)
    payload = await _create(client, app, advocate, program, "email")
    assert payload == {
        "created": False,
        "link": None,
        "errors": [
            {
                "code": "INACTIVE",
                "field": "programId",
                "message": f"this program is {status}; links can be created only in an active"
                " program",
            }
        ],
    }
    assert await _links(session, advocate) == [("direct", "active")]


async def test_widget_needs_referral_consent(client, session, codec, app):
    program, advocate, _ = await _enrolled(session, codec, consent=False)
    payload = await _create(client, app, advocate, program, "email")
    assert payload["errors"] == [
        {
            "code": "FORBIDDEN",
            "field": "advocateId",
            "message": "the advocate has not consented to referrals",
        }
    ]
    assert await _links(session, advocate) == [("direct", "active")]


async def test_widget_cannot_join_a_program_it_has_no_link_in(client, session, codec, app):
    _, advocate, _ = await _enrolled(session, codec)
    elsewhere = await make_program(session)
    await session.commit()
    payload = await _create(client, app, advocate, elsewhere, "direct")
    assert payload["errors"] == [
        {
            "code": "FORBIDDEN",
            "field": "programId",
            "message": "the advocate is not enrolled in this program",
        }
    ]
    assert await _links(session, advocate) == [("direct", "active")]
    # an operator enrols the advocate by giving them a link (write key: no such conditions)
    key = await make_api_key(session, scopes=["write"])
    await session.commit()
    body = await gql(
        client,
        CREATE,
        {
            "a": encode_id("Advocate", advocate.id),
            "p": encode_id("Program", elsewhere.id),
            "c": "email",
        },
        token=key,
    )
    assert body["data"]["createReferralLink"]["created"] is True
    assert (await _create(client, app, advocate, elsewhere, "sms"))["created"] is True


async def test_widget_stops_at_the_cap_per_program(client, session, codec, app):
    program, advocate, _ = await _enrolled(session, codec)
    for n in range(1, 10):  # "direct" is the first of ten
        assert (await _create(client, app, advocate, program, f"c{n}"))["created"] is True
    payload = await _create(client, app, advocate, program, "one-too-many")
    assert payload["errors"] == [
        {
            "code": "CAPPED",
            "field": "channel",
            "message": "the advocate already has 10 links in this program (at most 10)",
        }
    ]
    assert len(await _links(session, advocate)) == 10
    # an existing channel is still answered with its link
    again = await _create(client, app, advocate, program, "c3")
    assert again == {"created": False, "link": {"channel": "c3", "status": "ACTIVE"}, "errors": []}


async def test_a_revoked_link_stays_revoked(client, session, codec, app):
    program, advocate, link = await _enrolled(session, codec)
    await make_link(session, codec, advocate=advocate, program=program, channel="email")
    link.status = LinkStatus.REVOKED
    await session.commit()
    payload = await _create(client, app, advocate, program, "direct")
    assert payload["errors"][0]["code"] == "CONFLICT"
    assert payload["link"] is None
    # every link in the program revoked: no longer enrolled, so no fresh channel either
    await session.execute(
        update(ReferralLink)
        .where(ReferralLink.advocate_id == advocate.id)
        .values(status=LinkStatus.REVOKED)
    )
    await session.commit()
    payload = await _create(client, app, advocate, program, "fresh")
    assert payload["errors"][0]["code"] == "FORBIDDEN"
    assert await _links(session, advocate) == [("direct", "revoked"), ("email", "revoked")]


async def test_twenty_concurrent_widget_creates_stop_at_the_cap(
    committing_engine: AsyncEngine, codec: LinkCodec
):
    factory = session_factory(committing_engine)
    async with factory() as s:
        advocate = Advocate(external_id="cap-race", email="cap@example.com")
        program = Program(slug="cap-race", name="Cap race")
        s.add_all([advocate, program])
        await s.flush()
        s.add(
            ReferralLink(
                advocate_id=advocate.id,
                program_id=program.id,
                channel="direct",
                nonce=codec.new_nonce(),
                code="cap-race-code",
            )
        )
        await s.commit()

    async def one(n: int) -> bool:
        async with factory() as s:
            try:
                await create_link(
                    s,
                    codec,
                    advocate_id=advocate.id,
                    program_id=program.id,
                    channel=f"ch{n}",
                    self_service_cap=5,
                )
            except Exception:
                await s.rollback()
                return False
            await s.commit()
            return True

    results = await asyncio.gather(*(one(n) for n in range(20)))
    assert results.count(True) == 4
    async with factory() as s:
        count = await s.scalar(
            select(func.count())
            .select_from(ReferralLink)
            .where(ReferralLink.advocate_id == advocate.id)
        )
    assert count == 5
