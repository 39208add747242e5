"""The native integrations' background work inside each `vouch serve` worker process: the
HubSpot fetch queue (``integration_jobs``), worked off the request path.

Each job is claimed with ``FOR UPDATE SKIP LOCKED`` and run in its own transaction, committed
here at the edge, so any number of serve workers can run the loop side by side. The loop runs
only where ``VOUCH_HUBSPOT_ACCESS_TOKEN`` is set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vouch.api.ids import decode_id, encode_id
from vouch.attribution.integrations import events, hubspot
from vouch.core.clock import utcnow
from vouch.core.db import is_database_unavailable
from vouch.core.settings import Settings

logger = logging.getLogger("vouch.integrations")


async def hubspot_pass(
    factory: async_sessionmaker[AsyncSession],
    api: hubspot.HubSpotApi,
    settings: Settings,
    *,
    limit: int = 20,
    clock: Callable[[], datetime] = utcnow,
) -> int:
    """Run up to ``limit`` due HubSpot fetches, one transaction each; how many ran."""
    ran = 0
    while ran < limit:
        async with factory() as session:
            jobs = await events.claim_due(session, provider=hubspot.PROVIDER, now=clock(), limit=1)
            if not jobs:
                break
            job = jobs[0]
            await hubspot.run_job(
                session,
                api,
                job,
                stages=settings.hubspot_stages,
                write_back_enabled=settings.hubspot_write_back,
                now=clock(),
                decode_referral=partial(decode_id, type_name="Referral", field="referralId"),
                encode_referral=partial(encode_id, "Referral"),
            )
            if job.last_error:
                logger.info("hubspot deal %s: %s", job.object_id, job.last_error)
            await session.commit()
        ran += 1
    return ran


async def hubspot_loop(
    factory: async_sessionmaker[AsyncSession], settings: Settings, *, interval: float = 2.0
) -> None:
    """Work the HubSpot queue until cancelled; a database outage only pauses it."""
    assert settings.hubspot_access_token
    async with httpx.AsyncClient() as client:
        api = hubspot.HubSpotApi(
            client, base_url=settings.hubspot_api_base, token=settings.hubspot_access_token
        )
        while True:
            ran = 0
            try:
                ran = await hubspot_pass(factory, api, settings)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_database_unavailable(exc):
                    logger.exception("hubspot pass failed")
            if ran < 20:
                await asyncio.sleep(interval)
