"""A revocation committed anywhere reaches every worker's landing cache through NOTIFY."""

from __future__ import annotations

import asyncio

from tests.factories import make_advocate, make_link, make_program
from vouch.attribution.landing import LandingResolver
from vouch.attribution.links import revoke_link
from vouch.core.sessions import session_factory
from vouch.web.invalidation import listen_for_invalidations


async def test_revocation_invalidates_other_workers_at_once(committing_engine, database_url, codec):
    factory = session_factory(committing_engine)
    async with factory() as s:
        program = await make_program(s)
        advocate = await make_advocate(s)
        link = await make_link(s, codec, advocate=advocate, program=program)
        await s.commit()
    worker_cache = LandingResolver(codec, ttl=3600)  # a TTL that would hide the change for an hour
    async with factory() as s:
        assert await worker_cache.resolve(s, str(link.code)) is not None
    listening = asyncio.Event()
    listener = asyncio.create_task(
        listen_for_invalidations(database_url, worker_cache, listening=listening)
    )
    try:
        await asyncio.wait_for(listening.wait(), timeout=30)
        async with factory() as s:
            await worker_cache.resolve(s, str(link.code))  # cached again after the listener's reset
        assert worker_cache.cached(str(link.code))[0] is True
        async with factory() as s:  # "another worker" revokes and commits
            await revoke_link(s, link.id)
            await s.commit()
        for _ in range(50):
            if not worker_cache.cached(str(link.code))[0]:
                break
            await asyncio.sleep(0.05)
        assert worker_cache.cached(str(link.code)) == (False, None)
        async with factory() as s:
            assert await worker_cache.resolve(s, str(link.code)) is None
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def test_rolled_back_changes_announce_nothing(committing_engine, database_url, codec):
    factory = session_factory(committing_engine)
    async with factory() as s:
        program = await make_program(s)
        advocate = await make_advocate(s)
        link = await make_link(s, codec, advocate=advocate, program=program)
        await s.commit()
    worker_cache = LandingResolver(codec, ttl=3600)
    listening = asyncio.Event()
    listener = asyncio.create_task(
        listen_for_invalidations(database_url, worker_cache, listening=listening)
    )
    try:
        await asyncio.wait_for(listening.wait(), timeout=30)
        async with factory() as s:
            await worker_cache.resolve(s, str(link.code))
        async with factory() as s:
            await revoke_link(s, link.id)
            await s.rollback()
        await asyncio.sleep(0.5)
        assert worker_cache.cached(str(link.code))[0] is True
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def test_revoked_api_key_is_forgotten_by_every_worker(committing_engine, database_url, codec):
    from sqlalchemy import select

    from tests.factories import make_api_key
    from vouch.access.api_keys import KEY_CACHE, KnownKey, revoke_api_key
    from vouch.core.security import hash_api_key
    from vouch.models import ApiKey

    factory = session_factory(committing_engine)
    async with factory() as s:
        plaintext = await make_api_key(s, scopes=["read"], name="rotating")
        await s.commit()
    key_hash = hash_api_key(plaintext)
    resolver = LandingResolver(codec)
    listening = asyncio.Event()
    listener = asyncio.create_task(
        listen_for_invalidations(database_url, resolver, listening=listening)
    )
    try:
        await asyncio.wait_for(listening.wait(), timeout=30)
        async with factory() as s:
            key_id = int(await s.scalar(select(ApiKey.id).where(ApiKey.key_hash == key_hash)) or 0)
            await revoke_api_key(s, key_id)  # forgets it in this process at once ...
            # ... while another worker's cache still holds it until the commit's NOTIFY arrives
            KEY_CACHE.put(key_hash, KnownKey(id=key_id, name="rotating", scopes=("read",)))
            await s.commit()
        for _ in range(50):
            if KEY_CACHE.get(key_hash) is None:
                break
            await asyncio.sleep(0.05)
        assert KEY_CACHE.get(key_hash) is None
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
