"""The advocate's share page, its live counts and the share-flow events."""

from __future__ import annotations

import html as htmllib
import re
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest
from sqlalchemy import select

from tests.factories import make_advocate, make_reward_rule
from tests.web.conftest import count
from vouch.models import Click, Referral, Reward, ShareEvent


@pytest.fixture
def token(app, setup):
    return app.state.widget_tokens.mint(setup.advocate.id)


async def add_results(session, setup):
    at = datetime(2026, 11, 1, tzinfo=UTC)
    for is_bot in (False, False, True):
        session.add(
            Click(
                link_id=setup.link.id,
                program_id=setup.program.id,
                occurred_at=at,
                is_bot=is_bot,
                utm={},
            )
        )
    referral = Referral(
        program_id=setup.program.id,
        advocate_id=setup.advocate.id,
        link_id=setup.link.id,
        person_key="f@example.org",
    )
    session.add(referral)
    await session.flush()
    rule = await make_reward_rule(session, program=setup.program)
    for state, trigger_ref in (("approved", "a"), ("fulfilled", "b"), ("voided", "c")):
        session.add(
            Reward(
                program_id=setup.program.id,
                rule_id=rule.id,
                referral_id=referral.id,
                advocate_id=setup.advocate.id,
                side="referrer",
                trigger_ref=trigger_ref,
                kind="credit",
                amount_minor=5000,
                currency="USD",
                state=state,
            )
        )
    await session.commit()


async def test_share_page_has_link_copy_messages_qr_and_counts(client, setup, token, session):
    await add_results(session, setup)
    response = await client.get("/share", params={"token": token})
    assert response.status_code == 200
    page = response.text
    link = f"http://testserver/r/{setup.code}"
    assert f'<input id="share-link" type="url" readonly value="{link}">' in page
    assert 'data-copy-target="share-link"' in page
    assert "Hi Grace! Share your personal link." in page
    assert "Hopper" not in page
    for channel in ("email", "linkedin", "x", "whatsapp", "sms"):
        assert f'id="msg-{channel}"' in page
        assert f"{link}?ch={channel}" in page
        match = re.search(rf'id="send-{channel}"[^>]*href="([^"]+)"', page)
        assert match
        href = htmllib.unescape(match.group(1))
        assert f"ch%3D{channel}" in href or f"ch={channel}" in unquote(href)
    assert 'href="mailto:?subject=A%20gift%20for%20you%20from%20Grace&amp;body=' in page
    assert "https://wa.me/?text=" in page
    assert "https://twitter.com/intent/tweet?text=" in page
    assert '<figure class="qr" role="img" aria-label="Scan to open your link"><svg' in page
    assert '<dd id="stat-clicks">2</dd>' in page
    assert '<dd id="stat-friends">1</dd>' in page
    assert '<dd id="stat-rewards">2</dd>' in page
    assert '<p class="muted" id="stat-amount">USD 100.00</p>' in page
    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None
    assert response.headers["referrer-policy"] == "no-referrer"
    assert len(response.content) < 50 * 1024


async def test_share_stats_endpoint(client, setup, token, session):
    await add_results(session, setup)
    response = await client.get("/share/stats", params={"token": token})
    assert response.status_code == 200
    assert response.json() == {
        "clicks": 2,
        "friendsJoined": 1,
        "rewardsEarned": 2,
        "rewardsAmount": "USD 100.00",
    }
    assert (await client.get("/share/stats", params={"token": "bad"})).status_code == 403


async def test_share_page_refuses_bad_tokens(client, setup, app):
    for params in ({}, {"token": "nonsense"}, {"token": app.state.widget_tokens.mint(999_999)}):
        response = await client.get("/share", params=params)
        assert response.status_code == 403
        assert "This share link has expired or is not valid." in response.text


async def test_share_page_without_a_link_says_so(client, session, app):
    lonely = await make_advocate(session)
    await session.commit()
    response = await client.get("/share", params={"token": app.state.widget_tokens.mint(lonely.id)})
    assert response.status_code == 200
    assert "You don&#39;t have an active referral link yet." in response.text


@pytest.mark.parametrize(
    ("kind", "channel"),
    [
        ("page_opened", None),
        ("link_copied", None),
        ("channel_chosen", "whatsapp"),
        ("message_edited", "email"),
    ],
)
async def test_share_events_are_recorded(client, setup, token, session, kind, channel):
    response = await client.post(
        "/share/events", json={"token": token, "kind": kind, "channel": channel}
    )
    assert response.status_code == 201
    event = await session.scalar(select(ShareEvent))
    assert (event.advocate_id, event.program_id, event.link_id, event.kind, event.channel) == (
        setup.advocate.id,
        setup.program.id,
        setup.link.id,
        kind,
        channel,
    )


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"kind": "hacked"}, 422, "kind"),
        ({"kind": "channel_chosen", "channel": "myspace"}, 422, "channel"),
        ({"kind": "channel_chosen"}, 422, "channel"),
        ({"kind": "page_opened", "channel": "x"}, 422, "channel"),
        ({"kind": "page_opened", "token": "forged"}, 403, "token"),
    ],
)
async def test_bad_share_events_write_nothing(client, setup, token, session, body, status, field):
    payload = {"token": token, **body}
    response = await client.post("/share/events", json=payload)
    assert response.status_code == status
    assert response.json()["field"] == field
    assert await count(session, ShareEvent) == 0


async def test_malformed_share_event_bodies(client, token, session):
    assert (await client.post("/share/events", content=b"kind=x")).status_code == 415
    bad_json = await client.post(
        "/share/events", content=b"{", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400
    big = await client.post(
        "/share/events",
        content=b"[" + b" " * 5000 + b"]",
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413
    listed = await client.post("/share/events", json=[token])
    assert listed.status_code == 400
    assert await count(session, ShareEvent) == 0
