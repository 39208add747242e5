"""Bot verdicts, click cleaning, the bounded click buffer and the landing resolver cache."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from tests.factories import make_advocate, make_link, make_program
from vouch.attribution.clicks import (
    ClickRecord,
    classify_user_agent,
    clean_channel,
    clean_utm,
    referrer_host,
)
from vouch.attribution.landing import LandingResolver
from vouch.jobs.click_buffer import ClickBuffer
from vouch.models import Click

BOTS = {
    "slack": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "linkedin": "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "twitter": "Twitterbot/1.0",
    "whatsapp": "WhatsApp/2.23.20.0 A",
    "imessage": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0",
    "facebook": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "discord": "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "telegram": "TelegramBot (like TwitterBot)",
    "email_scanner": "Mozilla/5.0 (compatible; Barracuda Sentinel)",
    "google": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "http_client": "curl/8.5.0",
}
HUMANS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
]


@pytest.mark.parametrize(("reason", "user_agent"), sorted(BOTS.items()))
def test_unfurlers_crawlers_and_scanners_are_bots(reason, user_agent):
    verdict = classify_user_agent(user_agent)
    assert verdict.is_bot is True
    assert verdict.reason == reason


@pytest.mark.parametrize("user_agent", HUMANS)
def test_browsers_are_people(user_agent):
    verdict = classify_user_agent(user_agent)
    assert verdict.is_bot is False
    assert verdict.reason is None


def test_missing_user_agent_and_head_requests_are_bots():
    assert classify_user_agent(None).reason == "no_user_agent"
    assert classify_user_agent("   ").reason == "no_user_agent"
    assert classify_user_agent(HUMANS[0], method="HEAD").reason == "head_request"


def test_channel_utm_and_referrer_are_cleaned():
    assert clean_channel("LinkedIn") == "linkedin"
    assert clean_channel("x") == "x"
    assert clean_channel("<script>") is None
    assert clean_channel("a" * 33) is None
    assert clean_channel(None) is None
    assert clean_utm(
        {"utm_source": " news\x00letter ", "utm_medium": "", "utm_campaign": "c" * 300, "x": "y"}
    ) == {"utm_source": "newsletter", "utm_campaign": "c" * 100}
    assert referrer_host("https://mail.google.com/mail/u/0/#inbox") == "mail.google.com"
    assert referrer_host("not a url") is None
    assert referrer_host(None) is None


def _record(link_id: int, program_id: int, **overrides) -> ClickRecord:
    values: dict[str, Any] = {
        "link_id": link_id,
        "program_id": program_id,
        "occurred_at": datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
        "channel": "email",
        "utm": {},
        "ip_hash": "a" * 32,
        "user_agent": "x" * 600,
        "is_bot": False,
        "bot_reason": None,
        "visitor_id": "v" * 32,
        "referrer_host": None,
    }
    values.update(overrides)
    return ClickRecord(**values)


async def test_buffer_flushes_in_one_batch_and_truncates_user_agents(session, sessionmaker, codec):
    program = await make_program(session)
    link = await make_link(session, codec, advocate=await make_advocate(session), program=program)
    buffer = ClickBuffer(sessionmaker, max_size=10, interval=1.0)
    for _ in range(3):
        assert buffer.add(_record(link.id, program.id)) is True
    assert len(buffer) == 3
    assert await buffer.flush() == 3
    assert len(buffer) == 0
    rows = (await session.scalars(select(Click).where(Click.link_id == link.id))).all()
    assert len(rows) == 3
    assert {len(r.user_agent or "") for r in rows} == {512}
    assert buffer.recorded == 3
    assert await buffer.flush() == 0


async def test_full_buffer_drops_and_counts_instead_of_growing(sessionmaker):
    buffer = ClickBuffer(sessionmaker, max_size=2, interval=1.0)
    assert buffer.add(_record(1, 1)) is True
    assert buffer.add(_record(1, 1)) is True
    assert buffer.add(_record(1, 1)) is False
    assert len(buffer) == 2
    assert buffer.dropped == 1


class _FailingSession:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    async def scalar(self, *args):
        raise OperationalError("INSERT", {}, Exception("database is down"))

    async def connection(self):
        raise OperationalError("COPY", {}, Exception("database is down"))

    async def commit(self):  # pragma: no cover - never reached
        raise AssertionError


async def test_failed_flush_requeues_clicks_within_the_bound():
    buffer = ClickBuffer(_FailingSession, max_size=3, interval=1.0)  # type: ignore[arg-type]
    first, second = _record(1, 1, channel="a"), _record(1, 1, channel="b")
    buffer.add(first)
    buffer.add(second)
    assert await buffer.flush() == 0
    assert len(buffer) == 2
    assert [r.channel for r in buffer.queued()] == ["a", "b"]
    assert buffer.dropped == 0


async def test_clicks_of_deleted_links_are_dropped_not_retried_forever(
    session, sessionmaker, codec
):
    program = await make_program(session)
    link = await make_link(session, codec, advocate=await make_advocate(session), program=program)
    await session.commit()
    buffer = ClickBuffer(sessionmaker, max_size=10, interval=1.0)
    buffer.add(_record(link.id, program.id, channel="kept"))
    buffer.add(_record(link.id + 999, program.id, channel="orphan"))
    assert await buffer.flush() == 1
    assert (len(buffer), buffer.dropped, buffer.recorded) == (0, 1, 1)
    channels = (await session.scalars(select(Click.channel))).all()
    assert channels == ["kept"]


async def test_shutdown_flushes_what_is_buffered(app, session, codec):
    program = await make_program(session)
    link = await make_link(session, codec, advocate=await make_advocate(session), program=program)
    await session.commit()
    async with app.router.lifespan_context(app):
        app.state.clicks.add(_record(link.id, program.id, channel="shutdown"))
    channels = (await session.scalars(select(Click.channel).where(Click.link_id == link.id))).all()
    assert channels == ["shutdown"]
    assert len(app.state.clicks) == 0


async def test_resolver_rejects_malformed_codes_without_the_database(session, codec, count_queries):
    resolver = LandingResolver(codec)
    program = await make_program(session)
    link = await make_link(session, codec, advocate=await make_advocate(session), program=program)
    non_canonical = codec.encode(link.id, link.nonce) + "x"
    count_queries.reset()
    for code in ["", "!!!", "0OlI0OlI0O", "a" * 40, non_canonical]:
        assert await resolver.resolve(session, code) is None
    assert count_queries.count == 0


async def test_resolver_caches_hits_and_misses(session, codec, count_queries):
    resolver = LandingResolver(codec)
    program = await make_program(session, name="Cached")
    link = await make_link(session, codec, advocate=await make_advocate(session), program=program)
    unknown = codec.encode(link.id + 1000, 12345)
    count_queries.reset()
    first = await resolver.resolve(session, str(link.code))
    assert first is not None
    assert first.program_name == "Cached"
    assert await resolver.resolve(session, unknown) is None
    assert count_queries.count == 2
    assert await resolver.resolve(session, str(link.code)) == first
    assert await resolver.resolve(session, unknown) is None
    assert count_queries.count == 2
    resolver.invalidate(link.code)
    assert await resolver.resolve(session, str(link.code)) == first
    assert count_queries.count == 3


async def test_resolver_rejects_wrong_nonce_and_revoked_links(session, codec):
    resolver = LandingResolver(codec, ttl=0)
    program = await make_program(session)
    link = await make_link(session, codec, advocate=await make_advocate(session), program=program)
    assert await resolver.resolve(session, codec.encode(link.id, link.nonce ^ 1)) is None
    link.status = "revoked"
    await session.flush()
    assert await resolver.resolve(session, str(link.code)) is None


async def test_a_batch_whose_commit_acknowledgment_was_lost_is_not_written_twice(
    session, sessionmaker, codec
):
    """The server commits the batch and dies before answering: the buffer keeps the batch
    for a retry, and the retry finds the batch's id and writes nothing again."""
    import contextlib

    from asyncpg import exceptions as pg_errors  # type: ignore[import-untyped]
    from sqlalchemy.exc import DBAPIError

    from vouch.models import ClickBatch

    program = await make_program(session)
    link = await make_link(session, codec, advocate=await make_advocate(session), program=program)
    await session.commit()
    lost_acks = [1]

    @contextlib.asynccontextmanager
    async def flaky_sessionmaker():
        async with sessionmaker() as s:
            real_commit = s.commit

            async def commit() -> None:
                await real_commit()
                if lost_acks:
                    lost_acks.pop()
                    raise DBAPIError("COMMIT", {}, pg_errors.ConnectionDoesNotExistError("lost"))

            s.commit = commit  # type: ignore[method-assign]
            yield s

    buffer = ClickBuffer(flaky_sessionmaker, max_size=10, interval=1.0)  # type: ignore[arg-type]
    for channel in ("a", "b", "c"):
        buffer.add(_record(link.id, program.id, channel=channel))
    assert await buffer.flush() == 0  # written, but the buffer could not know
    assert [r.channel for r in buffer.queued()] == ["a", "b", "c"]
    buffer.add(_record(link.id, program.id, channel="d"))  # a new click meanwhile
    assert await buffer.flush() == 4  # the retried batch (found written) and the new one
    assert (len(buffer), buffer.recorded, buffer.dropped) == (0, 4, 0)
    channels = (await session.scalars(select(Click.channel).order_by(Click.id))).all()
    assert channels == ["a", "b", "c", "d"]
    assert sorted((await session.scalars(select(ClickBatch.clicks))).all()) == [1, 3]
