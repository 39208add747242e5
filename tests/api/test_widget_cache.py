"""The widget cache (core.widget_cache) through the GraphQL endpoint: what a widget token's
query gets back, how stale it may be, and what makes it fresh at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.api.ids import encode_id
from vouch.core.sessions import session_factory
from vouch.core.settings import Settings
from vouch.core.widget_cache import (
    MAX_BODY_BYTES,
    WIDGET_CHANNEL,
    WidgetResponses,
    announce_widget_change,
)
from vouch.web.app import Overrides, create_app

WIDGET = "query W { me { firstName links { channel } } }"
RENAME = """mutation($input: AdvocateInput!) {
  upsertAdvocate(input: $input) { advocate { firstName } errors { code } } }"""
CREATE_LINK = """mutation($a: ID!, $p: ID!, $c: String!) {
  createReferralLink(advocateId: $a, programId: $p, channel: $c) { created errors { code } } }"""
ERASE = "mutation($id: ID!){ eraseAdvocate(id: $id){ advocate { erased } errors { code } } }"
FRESH = {"cache-control": "no-cache"}
REAL_TIME = time.time


async def _me(client: httpx.AsyncClient, token: str, **headers: str) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": WIDGET},
        headers={"authorization": f"Bearer {token}", **headers},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _rename(client: httpx.AsyncClient, key: str, external_id: str, name: str) -> None:
    payload = await gql(
        client, RENAME, {"input": {"externalId": external_id, "firstName": name}}, token=key
    )
    assert payload["data"]["upsertAdvocate"]["errors"] == [], payload


async def _share_by_email(
    client: httpx.AsyncClient, token: str, advocate_id: int, program_id: int
) -> None:
    """The widget's advocate creates an email link (a widget token's mutation)."""
    variables = {
        "a": encode_id("Advocate", advocate_id),
        "p": encode_id("Program", program_id),
        "c": "email",
    }
    created = await gql(client, CREATE_LINK, variables, token=token)
    assert created["data"]["createReferralLink"] == {"created": True, "errors": []}


@pytest.fixture
async def widget(client, session, app):
    program = await make_program(session)
    advocate = await make_advocate(session, external_id="crm-1", first_name="Ada")
    key = await make_api_key(session, scopes=["admin"])
    token = app.state.widget_tokens.mint(advocate.id)
    return program, advocate, key, token


async def test_kept_for_a_moment_then_fresh_on_request(client, widget):
    """A change made elsewhere shows within the TTL; a client asking for a fresh answer
    gets it at once, and it is what the next load gets too."""
    _, _, key, token = widget
    first = await _me(client, token)
    assert first == {"data": {"me": {"firstName": "Ada", "links": []}}}
    await _rename(client, key, "crm-1", "Grace")
    assert await _me(client, token) == first  # kept: at most VOUCH_WIDGET_CACHE_SECONDS old
    fresh = await _me(client, token, **FRESH)
    assert fresh["data"]["me"]["firstName"] == "Grace"
    assert await _me(client, token) == fresh


async def test_nothing_older_than_the_ttl(settings, sessionmaker, session):
    app = create_app(
        settings.model_copy(update={"widget_cache_seconds": 0.2}),
        Overrides(sessionmaker=sessionmaker),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await make_advocate(session, external_id="crm-2", first_name="Ada")
        advocate_id = int(
            await session.scalar(text("SELECT id FROM advocates WHERE external_id = 'crm-2'"))
        )
        key = await make_api_key(session, scopes=["admin"])
        token = app.state.widget_tokens.mint(advocate_id)
        assert (await _me(client, token))["data"]["me"]["firstName"] == "Ada"
        await _rename(client, key, "crm-2", "Grace")
        await asyncio.sleep(0.3)
        assert (await _me(client, token))["data"]["me"]["firstName"] == "Grace"


async def test_the_advocates_own_change_shows_at_once(client, widget, session, codec):
    """A widget token's mutation drops its advocate's kept answers when it commits."""
    program, advocate, _, token = widget
    await make_link(session, codec, advocate=advocate, program=program)  # enrolled
    before = (await _me(client, token))["data"]["me"]["links"]
    await _share_by_email(client, token, advocate.id, program.id)
    assert (await _me(client, token))["data"]["me"]["links"] == [*before, {"channel": "email"}]


async def test_a_refused_mutation_keeps_the_answer(client, widget, session, codec):
    """A mutation that fails (a domain error, rolled back) changes nothing and forgets nothing."""
    program, _advocate, key, token = widget
    first = await _me(client, token)
    other = await make_advocate(session)
    refused = await gql(
        client,
        CREATE_LINK,
        {"a": encode_id("Advocate", other.id), "p": encode_id("Program", program.id), "c": "x"},
        token=token,
        expect_errors=True,
    )
    assert "errors" in refused or refused["data"]["createReferralLink"]["errors"]
    await _rename(client, key, "crm-1", "Grace")
    assert await _me(client, token) == first


async def test_erasure_leaves_no_kept_answer(client, widget):
    _, advocate, key, token = widget
    assert (await _me(client, token))["data"]["me"]["firstName"] == "Ada"
    erased = await gql(client, ERASE, {"id": encode_id("Advocate", advocate.id)}, token=key)
    assert erased["data"]["eraseAdvocate"]["errors"] == []
    after = await _me(client, token)
    assert "Ada" not in str(after)


async def test_answers_are_per_advocate_and_per_query(client, widget, session, app):
    _, _, _, token = widget
    other = await make_advocate(session, first_name="Linus")
    other_token = app.state.widget_tokens.mint(other.id)
    assert (await _me(client, token))["data"]["me"]["firstName"] == "Ada"
    assert (await _me(client, other_token))["data"]["me"]["firstName"] == "Linus"
    # the same advocate, another operation name or variables: another entry
    named = await client.post(
        "/graphql",
        json={"query": "query V { me { firstName } }", "operationName": "V"},
        headers={"authorization": f"Bearer {token}"},
    )
    assert named.json() == {"data": {"me": {"firstName": "Ada"}}}


async def test_a_kept_answer_needs_a_valid_token(client, widget, app, monkeypatch):
    """Every request's token is checked, hit or miss: an expired or forged one gets the
    refusal, never the advocate's kept answer."""
    _, advocate, _, token = widget
    assert (await _me(client, token))["data"]["me"]["firstName"] == "Ada"
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    refused = await _me(client, forged)
    assert refused["data"] is None
    assert "not valid" in str(refused["errors"])
    tokens = app.state.widget_tokens
    with monkeypatch.context() as m:  # a genuine token, signed longer ago than its lifetime
        m.setattr(time, "time", lambda: REAL_TIME() - tokens.ttl_seconds - 60)
        expired = tokens.mint(advocate.id)
    refused = await _me(client, expired)
    assert refused["data"] is None
    assert "expired" in str(refused["errors"])
    assert (await _me(client, token))["data"]["me"]["firstName"] == "Ada"


async def test_errors_and_mutations_are_never_kept(client, widget, app):
    _, _, _, token = widget
    cache = app.state.widget_cache
    failing = await client.post(
        "/graphql",
        json={"query": "{ advocates(first: 1) { totalCount } }"},
        headers={"authorization": f"Bearer {token}"},
    )
    assert failing.json()["errors"]
    assert len(cache) == 0
    share = await gql(
        client,
        'mutation { recordShareEvent(kind: "link_copied") { recorded } }',
        token=token,
        expect_errors=True,
    )
    assert share
    assert len(cache) == 0
    await _me(client, token)
    assert len(cache) == 1


async def test_api_keys_are_never_served_from_it(client, widget, app):
    _, advocate, key, _ = widget
    query = "query($id: ID!) { advocate(id: $id) { firstName } }"
    variables = {"id": encode_id("Advocate", advocate.id)}
    assert (await gql(client, query, variables, token=key))["data"]["advocate"]["firstName"]
    assert len(app.state.widget_cache) == 0


async def test_off_when_the_ttl_is_zero(settings, sessionmaker):
    app = create_app(
        settings.model_copy(update={"widget_cache_seconds": 0}),
        Overrides(sessionmaker=sessionmaker),
    )
    assert app.state.widget_cache is None


# The cache itself: bounds, the epoch guard, the announcement.


def test_memory_stays_within_its_budget():
    cache = WidgetResponses(60, max_bytes=64 * 1024)
    for n in range(500):
        key = cache.key(n % 50, f"{{ me {{ a{n} }} }}", None, {"n": n})
        assert key is not None
        assert cache.put(key, b"x" * 1000, cache.epoch)
        assert cache.size_bytes <= cache.max_bytes
    assert 0 < len(cache) < 500
    big = cache.key(1, "{ me { big } }", None, None)
    assert big is not None
    assert cache.put(big, b"x" * (MAX_BODY_BYTES + 1), cache.epoch) is False
    assert cache.key(1, "x" * 10_000, None, None) is None


def test_expired_answers_leave_memory_on_the_next_store(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("vouch.core.widget_cache.time.monotonic", lambda: clock[0])
    cache = WidgetResponses(2.0)
    first = cache.key(1, "{ me { a } }", None, None)
    second = cache.key(2, "{ me { a } }", None, None)
    assert first
    assert second
    cache.put(first, b"one", cache.epoch)
    clock[0] += 2.5
    assert cache.get(first) is None  # expired: never served
    cache.put(second, b"two", cache.epoch)
    assert len(cache) == 1
    assert cache.get(second) == b"two"


def test_an_answer_computed_across_a_forget_is_not_kept():
    cache = WidgetResponses(60)
    key = cache.key(7, "{ me { a } }", None, {"b": 1, "a": 2})
    assert key == cache.key(7, "{ me { a } }", None, {"a": 2, "b": 1})  # key order ignored
    assert key is not None
    epoch = cache.epoch  # a miss starts computing...
    cache.forget(7)  # ...the advocate changes meanwhile...
    assert cache.put(key, b"old", epoch) is False  # ...so what it read is not kept
    assert cache.put(key, b"new", cache.epoch) is True
    cache.forget(8)
    assert cache.get(key) == b"new"
    cache.forget()
    assert cache.get(key) is None


@pytest.fixture
async def listening_cache(
    committing_engine: AsyncEngine, database_url: str, codec: Any
) -> AsyncIterator[WidgetResponses]:
    from vouch.attribution.landing import LandingResolver
    from vouch.web.invalidation import listen_for_invalidations

    cache = WidgetResponses(3600)
    listening = asyncio.Event()
    listener = asyncio.create_task(
        listen_for_invalidations(database_url, LandingResolver(codec), listening=listening)
    )
    try:
        await asyncio.wait_for(listening.wait(), timeout=30)
        yield cache
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def _until_empty(cache: WidgetResponses) -> None:
    for _ in range(100):
        if len(cache) == 0:
            return
        await asyncio.sleep(0.02)


async def test_another_workers_announcement_reaches_this_one(
    listening_cache: WidgetResponses, committing_engine: AsyncEngine
):
    """What another worker announces arrives through NOTIFY (here sent by hand, as another
    process would: nothing in this process forgets it directly)."""
    key = listening_cache.key(41, "{ me { a } }", None, None)
    kept = listening_cache.key(42, "{ me { a } }", None, None)
    assert key
    assert kept
    listening_cache.put(key, b"a", listening_cache.epoch)
    listening_cache.put(kept, b"b", listening_cache.epoch)
    async with committing_engine.begin() as connection:
        await connection.execute(text("SELECT pg_notify(:c, :p)"), {"c": WIDGET_CHANNEL, "p": "41"})
    for _ in range(100):
        if listening_cache.get(key) is None:
            break
        await asyncio.sleep(0.02)
    assert listening_cache.get(key) is None
    assert listening_cache.get(kept) == b"b"


async def test_an_announcement_goes_on_commit_only(
    listening_cache: WidgetResponses, committing_engine: AsyncEngine
):
    factory = session_factory(committing_engine)
    key = listening_cache.key(43, "{ me { a } }", None, None)
    assert key
    listening_cache.put(key, b"a", listening_cache.epoch)
    async with factory() as s:
        await announce_widget_change(s, 43)
        await s.rollback()
    await asyncio.sleep(0.2)
    assert listening_cache.get(key) == b"a"  # rolled back: nothing announced
    async with factory() as s:
        await announce_widget_change(s, 43)
        await s.commit()
    await _until_empty(listening_cache)
    assert listening_cache.get(key) is None


def test_settings_bound_the_ttl():
    with pytest.raises(ValueError):
        Settings(VOUCH_WIDGET_CACHE_SECONDS=-1)
    with pytest.raises(ValueError):
        Settings(VOUCH_WIDGET_CACHE_SECONDS=3600)


async def test_a_landing_change_drops_every_widget_answer(sessionmaker):
    """A program's offer or status, a revoked link: what widgets show changes with landings."""
    from vouch.catalog.landing_cache import announce_landing_change

    cache = WidgetResponses(60)
    key = cache.key(44, "{ me { a } }", None, None)
    assert key is not None
    cache.put(key, b"a", cache.epoch)
    async with sessionmaker() as s:
        await announce_landing_change(s, "somecode")
        assert cache.get(key) == b"a"  # not before the commit
        await s.commit()
    assert cache.get(key) is None


@pytest.mark.committing
async def test_production_sessions_forget_on_the_mutations_commit(
    settings, committing_engine, codec
):
    """As production runs it (sessions from an engine: a request whose first statements are raw
    runs them in a transaction of their own, core.raw_select.RawTransaction), a widget token's
    mutation still drops its advocate's kept answers when it commits."""
    factory = session_factory(committing_engine)
    app = create_app(settings, Overrides(sessionmaker=factory))
    async with factory() as s:
        program = await make_program(s)
        advocate = await make_advocate(s, first_name="Ada")
        await make_link(s, codec, advocate=advocate, program=program)
        await s.commit()
    token = app.state.widget_tokens.mint(advocate.id)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        before = (await _me(client, token))["data"]["me"]["links"]
        assert len(app.state.widget_cache) == 1
        shared = await gql(
            client,
            'mutation { recordShareEvent(kind: "link_copied") { recorded errors { code } } }',
            token=token,
        )
        assert shared["data"]["recordShareEvent"] == {"recorded": True, "errors": []}
        assert len(app.state.widget_cache) == 0
        await _share_by_email(client, token, advocate.id, program.id)
        after = (await _me(client, token))["data"]["me"]["links"]
        assert after == [*before, {"channel": "email"}]
