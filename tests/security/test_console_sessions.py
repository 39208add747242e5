"""Issue 14 item 13: console logout did not end the session — a copied cookie kept moderating
until the key was revoked, for up to 8 h. Sessions are now server-side: logout, idle time and
the absolute lifetime end them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from tests.attribution.factories import make_referral
from tests.factories import make_advocate, make_api_key, make_program
from tests.web.test_console import _csrf, _sign_in
from vouch.core.clock import utcnow
from vouch.models import ConsoleSession, Referral


async def _flagged(session):
    program = await make_program(session)
    advocate = await make_advocate(session)
    referral = await make_referral(session, program=program, advocate=advocate)
    referral.flags = ["velocity_ip"]
    referral.moderation = "pending"
    await session.commit()
    return referral


async def _moderation(session, referral_id):
    row = await session.scalar(select(Referral).where(Referral.id == referral_id))
    await session.refresh(row)
    return row.moderation, row.moderation_reason


async def test_a_copied_cookie_is_dead_after_logout(client, session):
    referral = await _flagged(session)
    key = await make_api_key(session, scopes=["admin"], name="ops")
    await session.commit()
    await _sign_in(client, key)
    queue = await client.get("/console/moderation")
    assert queue.status_code == 200
    stolen = client.cookies.get("vouch_console", path="/console")
    assert stolen
    csrf = _csrf(queue.text)
    out = await client.post("/console/logout", data={"csrf": csrf})
    assert (out.status_code, out.headers["location"]) == (303, "/console/login")
    assert await session.scalar(select(func.count()).select_from(ConsoleSession)) == 0

    # the attacker replays the copied cookie and the CSRF token from the page
    client.cookies.clear()
    client.cookies.set("vouch_console", stolen, path="/console")
    page = await client.get("/console/moderation")
    assert (page.status_code, page.headers["location"]) == (303, "/console/login")
    forged = await client.post(
        f"/console/moderation/{referral.id}",
        data={"csrf": csrf, "decision": "approve", "reason": "looks fine to me"},
    )
    assert (forged.status_code, forged.headers["location"]) == (303, "/console/login")
    assert await _moderation(session, referral.id) == ("pending", None)


async def test_a_session_ends_after_the_idle_timeout(client, session, settings):
    key = await make_api_key(session, scopes=["read"])
    await session.commit()
    await _sign_in(client, key)
    assert (await client.get("/console/moderation")).status_code == 200
    idle = settings.console_idle_timeout_seconds
    assert idle == 1800
    # idle for just under the timeout: still signed in, and the request restarts the clock
    await session.execute(
        update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(seconds=idle - 5))
    )
    await session.commit()
    assert (await client.get("/console/moderation")).status_code == 200
    seen = await session.scalar(select(ConsoleSession.last_seen_at))
    assert utcnow() - seen < timedelta(seconds=5)
    # idle for the whole timeout: signed out
    await session.execute(
        update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(seconds=idle))
    )
    await session.commit()
    page = await client.get("/console/moderation")
    assert (page.status_code, page.headers["location"]) == (303, "/console/login")


async def test_a_session_ends_at_its_absolute_lifetime(client, session):
    key = await make_api_key(session, scopes=["read"])
    await session.commit()
    await _sign_in(client, key)
    created = await session.scalar(select(ConsoleSession))
    assert created.expires_at - created.last_seen_at == timedelta(hours=8)
    await session.execute(update(ConsoleSession).values(expires_at=utcnow()))
    await session.commit()
    page = await client.get("/console")
    assert (page.status_code, page.headers["location"]) == (303, "/console/login")


async def test_the_cookie_is_an_opaque_token_stored_only_as_a_hash(client, session):
    key = await make_api_key(session, scopes=["read"])
    await session.commit()
    await _sign_in(client, key)
    token = client.cookies.get("vouch_console", path="/console")
    row = await session.scalar(select(ConsoleSession))
    assert token not in (row.token_hash, row.csrf)
    import hashlib

    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
