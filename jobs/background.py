"""The long-running loops besides the scheduler, in one list: outbound webhook delivery, the
friends' code mails, the HubSpot deal sync and the Stripe promotion codes.

``vouch serve`` runs them in each web process and ``vouch worker`` runs them alone (a deployment
that separates web and background work sets ``VOUCH_WEBHOOK_WORKER=false`` and
``VOUCH_INTEGRATION_WORKERS=false`` on its web processes). Each loop claims its work with
``FOR UPDATE SKIP LOCKED``, so any number of processes may run the same loops side by side."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vouch.core.settings import Settings
from vouch.jobs.delivery import code_mail_loop, webhook_delivery_loop
from vouch.jobs.integrations import hubspot_loop, stripe_promotion_loop

Loop = tuple[str, Callable[[], Coroutine[Any, Any, None]]]


def background_loops(factory: async_sessionmaker[AsyncSession], settings: Settings) -> list[Loop]:
    """(task name, start) for each loop this process's settings enable."""
    loops: list[Loop] = []
    if settings.webhook_worker:
        hosts = settings.webhook_allow_private_hosts
        loops.append(
            (
                "vouch-webhook-delivery",
                lambda: webhook_delivery_loop(factory, allowed_private_hosts=hosts),
            )
        )
        mailer = settings.mailer()
        if mailer is not None:
            loops.append(("vouch-code-mail", lambda: code_mail_loop(factory, mailer)))
    if settings.integration_workers:
        if settings.hubspot_access_token:
            loops.append(("vouch-hubspot-sync", lambda: hubspot_loop(factory, settings)))
        if settings.stripe_api_key and settings.stripe_promotion_coupon:
            loops.append(
                ("vouch-stripe-promotion-codes", lambda: stripe_promotion_loop(factory, settings))
            )
    return loops
