"""A revocation committed anywhere reaches every worker's landing cache through NOTIFY."""

from __future__ import annotations

import asyncio

from attribution.landing import LandingResolver
from attribution.links import revoke_link
from core.db import session_factory
from tests.factories import make_advocate, make_link, make_program
from web.invalidation import listen_for_invalidations


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
    listener = asyncio.create_task(listen_for_invalidations(database_url, worker_cache))
    try:
        await asyncio.sleep(0.5)  # listening
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
    listener = asyncio.create_task(listen_for_invalidations(database_url, worker_cache))
    try:
        await asyncio.sleep(0.5)
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
