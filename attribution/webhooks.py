"""Outbound webhooks: a transactional outbox, Standard Webhooks signing, and a delivery worker.

``enqueue`` writes the event *and* one pending delivery per subscribed endpoint in the caller's
transaction, so an event exists if and only if the change it announces was committed. The
worker (``deliver_due``) claims due deliveries with ``FOR UPDATE SKIP LOCKED`` so several
workers can run side by side, sends them signed, and retries with exponential backoff and full
jitter until ``MAX_ATTEMPTS``, after which the delivery is dead-lettered (status ``dead``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import DateTime, String, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from vouch import __version__
from vouch.attribution.egress import NEUTRAL_FAILURE, EgressPolicy, EgressRefused, pin
from vouch.core import webhook_secrets
from vouch.core.clock import utcnow
from vouch.core.errors import NotFound, ValidationFailed
from vouch.core.ids import public_ids
from vouch.core.paging import Page, paginate
from vouch.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from vouch.models.enums import DeliveryStatus

logger = logging.getLogger("vouch.webhooks")

EVENT_TYPES = frozenset(
    {
        "referral.created",
        "referral.status_changed",
        "referral.moderated",
        "reward.created",
        "reward.approved",
        "reward.fulfilment_requested",
        "reward.fulfilled",
        "reward.voided",
        "reward.review_requested",
        "offer.redeemed",
        # Carries the friend's email and code, for the customer's ESP to deliver.
        "offer.code_resend_requested",
        "conversion.recorded",
        "opportunity.updated",
        "revenue.recorded",
    }
)
SECRET_PREFIX = webhook_secrets.PREFIX
MAX_ATTEMPTS = 8
# Receivers can tell Vouch's deliveries apart (and allow-list them) by this header.
USER_AGENT = f"Vouch-Webhooks/{__version__}"
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=6)
SEND_TIMEOUT_SECONDS = 10.0


# --- signing (Standard Webhooks) -------------------------------------------------------------


def new_secret() -> str:
    return webhook_secrets.new_secret()


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret: its base64 payload, decoded (never the raw text)."""
    return webhook_secrets.secret_key(secret)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_signature(
    secret: str, msg_id: str, timestamp: int, body: bytes, signature_header: str
) -> bool:
    """True if any ``v1,`` signature in the (space-separated) header matches."""
    expected = sign(secret, msg_id, timestamp, body)
    return any(
        hmac.compare_digest(candidate.encode(), expected.encode())
        for candidate in signature_header.split()
        if candidate.startswith("v1,")
    )


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def message_id(event_id: int) -> str:
    """Stable across retries so receivers can deduplicate."""
    return f"msg_{event_id}"


def event_body(event: OutboxEvent) -> bytes:
    """The JSON sent: row ids in the payload become the opaque ids GraphQL and inbound accept
    (the outbox keeps integers; events queued before this rule are sent the same way)."""
    return json.dumps(
        {
            "type": event.event_type,
            "timestamp": event.created_at.isoformat(),
            "data": public_ids(event.payload),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


# --- the outbox --------------------------------------------------------------------------------


def enqueue_ctes(*, event_type: str, payload: str, now: str, source: str | None = None) -> str:
    """The outbox write as two CTEs (``event`` with its ``id``, then ``deliveries``): the event,
    one pending delivery per live endpoint subscribed to its type, and ``dispatched_at`` (the
    deliveries exist from the moment the event does). The arguments are the SQL placeholders
    for the event type, the JSONB payload and the time, so other writes can announce what they
    write in their own statement (a claim does). With ``source`` (a CTE of the same statement),
    one event per row of it, its expressions free to name that CTE's columns. Only placeholders
    and constants are formatted in."""
    row = f"{event_type}, {payload}, {now}, {now}, 0"
    rows = f"SELECT {row} FROM {source}" if source else f"VALUES ({row})"  # noqa: S608
    return f"""
    event AS (
        INSERT INTO outbox_events (event_type, payload, created_at, dispatched_at, mail_attempts)
        {rows}
        RETURNING id, created_at
    ), deliveries AS (
        INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at)
        SELECT event.id, endpoint.id, '{DeliveryStatus.PENDING.value}', 0, event.created_at
        FROM event CROSS JOIN webhook_endpoints AS endpoint
        WHERE endpoint.active
          AND (cardinality(endpoint.event_types) = 0 OR {event_type} = ANY (endpoint.event_types))
    )"""  # noqa: S608


_ENQUEUE = text(
    " ".join(
        (
            "WITH",
            enqueue_ctes(event_type=":event_type", payload=":payload", now=":now"),
            "SELECT id FROM event",
        )
    )
).bindparams(
    bindparam("event_type", type_=String),
    bindparam("payload", type_=JSONB),
    bindparam("now", type_=DateTime(timezone=True)),
)


def payload_json(payload: dict[str, Any]) -> str:
    """A payload as the JSONB parameter of a raw statement (asyncpg takes JSON text). orjson:
    a fifth of ``json.dumps``'s time (PostgreSQL keeps JSONB, not the text); ``json`` for what
    orjson refuses (an integer beyond 64 bits), so nothing that encoded before fails now."""
    try:
        return orjson.dumps(payload).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(payload, separators=(",", ":"))


async def enqueue(
    session: AsyncSession,
    event_type: str,
    payload: dict[str, Any],
    *,
    now: datetime | None = None,
) -> int:
    """Write an outbox event and its pending deliveries in the caller's transaction, in one
    statement; returns the event's id."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    await session.flush()  # what the event announces is written first, as it always was
    event_id = await session.scalar(
        _ENQUEUE, {"event_type": event_type, "payload": payload, "now": now or utcnow()}
    )
    assert event_id is not None
    return int(event_id)


# --- endpoints ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointInput:
    url: str
    event_types: list[str]
    description: str | None = None
    active: bool = True


def _check_endpoint(
    data: EndpointInput, *, production: bool, allowed_private_hosts: Iterable[str] = ()
) -> EndpointInput:
    url = data.url.strip()
    parts = urlsplit(url)
    allowed = ("https",) if production else ("https", "http")
    if parts.scheme not in allowed or not parts.hostname or len(url) > 2048:
        raise ValidationFailed(
            "url must be an absolute " + ("https" if production else "http(s)") + " URL",
            field="url",
        )
    # In every environment; delivery checks again after DNS (attribution.egress).
    try:
        EgressPolicy.allowing(allowed_private_hosts).check_literal(parts.hostname)
    except EgressRefused:
        raise ValidationFailed(
            "url must not point at a loopback, private or link-local address (list a "
            "development receiver in VOUCH_WEBHOOK_ALLOW_PRIVATE_HOSTS)",
            field="url",
        ) from None
    unknown = sorted(set(data.event_types) - EVENT_TYPES)
    if unknown:
        raise ValidationFailed(
            f"unknown event type '{unknown[0][:64]}'; use one of: {', '.join(sorted(EVENT_TYPES))}",
            field="eventTypes",
        )
    description = data.description.strip() if data.description else None
    if description is not None and len(description) > 200:
        raise ValidationFailed("description must be at most 200 characters", field="description")
    return EndpointInput(
        url=url,
        event_types=sorted(set(data.event_types)),
        description=description,
        active=data.active,
    )


async def create_endpoint(
    session: AsyncSession,
    data: EndpointInput,
    *,
    production: bool = False,
    allowed_private_hosts: Iterable[str] = (),
) -> WebhookEndpoint:
    """Register an endpoint with a fresh ``whsec_`` secret (shown to the caller once)."""
    checked = _check_endpoint(
        data, production=production, allowed_private_hosts=allowed_private_hosts
    )
    endpoint = WebhookEndpoint(
        url=checked.url,
        secret=new_secret(),
        event_types=checked.event_types,
        description=checked.description,
        active=checked.active,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint


async def get_endpoint(session: AsyncSession, endpoint_id: int) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound("no such webhook endpoint", field="id")
    return endpoint


async def update_endpoint(
    session: AsyncSession,
    endpoint_id: int,
    data: EndpointInput,
    *,
    rotate_secret: bool = False,
    production: bool = False,
    allowed_private_hosts: Iterable[str] = (),
) -> WebhookEndpoint:
    checked = _check_endpoint(
        data, production=production, allowed_private_hosts=allowed_private_hosts
    )
    endpoint = await get_endpoint(session, endpoint_id)
    endpoint.url = checked.url
    endpoint.event_types = checked.event_types
    endpoint.description = checked.description
    endpoint.active = checked.active
    if rotate_secret:
        endpoint.secret = new_secret()
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, endpoint_id: int) -> None:
    """Delete an endpoint and (by cascade) its delivery log."""
    endpoint = await get_endpoint(session, endpoint_id)
    await session.delete(endpoint)
    await session.flush()


async def list_endpoints(
    session: AsyncSession,
    *,
    first: int,
    after: int | None,
    before: int | None = None,
    from_end: bool = False,
) -> Page[WebhookEndpoint]:
    """Registered endpoints, oldest first."""
    return await paginate(
        session,
        select(WebhookEndpoint),
        key=WebhookEndpoint.id,
        first=first,
        after=after,
        before=before,
        from_end=from_end,
    )


async def list_deliveries(
    session: AsyncSession,
    *,
    endpoint_id: int | None,
    status: str | None,
    first: int,
    after: int | None,
    before: int | None = None,
    from_end: bool = False,
) -> Page[WebhookDelivery]:
    """The delivery log, newest first."""
    stmt = select(WebhookDelivery)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        if status not in {s.value for s in DeliveryStatus}:
            raise ValidationFailed("status must be pending, delivered or dead", field="status")
        stmt = stmt.where(WebhookDelivery.status == status)
    return await paginate(
        session,
        stmt,
        key=WebhookDelivery.id,
        first=first,
        after=after,
        before=before,
        from_end=from_end,
        descending=True,
    )


async def events_by_ids(session: AsyncSession, ids: list[int]) -> dict[int, OutboxEvent]:
    rows = await session.scalars(select(OutboxEvent).where(OutboxEvent.id.in_(ids)))
    return {row.id: row for row in rows}


async def redeliver(session: AsyncSession, delivery_id: int, *, now: datetime) -> WebhookDelivery:
    """Put a dead (or delivered) delivery back in the queue, e.g. after the receiver is fixed."""
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound("no such webhook delivery", field="id")
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now
    await session.flush()
    return delivery


# --- the delivery worker -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendResult:
    status_code: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


Sender = Callable[[str, dict[str, str], bytes], Awaitable[SendResult]]


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Full-jitter exponential backoff: uniform in [base/2, min(cap, base * 2^(n-1))]."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** max(0, attempts - 1)))
    floor = BACKOFF_BASE / 2
    fraction = (rng or random.SystemRandom()).random()
    delay: timedelta = floor + (ceiling - floor) * fraction
    return delay


def httpx_sender(client: Any, policy: EgressPolicy | None = None) -> Sender:
    """A sender posting through an ``httpx.AsyncClient`` (no redirects followed) to the
    address ``policy`` checked (``attribution.egress``). Every failure — a refused address, a
    name that does not resolve, a transport error — is reported as the same neutral reason;
    the detail goes to the server log only."""
    policy = policy or EgressPolicy()

    async def send(url: str, headers: dict[str, str], body: bytes) -> SendResult:
        try:
            pinned = await pin(url, policy)
        except EgressRefused as exc:
            logger.warning("webhook delivery refused: %s", exc)
            return SendResult(status_code=None, error=NEUTRAL_FAILURE)
        extensions = {"sni_hostname": pinned.sni_hostname} if pinned.sni_hostname else {}
        try:
            response = await client.post(
                pinned.url,
                content=body,
                headers={**headers, "host": pinned.host_header},
                timeout=SEND_TIMEOUT_SECONDS,
                follow_redirects=False,
                extensions=extensions,
            )
        except Exception as exc:  # any transport failure is a retryable attempt
            logger.info("webhook delivery failed: %s", type(exc).__name__)
            return SendResult(status_code=None, error=NEUTRAL_FAILURE)
        return SendResult(status_code=response.status_code)

    return send


@dataclass(frozen=True, slots=True)
class WorkerRun:
    delivered: int
    retried: int
    dead: int


async def deliver_due(
    session: AsyncSession,
    send: Sender,
    *,
    now: datetime,
    limit: int = 100,
    rng: random.Random | None = None,
) -> WorkerRun:
    """Send every due pending delivery once. The caller commits after this returns."""
    rows = (
        await session.execute(
            select(WebhookDelivery, WebhookEndpoint, OutboxEvent)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now,
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
            .with_for_update(of=WebhookDelivery, skip_locked=True)
        )
    ).all()
    delivered = retried = dead = 0
    for delivery, endpoint, event in rows:
        body = event_body(event)
        headers = signed_headers(endpoint.secret, message_id(event.id), int(now.timestamp()), body)
        result = await send(endpoint.url, headers, body)
        delivery.attempts += 1
        delivery.last_status_code = result.status_code
        delivery.last_error = result.error if not result.ok else None
        if result.ok:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
            delivered += 1
        elif delivery.attempts >= MAX_ATTEMPTS or not endpoint.active:
            delivery.status = DeliveryStatus.DEAD
            dead += 1
        else:
            delivery.next_attempt_at = now + backoff(delivery.attempts, rng)
            retried += 1
    await session.flush()
    return WorkerRun(delivered=delivered, retried=retried, dead=dead)


async def pending_count(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(WebhookDelivery.status == DeliveryStatus.PENDING)
    )
    return int(count or 0)


async def pause_endpoint_deliveries(session: AsyncSession, endpoint_id: int) -> None:
    """Dead-letter everything still queued for an endpoint (used when it is deactivated)."""
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.DEAD, last_error="endpoint deactivated")
    )
