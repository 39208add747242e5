"""Background work inside each `vouch serve` worker process.

The webhook delivery loop claims due deliveries with ``FOR UPDATE SKIP LOCKED``, so any number
of workers (and separate ``vouch webhooks deliver`` processes) can run it at once; each pass is
one transaction, committed here at the edge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vouch.attribution import webhooks
from vouch.attribution.egress import EgressPolicy
from vouch.core.clock import utcnow
from vouch.core.db import is_database_unavailable

logger = logging.getLogger("vouch.workers")


async def webhook_delivery_loop(
    factory: async_sessionmaker[AsyncSession],
    *,
    interval: float = 2.0,
    batch: int = 100,
    send: webhooks.Sender | None = None,
    allowed_private_hosts: Iterable[str] = (),
) -> None:
    """Deliver due webhooks until cancelled; a database outage only pauses it."""
    async with httpx.AsyncClient() as client:
        send = send or webhooks.httpx_sender(client, EgressPolicy.allowing(allowed_private_hosts))
        while True:
            busy = False
            try:
                async with factory() as session:
                    run = await webhooks.deliver_due(session, send, now=utcnow(), limit=batch)
                    await session.commit()
                busy = run.delivered + run.retried + run.dead >= batch
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_database_unavailable(exc):
                    logger.exception("webhook delivery pass failed")
            if not busy:
                await asyncio.sleep(interval)
