"""Issue 14, item 7: the claim rate limit cannot be dodged with ``X-Forwarded-For`` (believed
only from ``VOUCH_TRUSTED_PROXIES``, empty by default), IPv6 clients are counted per /64, and
the 429 says when to come back (``Retry-After``)."""

from __future__ import annotations

from datetime import timedelta

import httpx

from tests.web.conftest import claim, count, make_setup
from vouch.core.clock import utcnow
from vouch.models import Referral
from vouch.web.app import Overrides, create_app


def seconds_to_next_hour() -> int:
    now = utcnow()
    turn = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return int((turn - now).total_seconds())


def limited_app(settings, sessionmaker, limit: int, **extra):
    return create_app(
        settings.model_copy(update={"claim_rate_limit_per_hour": limit, **extra}),
        Overrides(sessionmaker=sessionmaker),
    )


async def post_claim(app, code, email, *, client=("127.0.0.1", 40000), forwarded=None):
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        if forwarded is not None:
            c.headers["x-forwarded-for"] = forwarded
        return await claim(c, code, email=email)


async def test_spoofed_forwarded_for_does_not_reset_the_limit(
    settings, sessionmaker, session, codec
):
    world = await make_setup(session, codec)
    app = limited_app(settings, sessionmaker, 2)
    statuses = []
    for i in range(6):
        before = seconds_to_next_hour()
        response = await post_claim(
            app, world.code, f"friend{i}@example.org", forwarded=f"198.51.100.{i + 1}"
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert seconds_to_next_hour() - 1 <= int(response.headers["retry-after"]) <= before
    assert statuses == [303, 303, 429, 429, 429, 429]
    assert await count(session, Referral) == 2


async def test_a_trusted_proxys_forwarded_for_is_believed(settings, sessionmaker, session, codec):
    world = await make_setup(session, codec)
    app = limited_app(settings, sessionmaker, 1, trusted_proxies=["127.0.0.0/8", "10.0.0.0/8"])
    # Each client, behind two trusted hops, gets its own allowance.
    assert (
        await post_claim(app, world.code, "a@example.org", forwarded="203.0.113.5, 10.0.0.2")
    ).status_code == 303
    assert (
        await post_claim(app, world.code, "b@example.org", forwarded="203.0.113.6")
    ).status_code == 303
    # A client prepending its own fake hop is still itself: the right-most untrusted address.
    assert (
        await post_claim(app, world.code, "c@example.org", forwarded="192.0.2.77, 203.0.113.5")
    ).status_code == 429
    # From an untrusted peer the header means nothing.
    assert (
        await post_claim(
            app, world.code, "d@example.org", client=("192.0.2.1", 1), forwarded="203.0.113.9"
        )
    ).status_code == 303
    assert (
        await post_claim(
            app, world.code, "e@example.org", client=("192.0.2.1", 1), forwarded="203.0.113.10"
        )
    ).status_code == 429
    assert await count(session, Referral) == 3


async def test_ipv6_clients_are_limited_per_64(settings, sessionmaker, session, codec):
    world = await make_setup(session, codec)
    app = limited_app(settings, sessionmaker, 1)
    one = ("2001:db8:1:2::1", 1)
    same_64 = ("2001:db8:1:2:ffff:ffff:ffff:9", 1)
    other_64 = ("2001:db8:1:3::1", 1)
    assert (await post_claim(app, world.code, "a@example.org", client=one)).status_code == 303
    assert (await post_claim(app, world.code, "b@example.org", client=same_64)).status_code == 429
    assert (await post_claim(app, world.code, "c@example.org", client=other_64)).status_code == 303
    assert await count(session, Referral) == 2
