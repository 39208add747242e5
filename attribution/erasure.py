"""GDPR erasure: remove personal data, keep the rows that aggregates and ledgers count.

Erased identifiers are replaced by a keyed hash, so an erased person is still deduplicated
(a second signup with the same email stays a duplicate) without the email being stored.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import delete, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution.landing import announce_landing_change
from vouch.core.clock import utcnow
from vouch.core.emails import check_email, normalize_email
from vouch.core.errors import NotFound, ValidationFailed
from vouch.models import (
    Advocate,
    Click,
    ExternalRef,
    OpportunityContact,
    OutboxEvent,
    Referral,
    ReferralLink,
)
from vouch.models.enums import LinkStatus

ERASED_PREFIX = "erased:"


def erased_key(secret: str, value: str) -> str:
    """The stand-in for an erased identifier (a person key or a CRM external id)."""
    digest = hmac.new(
        secret.encode(), f"vouch.erasure.v1:{value}".encode(), hashlib.sha256
    ).hexdigest()
    return ERASED_PREFIX + digest[:40]


@dataclass(frozen=True, slots=True)
class ErasedPerson:
    referrals: int
    clicks: int


async def erase_advocate(session: AsyncSession, advocate_id: int, *, secret: str) -> Advocate:
    """Remove the advocate's personal data and stop their links; idempotent.

    Links, clicks, referrals, rewards and scores stay, so program totals do not change.
    """
    advocate = await session.get(Advocate, advocate_id, with_for_update=True)
    if advocate is None:
        raise NotFound("no such advocate", field="id")
    if advocate.erased_at is not None:
        return advocate
    now = utcnow()
    advocate.external_id = erased_key(secret, advocate.external_id)
    advocate.email = None
    advocate.email_normalized = None
    advocate.first_name = None
    advocate.last_name = None
    advocate.persona = None
    advocate.consent_referral = False
    advocate.consent_marketing = False
    advocate.opted_in_extra_asks = False
    advocate.erased_at = now
    await session.execute(
        update(ReferralLink)
        .where(ReferralLink.advocate_id == advocate_id, ReferralLink.status == LinkStatus.ACTIVE)
        .values(status=LinkStatus.REVOKED, revoked_at=now)
    )
    await session.flush()
    await announce_landing_change(session)  # their links stop resolving everywhere
    await session.refresh(advocate)
    return advocate


async def erase_referred_person(
    session: AsyncSession,
    *,
    secret: str,
    email: str | None = None,
    referral_id: int | None = None,
) -> ErasedPerson:
    """Erase a referred friend, found by email (every program) or by one referral.

    Clears email, name, company, external id, visitor id and IP hash on the referrals, the
    IP hash, user agent and visitor id of the clicks that led to them, and hashes the person
    key wherever it is used, and forgets the billing and CRM objects (a Stripe customer,
    subscription or promotion code) known to be the person's. Statuses, flags, redemptions and
    revenue stay.
    """
    if (email is None) == (referral_id is None):
        raise ValidationFailed("give either an email or a referral id", field="email")
    if email is not None:
        person_key = normalize_email(check_email(email))
        referrals = list(
            await session.scalars(
                select(Referral).where(Referral.person_key == person_key).with_for_update()
            )
        )
        if not referrals:
            raise NotFound("no referral has this email", field="email")
    else:
        referral = await session.get(Referral, referral_id, with_for_update=True)
        if referral is None:
            raise NotFound("no such referral", field="referralId")
        referrals = [referral]
    now = utcnow()
    click_ids = {r.click_id for r in referrals if r.click_id is not None}
    visitor_ids = {r.visitor_id for r in referrals if r.visitor_id}
    keys = {r.person_key for r in referrals if not r.person_key.startswith(ERASED_PREFIX)}
    for r in referrals:
        if not r.person_key.startswith(ERASED_PREFIX):
            r.person_key = erased_key(secret, r.person_key)
        r.email = None
        r.name = None
        r.company = None
        r.external_id = None
        r.visitor_id = None
        r.ip_hash = None
        r.erased_at = r.erased_at or now
    cleared_clicks = 0
    if click_ids or visitor_ids:
        condition = or_(Click.id.in_(click_ids), Click.visitor_id.in_(visitor_ids))
        result = await session.execute(
            update(Click)
            .where(condition)
            .values(ip_hash=None, user_agent=None, visitor_id=None)
            .returning(Click.id)
        )
        cleared_clicks = len(result.all())
    # A code re-send still waiting to go out must not carry the address (or the code) any more.
    await session.execute(
        update(OutboxEvent)
        .where(
            OutboxEvent.event_type == "offer.code_resend_requested",
            OutboxEvent.payload["referral_id"].as_integer().in_([r.id for r in referrals]),
        )
        .values(payload=OutboxEvent.payload.op("-")(literal_column("ARRAY['email', 'code']")))
    )
    for key in keys:
        await session.execute(
            update(OpportunityContact)
            .where(OpportunityContact.person_key == key)
            .values(person_key=erased_key(secret, key))
        )
    await session.execute(
        delete(ExternalRef).where(ExternalRef.referral_id.in_([r.id for r in referrals]))
    )
    await session.flush()
    return ErasedPerson(referrals=len(referrals), clicks=cleared_clicks)
