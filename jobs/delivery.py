"""Outbound delivery loops, run by `vouch serve` and `vouch worker` (jobs/background.py).

The webhook delivery loop claims due deliveries with ``FOR UPDATE SKIP LOCKED``, so any number
of workers (and separate ``vouch webhooks deliver`` processes) can run it at once; each pass is
one transaction, committed here at the edge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vouch.attribution import code_mail, webhooks
from vouch.attribution.egress import EgressPolicy
from vouch.core.clock import utcnow
from vouch.core.engine import is_database_unavailable
from vouch.core.mail import Mailer, MailError

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


async def send_due_code_mails(
    factory: async_sessionmaker[AsyncSession], mailer: Mailer, *, now: datetime, limit: int = 20
) -> int:
    """Mail up to ``limit`` due codes, one transaction each; returns how many were sent."""
    sent = 0
    for _ in range(limit):
        async with factory() as session:
            mail = await code_mail.next_code_mail(session, now=now)
            if mail is None:
                return sent
            try:
                await mailer.send(to=mail.to, subject=mail.subject, body=mail.body)
            except MailError as exc:
                logger.warning("code mail %s not sent: %s", mail.event_id, exc)
                await code_mail.mark_code_mail(session, mail.event_id, sent=False, now=now)
                await session.commit()
                return sent  # the server is unwell: try again on the next pass
            await code_mail.mark_code_mail(session, mail.event_id, sent=True, now=now)
            await session.commit()
            sent += 1
    return sent


async def code_mail_loop(
    factory: async_sessionmaker[AsyncSession], mailer: Mailer, *, interval: float = 5.0
) -> None:
    """Mail friends' codes until cancelled; a database outage only pauses it."""
    while True:
        try:
            await send_due_code_mails(factory, mailer, now=utcnow())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_database_unavailable(exc):
                logger.exception("code mail pass failed")
        await asyncio.sleep(interval)
