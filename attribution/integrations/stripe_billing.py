"""Stripe, natively: ``POST /integrations/stripe/webhook``.

The ``Stripe-Signature`` header is verified with the official ``stripe`` library
(``WebhookSignature.verify_header``, the configured tolerance) under
``VOUCH_STRIPE_WEBHOOK_SECRET``; each event is applied once, by its Stripe event id
(``evt_…``), in one transaction:

==============================  ==================================================================
``invoice.paid``                recurring revenue (``amount_paid``), keyed by the invoice id
``charge.refunded``             a refund (partial too) of the charge's invoice or payment
``checkout.session.completed``  a purchase conversion against the friend's redemption code (and,
                                for ``mode=payment``, one-time revenue keyed by the session id)
``customer.subscription.deleted``  churn: a won referral becomes ``churned``
==============================  ==================================================================

Other event types are acknowledged and ignored. A payment is matched to its referral, in this
order:

1. **promotion code**: the friend's redemption code used as a Stripe promotion code. A promotion
   code id (``promo_…``) in the object's discounts is looked up among the codes Vouch knows
   (created by Vouch, or matched before); an unknown one is read from Stripe's API (with
   ``VOUCH_STRIPE_API_KEY``) and its ``code`` compared with the redemption codes;
2. **metadata**: ``metadata.vouch_referral_id`` (the referral's opaque GraphQL id) on the
   checkout session, the subscription, the invoice's subscription details or the customer;
3. **a customer or subscription matched before** (so a renewal invoice or a refund finds the
   referral its first payment was matched to);
4. **email**: the referred customer's email (``customer_details.email``, ``customer_email``,
   ``billing_details.email``, ``receipt_email``) against referred people.

An event whose payment matches no referral is recorded as ``ignored`` (most payments are not
referred); a malformed one as ``failed`` with the reason. Both are answered 200 so Stripe stops
retrying; a redelivery of any event returns the first answer.

Response (JSON): ``{"status": "processed" | "ignored" | "failed", "event_id", "type",
"replayed": bool, "referral_id": "<opaque id>" | null, "detail": str | null}``.

Optionally (``VOUCH_STRIPE_PROMOTION_COUPON``), each live redemption code is created in Stripe as
a one-use promotion code on that coupon (``queue_promotion_codes``/``create_promotion_code``,
worked by ``vouch.jobs.integrations``), so the friend can type it at checkout and the payment is
matched by the promotion code's id with no API call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution import lifecycle, redemptions, revenue
from vouch.attribution.inbound import SignatureRejected
from vouch.attribution.integrations import events
from vouch.attribution.referrals import latest_referral_of_people
from vouch.attribution.revenue import RevenueData
from vouch.core.emails import normalize_email
from vouch.core.errors import ValidationFailed
from vouch.models import ExternalRef, IntegrationJob, OfferRedemption, Referral, RevenueEvent
from vouch.models.enums import (
    IntegrationEventStatus,
    IntegrationProvider,
    ReferralStatus,
    RevenueKind,
)

PROVIDER = IntegrationProvider.STRIPE
SOURCE = "stripe"
HANDLED = frozenset(
    {
        "invoice.paid",
        "charge.refunded",
        "checkout.session.completed",
        "customer.subscription.deleted",
    }
)
# (promotion code id) -> its code text, or None when Stripe does not know it
PromotionLookup = Callable[[str], Awaitable[str | None]]
PROMOTION_JOB = "promotion_code"


class StripeUnavailable(Exception):
    """Stripe's API did not answer now; try again later."""


class StripeRefused(Exception):
    """Stripe's API refused the request for its content (retrying will not help)."""


@dataclass(frozen=True, slots=True)
class NewPromotionCode:
    code: str
    referral_id: str  # the opaque id, stored in the promotion code's metadata
    expires_at: datetime | None
    idempotency_key: str


# (what to create) -> the promotion code's id (promo_…)
PromotionCreator = Callable[[NewPromotionCode], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class StripeResult:
    status: str
    event_id: str
    event_type: str
    replayed: bool
    referral_id: int | None = None
    detail: str | None = None


def verify(payload: bytes, header: str | None, *, secret: str, tolerance: int) -> dict[str, Any]:
    """The event, if ``Stripe-Signature`` is Stripe's for this body (else ``SignatureRejected``)."""
    # Imported when used: the stripe package takes 0.2-0.6 s to import, paid by every serve
    # worker at start (and at every respawn) even where Stripe is not connected.
    import stripe

    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise SignatureRejected(f"Stripe-Signature does not verify: {exc.user_message}") from None
    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValidationFailed("body is not JSON", field="body") from None
    data = event.get("data") if isinstance(event, dict) else None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(data, dict)
        or not isinstance(data.get("object"), dict)
    ):
        raise ValidationFailed("not a Stripe event (id, type, data.object)", field="body")
    # Stripe's event ids (evt_…) and types (invoice.paid) are plain ASCII; anything else is not
    # Stripe's (and a NUL would not even reach the event log).
    if not _STRIPE_ID.fullmatch(event["id"]) or not _STRIPE_TYPE.fullmatch(event["type"]):
        raise ValidationFailed("not a Stripe event id or type", field="body")
    return event


_STRIPE_ID = re.compile(r"[A-Za-z0-9_]{1,255}", re.ASCII)
_STRIPE_TYPE = re.compile(r"[a-z0-9_.]{1,100}", re.ASCII)


async def handle(
    session: AsyncSession,
    event: dict[str, Any],
    *,
    now: datetime,
    decode_referral: Callable[[str], int],
    lookup_promotion_code: PromotionLookup | None = None,
) -> StripeResult:
    """Apply one verified Stripe event once. The caller commits (or rolls back and records the
    failure with ``events.record_failure``)."""
    event_id: str = event["id"]
    event_type: str = event["type"]
    obj: dict[str, Any] = event["data"]["object"]
    seen = await events.begin(
        session,
        provider=PROVIDER,
        event_id=event_id,
        event_type=event_type,
        object_id=_str(obj.get("id")),
        now=now,
    )
    if seen is not None:
        return StripeResult(
            status=seen.status,
            event_id=event_id,
            event_type=event_type,
            replayed=True,
            referral_id=seen.result.get("referral_id"),
            detail=seen.detail,
        )
    if event_type not in HANDLED:
        return await _finish(session, event_id, event_type, None, "event type not used by Vouch")
    matcher = _Matcher(session, decode_referral, lookup_promotion_code, now)
    referral_id = await matcher.match(obj)
    if referral_id is None:
        return await _finish(session, event_id, event_type, None, "no referral matched")
    referral = await session.get(Referral, referral_id)
    if referral is None:
        return await _finish(session, event_id, event_type, None, "no referral matched")
    for kind, key in (("customer", "customer"), ("subscription", "subscription")):
        await events.remember(
            session,
            provider=PROVIDER,
            kind=kind,
            external_id=_id(obj.get(key)),
            referral_id=referral.id,
            now=now,
        )
    if event_type == "customer.subscription.deleted":
        await events.remember(
            session,
            provider=PROVIDER,
            kind="subscription",
            external_id=_str(obj.get("id")),
            referral_id=referral.id,
            now=now,
        )
    detail = await _APPLY[event_type](session, referral, obj, now)
    return await _finish(session, event_id, event_type, referral.id, detail)


async def _finish(
    session: AsyncSession,
    event_id: str,
    event_type: str,
    referral_id: int | None,
    detail: str | None,
) -> StripeResult:
    status = IntegrationEventStatus.PROCESSED if referral_id else IntegrationEventStatus.IGNORED
    if referral_id is not None and detail is not None:
        status = IntegrationEventStatus.IGNORED
    await events.finish(
        session,
        provider=PROVIDER,
        event_id=event_id,
        status=status,
        result={"referral_id": referral_id},
        detail=detail,
    )
    return StripeResult(
        status=status,
        event_id=event_id,
        event_type=event_type,
        replayed=False,
        referral_id=referral_id,
        detail=detail,
    )


# --- matching ---------------------------------------------------------------------------------


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _id(value: Any) -> str | None:
    """A Stripe reference: an id string, or an expanded object's ``id``."""
    if isinstance(value, dict):
        return _str(value.get("id"))
    return _str(value)


def _promotion_refs(obj: dict[str, Any]) -> list[Any]:
    """Promotion codes in an object's discounts: ids (``promo_…``) or expanded objects."""
    found: list[Any] = []
    discounts = obj.get("discounts")
    if isinstance(discounts, list):
        for item in discounts:
            if isinstance(item, dict) and item.get("promotion_code"):
                found.append(item["promotion_code"])
    discount = obj.get("discount")  # older API versions: a single discount object
    if isinstance(discount, dict) and discount.get("promotion_code"):
        found.append(discount["promotion_code"])
    return found


def _metadata_ids(obj: dict[str, Any]) -> list[str]:
    sources: list[Any] = [obj.get("metadata")]
    for key in ("customer", "subscription"):
        if isinstance(obj.get(key), dict):
            sources.append(obj[key].get("metadata"))
    parent = obj.get("parent")
    if isinstance(parent, dict) and isinstance(parent.get("subscription_details"), dict):
        sources.append(parent["subscription_details"].get("metadata"))
    if isinstance(obj.get("subscription_details"), dict):
        sources.append(obj["subscription_details"].get("metadata"))
    return [
        m["vouch_referral_id"]
        for m in sources
        if isinstance(m, dict) and isinstance(m.get("vouch_referral_id"), str)
    ]


def _emails(obj: dict[str, Any]) -> list[str]:
    candidates = [obj.get("customer_email"), obj.get("receipt_email"), obj.get("email")]
    for key in ("customer_details", "billing_details"):
        if isinstance(obj.get(key), dict):
            candidates.append(obj[key].get("email"))
    if isinstance(obj.get("customer"), dict):
        candidates.append(obj["customer"].get("email"))
    return [c for c in candidates if isinstance(c, str) and "@" in c]


class _Matcher:
    def __init__(
        self,
        session: AsyncSession,
        decode_referral: Callable[[str], int],
        lookup: PromotionLookup | None,
        now: datetime,
    ) -> None:
        self.session = session
        self.decode = decode_referral
        self.lookup = lookup
        self.now = now

    async def match(self, obj: dict[str, Any]) -> int | None:
        for step in (self._by_promotion_code, self._by_metadata, self._by_known, self._by_email):
            found = await step(obj)
            if found is not None:
                return found
        return None

    async def _by_code_text(self, code: str) -> int | None:
        try:
            normalized = redemptions.normalize_redemption_code(code)
        except ValidationFailed:
            return None
        found = await self.session.scalar(
            select(OfferRedemption.referral_id).where(OfferRedemption.code == normalized)
        )
        return int(found) if found is not None else None

    async def _by_promotion_code(self, obj: dict[str, Any]) -> int | None:
        for ref in _promotion_refs(obj):
            promo_id = _id(ref)
            if promo_id:
                known = await events.referral_of(
                    self.session, provider=PROVIDER, kind="promotion_code", external_ids=[promo_id]
                )
                if known is not None:
                    return known
            code = ref.get("code") if isinstance(ref, dict) else None
            if code is None and promo_id and self.lookup is not None:
                code = await self.lookup(promo_id)
            if isinstance(code, str):
                found = await self._by_code_text(code)
                if found is not None:
                    # Known from now on: later events with this code need no API call.
                    await events.remember(
                        self.session,
                        provider=PROVIDER,
                        kind="promotion_code",
                        external_id=promo_id,
                        referral_id=found,
                        now=self.now,
                    )
                    return found
        return None

    async def _by_metadata(self, obj: dict[str, Any]) -> int | None:
        for raw in _metadata_ids(obj):
            try:
                return self.decode(raw)
            except ValidationFailed:
                continue
        return None

    async def _by_known(self, obj: dict[str, Any]) -> int | None:
        ids = [i for i in (_id(obj.get("subscription")), _id(obj.get("customer"))) if i]
        if obj.get("object") == "subscription" and _str(obj.get("id")):
            ids.insert(0, obj["id"])
        for kind in ("subscription", "customer"):
            found = await events.referral_of(
                self.session, provider=PROVIDER, kind=kind, external_ids=ids
            )
            if found is not None:
                return found
        return None

    async def _by_email(self, obj: dict[str, Any]) -> int | None:
        keys = [normalize_email(e) for e in _emails(obj)]
        found = await latest_referral_of_people(self.session, keys)
        return found.id if found is not None else None


# --- applying ---------------------------------------------------------------------------------


def _amount(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValidationFailed(f"{key} must be a non-negative integer", field=f"data.object.{key}")
    return value


def _currency(obj: dict[str, Any]) -> str:
    value = obj.get("currency")
    if not isinstance(value, str):
        raise ValidationFailed("currency is missing", field="data.object.currency")
    return value.upper()


def _when(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, tz=UTC)
    return fallback


async def _invoice_paid(
    session: AsyncSession, referral: Referral, obj: dict[str, Any], now: datetime
) -> str | None:
    amount = _amount(obj, "amount_paid")
    if amount == 0:
        return "invoice paid nothing (e.g. a free trial)"
    transitions = obj.get("status_transitions")
    paid_at = transitions.get("paid_at") if isinstance(transitions, dict) else None
    await revenue.record_revenue(
        session,
        RevenueData(
            external_id=_str(obj.get("id")) or "",
            kind=RevenueKind.RECURRING,
            amount_minor=amount,
            currency=_currency(obj),
            occurred_at=_when(paid_at or obj.get("created"), now),
            referral_id=referral.id,
            data={
                "stripe_charge": _id(obj.get("charge")),
                "stripe_payment_intent": _id(obj.get("payment_intent")),
            },
        ),
        source=SOURCE,
        actor="stripe:invoice.paid",
        now=now,
    )
    return None


async def _charged(session: AsyncSession, charge: dict[str, Any]) -> RevenueEvent | None:
    """The revenue event a charge paid: its invoice, or the payment recorded with it."""
    keys = [k for k in (_id(charge.get("invoice")), _id(charge.get("payment_intent"))) if k]
    conditions = [RevenueEvent.data["stripe_charge"].astext == (_str(charge.get("id")) or "")]
    if keys:
        conditions.append(RevenueEvent.external_id.in_(keys))
    if _id(charge.get("payment_intent")):
        conditions.append(
            RevenueEvent.data["stripe_payment_intent"].astext == _id(charge.get("payment_intent"))
        )
    found: RevenueEvent | None = await session.scalar(
        select(RevenueEvent)
        .where(RevenueEvent.kind != RevenueKind.REFUND, or_(*conditions))
        .order_by(RevenueEvent.id)
        .limit(1)
    )
    return found


async def _charge_refunded(
    session: AsyncSession, referral: Referral, obj: dict[str, Any], now: datetime
) -> str | None:
    charge_id = _str(obj.get("id")) or ""
    currency = _currency(obj)
    charged = await _charged(session, obj)
    refunded_total = _amount(obj, "amount_refunded")
    already = await session.scalars(
        select(RevenueEvent.amount_minor).where(
            RevenueEvent.kind == RevenueKind.REFUND,
            RevenueEvent.data["stripe_charge"].astext == charge_id,
        )
    )
    # Refunds are cumulative on the charge: record what this event adds (partial refunds too).
    delta = refunded_total - sum(already)
    if delta <= 0:
        return "refund already recorded"
    await revenue.record_revenue(
        session,
        RevenueData(
            external_id=f"{charge_id}:refunded:{refunded_total}",
            kind=RevenueKind.REFUND,
            amount_minor=delta,
            currency=currency,
            occurred_at=now,
            referral_id=referral.id,
            refunds_external_id=charged.external_id if charged else None,
            data={"stripe_charge": charge_id},
        ),
        source=SOURCE,
        actor="stripe:charge.refunded",
        now=now,
    )
    return None


async def _checkout_completed(
    session: AsyncSession, referral: Referral, obj: dict[str, Any], now: datetime
) -> str | None:
    session_id = _str(obj.get("id")) or ""
    amount = _amount(obj, "amount_total") if obj.get("amount_total") is not None else 0
    currency = _currency(obj) if obj.get("currency") else "USD"
    occurred_at = min(_when(obj.get("created"), now), now)
    code = await session.scalar(
        select(OfferRedemption.code).where(OfferRedemption.referral_id == referral.id)
    )
    detail = None
    if code is None:
        detail = "the referral has no redemption code to record the conversion against"
    else:
        await redemptions.record_conversion(
            session,
            redemptions.validate_conversion(
                redemption_code=code,
                kind="purchase",
                external_ref=session_id,
                amount_minor=amount,
                currency=currency,
                occurred_at=occurred_at,
                now=now,
            ),
        )
    if obj.get("mode") == "payment" and obj.get("payment_status") == "paid" and amount > 0:
        # One-off payments have no invoice: the session is the charge.
        await revenue.record_revenue(
            session,
            RevenueData(
                external_id=session_id,
                kind=RevenueKind.ONE_TIME,
                amount_minor=amount,
                currency=currency,
                occurred_at=occurred_at,
                referral_id=referral.id,
                data={"stripe_payment_intent": _id(obj.get("payment_intent"))},
            ),
            source=SOURCE,
            actor="stripe:checkout.session.completed",
            now=now,
        )
    return detail


async def _subscription_deleted(
    session: AsyncSession, referral: Referral, obj: dict[str, Any], now: datetime
) -> str | None:
    if referral.status != ReferralStatus.WON:
        return f"a {referral.status} referral cannot churn"
    await lifecycle.transition(
        session,
        referral.id,
        ReferralStatus.CHURNED,
        source=SOURCE,
        actor="stripe:customer.subscription.deleted",
        now=now,
        detail={"subscription": _str(obj.get("id"))},
    )
    return None


_APPLY: dict[
    str,
    Callable[[AsyncSession, Referral, dict[str, Any], datetime], Awaitable[str | None]],
] = {
    "invoice.paid": _invoice_paid,
    "charge.refunded": _charge_refunded,
    "checkout.session.completed": _checkout_completed,
    "customer.subscription.deleted": _subscription_deleted,
}


# --- creating each friend's promotion code -----------------------------------------------------


async def queue_promotion_codes(session: AsyncSession, *, now: datetime, limit: int = 100) -> int:
    """Queue the creation of a Stripe promotion code for each live, unredeemed redemption code
    that has none and none queued; how many were queued."""
    has_code = select(ExternalRef.id).where(
        ExternalRef.provider == PROVIDER,
        ExternalRef.kind == PROMOTION_JOB,
        ExternalRef.referral_id == OfferRedemption.referral_id,
    )
    has_job = select(IntegrationJob.id).where(
        IntegrationJob.provider == PROVIDER,
        IntegrationJob.kind == PROMOTION_JOB,
        IntegrationJob.object_id == cast(OfferRedemption.id, String),
    )
    ids = list(
        await session.scalars(
            select(OfferRedemption.id)
            .where(
                OfferRedemption.redeemed_at.is_(None),
                or_(OfferRedemption.expires_at.is_(None), OfferRedemption.expires_at > now),
                ~has_code.exists(),
                ~has_job.exists(),
            )
            .order_by(OfferRedemption.id)
            .limit(limit)
        )
    )
    for redemption_id in ids:
        await events.enqueue_job(
            session, provider=PROVIDER, kind=PROMOTION_JOB, object_id=str(redemption_id), now=now
        )
    return len(ids)


async def create_promotion_code(
    session: AsyncSession,
    job: IntegrationJob,
    create: PromotionCreator,
    *,
    now: datetime,
    encode_referral: Callable[[int], str],
) -> str | None:
    """Run one queued creation: the new promotion code's id, or None (retried later, dead, or
    nothing to do because the code was redeemed or expired meanwhile)."""
    redemption = await session.get(OfferRedemption, int(job.object_id))
    if (
        redemption is None
        or redemption.redeemed_at is not None
        or (redemption.expires_at is not None and redemption.expires_at <= now)
    ):
        events.job_done(job, now=now)
        return None
    try:
        promo_id = await create(
            NewPromotionCode(
                code=redemption.code,
                referral_id=encode_referral(redemption.referral_id),
                expires_at=redemption.expires_at,
                # Stripe answers a repeated create with the first result
                idempotency_key=f"vouch-promotion-code-{redemption.id}",
            )
        )
    except StripeUnavailable as exc:
        events.job_retry(job, error=str(exc), now=now)
        return None
    except StripeRefused as exc:
        events.job_dead(job, error=str(exc), now=now)
        return None
    await events.remember(
        session,
        provider=PROVIDER,
        kind=PROMOTION_JOB,
        external_id=promo_id,
        referral_id=redemption.referral_id,
        now=now,
    )
    events.job_done(job, now=now)
    return promo_id
