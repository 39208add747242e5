"""Issue 14, item 1: the claim form must not hand an existing friend's redemption code to
anyone who knows (a variant of) their email. The code is shown again only to the browser that
claimed it (signed claim cookie); anyone else gets one neutral answer, and the friend is sent
the code through an ``offer.code_resend_requested`` event (at most one an hour)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from tests.factories import make_advocate, make_link
from tests.web.conftest import claim, count
from vouch.models import OfferRedemption, OutboxEvent, RateLimitHit, Referral

NEUTRAL = "If this address has already claimed this offer, the code has been sent to it."


def browser(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def resend_events(session) -> list[OutboxEvent]:
    rows = await session.scalars(
        select(OutboxEvent).where(OutboxEvent.event_type == "offer.code_resend_requested")
    )
    return list(rows.all())


async def test_another_browser_never_sees_a_claimed_code(app, session, codec, setup):
    other_advocate = await make_advocate(session, first_name="Alan", email="alan@example.org")
    other_link = await make_link(session, codec, advocate=other_advocate, program=setup.program)
    await session.commit()
    assert other_link.code is not None
    async with browser(app) as first, browser(app) as attacker:
        claimed = await claim(first, setup.code, email="Katherine.Johnson+promo@gmail.com")
        assert claimed.status_code == 303
        assert claimed.headers["location"].startswith("/claimed?t=")
        redemption = await session.scalar(select(OfferRedemption))
        assert redemption is not None
        code = redemption.code

        # A case, dot and +tag variant, on the same link and on another advocate's link.
        for link_code, email in (
            (setup.code, "katherinejohnson@GMAIL.com"),
            (other_link.code, "k.a.t.h.e.r.i.n.e.johnson+x@gmail.com"),
        ):
            answer = await claim(attacker, link_code, email=email)
            assert answer.status_code == 200
            assert "location" not in answer.headers
            assert NEUTRAL in answer.text
            assert code not in answer.text
            assert "vouch_claims" not in answer.headers.get("set-cookie", "")
        # Nothing new was claimed; the friend is sent the code once, to their own address.
        assert (await count(session, Referral), await count(session, OfferRedemption)) == (1, 1)
        events = await resend_events(session)
        assert len(events) == 1
        referral = await session.scalar(select(Referral))
        assert events[0].payload == {
            "referral_id": referral.id,
            "redemption_id": redemption.id,
            "program_id": setup.program.id,
            "email": "Katherine.Johnson+promo@gmail.com",
            "code": code,
            "offer": "20% off your first year",
            "expires_at": redemption.expires_at.isoformat(),
        }

        # The browser that claimed still gets its code back.
        again = await claim(first, setup.code, email="katherinejohnson@gmail.com")
        assert again.status_code == 303
        page = await first.get(again.headers["location"])
        assert code in page.text
        assert len(await resend_events(session)) == 1


async def test_a_stolen_claim_cookie_for_another_redemption_does_not_help(app, session, setup):
    async with browser(app) as first, browser(app) as second:
        assert (await claim(first, setup.code, email="one@example.org")).status_code == 303
        assert (await claim(second, setup.code, email="two@example.org")).status_code == 303
        # The second browser carries a valid claim cookie, but for its own redemption only.
        answer = await claim(second, setup.code, email="ONE@example.org")
        assert answer.status_code == 200
        assert NEUTRAL in answer.text
        first_code = await session.scalar(
            select(OfferRedemption.code).order_by(OfferRedemption.id).limit(1)
        )
        assert first_code not in answer.text
        # A forged cookie is ignored as well.
        second.cookies.set("vouch_claims", "forged.value")
        answer = await claim(second, setup.code, email="one@example.org")
        assert answer.status_code == 200
        assert first_code not in answer.text


@pytest.mark.parametrize("path", ["/claim"])
async def test_the_code_entry_form_answers_the_same_way(app, session, setup, path):
    from tests.web.conftest import csrf_from

    async with browser(app) as first, browser(app) as attacker:
        assert (await claim(first, setup.code, email="grace@example.org")).status_code == 303
        page = await attacker.get(path)
        answer = await attacker.post(
            path,
            data={
                "csrf": csrf_from(page.text),
                "code": setup.code,
                "email": "Grace@Example.org",
                "consent": "yes",
            },
        )
    assert answer.status_code == 200
    assert NEUTRAL in answer.text
    code = await session.scalar(select(OfferRedemption.code))
    assert code not in answer.text
    assert len(await resend_events(session)) == 1
    assert await count(session, RateLimitHit) >= 1
