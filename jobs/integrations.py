"""The native integrations' background work, off the request path (run by `vouch serve` and
`vouch worker`, jobs/background.py): the HubSpot fetch queue, and the creation of each friend's
Stripe promotion code.

Each job (``integration_jobs``) is claimed with ``FOR UPDATE SKIP LOCKED`` and run in its own
transaction, committed here at the edge, so any number of serve workers can run the loops side
by side. The HubSpot loop runs where ``VOUCH_HUBSPOT_ACCESS_TOKEN`` is set; the Stripe loop where
``VOUCH_STRIPE_API_KEY`` and ``VOUCH_STRIPE_PROMOTION_COUPON`` are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vouch.attribution.integrations import events, hubspot, stripe_billing
from vouch.attribution.opportunities import OpportunityData
from vouch.core.clock import utcnow
from vouch.core.engine import is_database_unavailable
from vouch.core.errors import DomainError
from vouch.core.ids import decode_id, encode_id
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
    """Run up to ``limit`` due HubSpot fetches; how many ran. Each is three short steps, and
    no transaction is open while HubSpot is called: lease the job (commit), fetch the deal
    from HubSpot, then apply it and record the outcome in one transaction; an optional
    write-back to HubSpot follows that commit."""
    ran = 0
    while ran < limit:
        async with factory() as session:
            job_id = await events.lease_due(session, provider=hubspot.PROVIDER, now=clock())
            await session.commit()
        if job_id is None:
            break
        await _hubspot_job(factory, api, settings, job_id, clock)
        ran += 1
    return ran


async def _hubspot_job(
    factory: async_sessionmaker[AsyncSession],
    api: hubspot.HubSpotApi,
    settings: Settings,
    job_id: int,
    clock: Callable[[], datetime],
) -> None:
    async with factory() as session:
        job = await events.leased_job(session, job_id)
        deal_id = job.object_id if job is not None else None
        await session.commit()
    if deal_id is None:
        return
    fetched: OpportunityData | None = None
    failure: Exception | None = None
    try:
        fetched = await hubspot.fetch_deal(
            api,
            deal_id,
            stages=settings.hubspot_stages,
            decode_referral=partial(decode_id, type_name="Referral", field="referralId"),
        )
    except (hubspot.HubSpotUnavailable, DomainError) as exc:
        failure = exc
    plan: hubspot.WriteBack | None = None
    async with factory() as session:
        job = await events.leased_job(session, job_id)
        if job is None:
            return
        now = clock()
        try:
            if failure is not None:
                raise failure
            result = await hubspot.apply_deal(session, deal_id, fetched, now=now)
        except hubspot.HubSpotUnavailable as exc:
            events.job_retry(job, error=str(exc), now=now, retry_after=exc.retry_after)
        except DomainError as exc:
            events.job_dead(
                job, error=f"{exc.code.value} {exc.field or '-'}: {exc.message}", now=now
            )
        else:
            events.job_done(job, now=now)
            if settings.hubspot_write_back and result.referral_id and result.outcome == "synced":
                plan = await hubspot.write_back_for(
                    session,
                    deal_id,
                    result.referral_id,
                    encode_referral=partial(encode_id, "Referral"),
                )
        if job.last_error:
            logger.info("hubspot deal %s: %s", job.object_id, job.last_error)
        await session.commit()
    if plan is None:
        return
    try:
        await hubspot.write_back(api, plan)
    except hubspot.HubSpotUnavailable as exc:
        # the deal is synced; the write-back is tried again with the next sync of this deal
        async with factory() as session:
            await events.enqueue_job(
                session,
                provider=hubspot.PROVIDER,
                kind=hubspot.JOB_KIND,
                object_id=deal_id,
                now=clock(),
            )
            await session.commit()
        logger.info("hubspot write-back of deal %s deferred: %s", deal_id, exc)


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


def stripe_promotion_creator(settings: Settings) -> stripe_billing.PromotionCreator:
    """Creates a friend's promotion code on ``VOUCH_STRIPE_PROMOTION_COUPON`` through Stripe's
    official library (one redemption, the redemption code's expiry, the referral in metadata)."""
    import stripe  # imported when used (see stripe_billing.verify)

    assert settings.stripe_api_key
    assert settings.stripe_promotion_coupon
    coupon = settings.stripe_promotion_coupon
    client = stripe.StripeClient(
        settings.stripe_api_key,
        base_addresses={"api": settings.stripe_api_base},
        http_client=stripe.HTTPXClient(timeout=10),
        max_network_retries=2,
    )

    async def create(new: stripe_billing.NewPromotionCode) -> str:
        params: dict[str, object] = {
            "promotion": {"type": "coupon", "coupon": coupon},
            "code": new.code,
            "max_redemptions": 1,
            "metadata": {"vouch_referral_id": new.referral_id},
        }
        if new.expires_at is not None:
            params["expires_at"] = int(new.expires_at.timestamp())
        try:
            promo = await client.v1.promotion_codes.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": new.idempotency_key},
            )
        except (stripe.InvalidRequestError, stripe.AuthenticationError) as exc:
            raise stripe_billing.StripeRefused(
                f"{type(exc).__name__}: {exc.user_message}"
            ) from None
        except stripe.StripeError as exc:
            raise stripe_billing.StripeUnavailable(type(exc).__name__) from None
        return str(promo.id)

    return create


async def stripe_promotion_pass(
    factory: async_sessionmaker[AsyncSession],
    create: stripe_billing.PromotionCreator,
    *,
    limit: int = 20,
    clock: Callable[[], datetime] = utcnow,
) -> int:
    """Queue the promotion codes missing, then create up to ``limit``, one transaction each."""
    async with factory() as session:
        await stripe_billing.queue_promotion_codes(session, now=clock())
        await session.commit()
    ran = 0
    while ran < limit:
        async with factory() as session:
            jobs = await events.claim_due(
                session, provider=stripe_billing.PROVIDER, now=clock(), limit=1
            )
            if not jobs:
                break
            await stripe_billing.create_promotion_code(
                session,
                jobs[0],
                create,
                now=clock(),
                encode_referral=partial(encode_id, "Referral"),
            )
            if jobs[0].last_error:
                logger.info("stripe promotion code %s: %s", jobs[0].object_id, jobs[0].last_error)
            await session.commit()
        ran += 1
    return ran


async def stripe_promotion_loop(
    factory: async_sessionmaker[AsyncSession], settings: Settings, *, interval: float = 5.0
) -> None:
    """Create friends' promotion codes until cancelled; a database outage only pauses it."""
    create = stripe_promotion_creator(settings)
    while True:
        ran = 0
        try:
            ran = await stripe_promotion_pass(factory, create)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_database_unavailable(exc):
                logger.exception("stripe promotion code pass failed")
        if ran < 20:
            await asyncio.sleep(interval)
