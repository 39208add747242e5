"""GDPR erasure: remove personal data, keep the rows that aggregates and ledgers count.

What is personal, and how each place is erased, is listed once in ``attribution.personal_data``;
this module finds the subject's rows and applies it. Erased identifiers are replaced by a keyed
hash, so an erased person is still deduplicated (a second signup with the same email stays a
duplicate) without the email being stored. Stored idempotent responses and webhook payloads
that repeat an erased value get the hash too, so a pending delivery sends no personal data.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, delete, func, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution import personal_data as pd
from vouch.attribution.personal_data import Columns, Treatment
from vouch.catalog.landing_cache import announce_landing_change
from vouch.core.clock import utcnow
from vouch.core.emails import check_email, normalize_email
from vouch.core.errors import NotFound, ValidationFailed
from vouch.core.security import ERASED_PREFIX, erased_key
from vouch.core.widget_cache import announce_widget_change
from vouch.models import (
    AdvocacyAction,
    Advocate,
    Ask,
    Click,
    ExternalRef,
    IdempotencyKey,
    OfferRedemption,
    OpportunityContact,
    OutboxEvent,
    Referral,
    ReferralLink,
    RevenueEvent,
    Signal,
)
from vouch.models.enums import LinkStatus


@dataclass(frozen=True, slots=True)
class ErasedPerson:
    referrals: int
    clicks: int


# Values shorter than this are not searched for in stored JSON (they would match unrelated text).
_MIN_SWEEP = 3


def _erase_value(secret: str, treatment: Treatment, value: Any) -> Any:
    if value is None:
        return None
    if treatment is Treatment.NULL:
        return None
    if treatment is Treatment.HASH:
        text_value = str(value)
        return (
            text_value if text_value.startswith(ERASED_PREFIX) else erased_key(secret, text_value)
        )
    return pd.scrub(value)


async def _erase_rows(
    session: AsyncSession,
    columns: Columns,
    where: ColumnElement[bool],
    *,
    secret: str,
    loaded: list[Any] | None = None,
) -> int:
    """Apply ``columns``' treatments to the rows ``where`` selects (or to ``loaded``)."""
    model = next(iter(columns)).class_
    if loaded is None and all(t is Treatment.NULL for t in columns.values()):
        result = await session.execute(
            update(model)
            .where(where)
            .values({c.key: None for c in columns})
            .returning(next(iter(model.__mapper__.primary_key)))
        )
        return len(result.all())
    rows = (
        loaded
        if loaded is not None
        else list(await session.scalars(select(model).where(where).with_for_update()))
    )
    for row in rows:
        for column, treatment in columns.items():
            setattr(row, column.key, _erase_value(secret, treatment, getattr(row, column.key)))
    return len(rows)


async def _sweep_stored_json(
    session: AsyncSession, values: set[str], *, secret: str, referral_ids: Collection[int] = ()
) -> None:
    """Stored JSON that repeats an erased value (an idempotent response, a webhook payload)
    gets its hash instead; registered payload keys of the person's referrals' events too."""
    wanted = {v for v in values if v and len(v) >= _MIN_SWEEP and not v.startswith(ERASED_PREFIX)}
    replacements = {v: erased_key(secret, v) for v in wanted}
    for model, column in (
        (IdempotencyKey, IdempotencyKey.response),
        (OutboxEvent, OutboxEvent.payload),
    ):
        if not wanted:
            break
        text_of = func.lower(cast(column, Text))
        matches = or_(*(func.strpos(text_of, v.lower()) > 0 for v in sorted(wanted)))
        for row in await session.scalars(select(model).where(matches).with_for_update()):
            attr = "response" if model is IdempotencyKey else "payload"
            setattr(row, attr, pd.replace_values(getattr(row, attr), replacements))
    if referral_ids:
        events = await session.scalars(
            select(OutboxEvent)
            .where(
                OutboxEvent.event_type.in_(pd.PAYLOAD_KEYS),
                OutboxEvent.payload["referral_id"].as_integer().in_(referral_ids),
            )
            .with_for_update()
        )
        for event in events:
            payload = dict(event.payload)
            for key in pd.PAYLOAD_KEYS[event.event_type]:
                if key in payload:
                    payload[key] = _erase_value(secret, Treatment.HASH, payload[key])
            event.payload = payload


async def erase_advocate(session: AsyncSession, advocate_id: int, *, secret: str) -> Advocate:
    """Remove the advocate's personal data (``personal_data.ADVOCATE*``) and stop their links;
    idempotent. Links, clicks, referrals, rewards, signals' values and scores stay, so program
    totals do not change.
    """
    advocate = await session.get(Advocate, advocate_id, with_for_update=True)
    if advocate is None:
        raise NotFound("no such advocate", field="id")
    if advocate.erased_at is not None:
        return advocate
    now = utcnow()
    values = {
        advocate.external_id,
        advocate.email or "",
        advocate.first_name or "",
        advocate.last_name or "",
        f"{advocate.first_name or ''} {advocate.last_name or ''}".strip(),
    }
    email_key = advocate.email_normalized
    await _erase_rows(
        session, pd.ADVOCATE, Advocate.id == advocate_id, secret=secret, loaded=[advocate]
    )
    advocate.consent_referral = False
    advocate.consent_marketing = False
    advocate.opted_in_extra_asks = False
    advocate.erased_at = now
    await _erase_rows(
        session, pd.ADVOCATE_SIGNALS, Signal.advocate_id == advocate_id, secret=secret
    )
    await _erase_rows(
        session, pd.ADVOCATE_ACTIONS, AdvocacyAction.advocate_id == advocate_id, secret=secret
    )
    await _erase_rows(session, pd.ADVOCATE_ASKS, Ask.advocate_id == advocate_id, secret=secret)
    if email_key:
        values.add(email_key)
        await _erase_rows(
            session, pd.CONTACTS, OpportunityContact.person_key == email_key, secret=secret
        )
    await _sweep_stored_json(session, values, secret=secret)
    await session.execute(
        update(ReferralLink)
        .where(ReferralLink.advocate_id == advocate_id, ReferralLink.status == LinkStatus.ACTIVE)
        .values(status=LinkStatus.REVOKED, revoked_at=now)
    )
    await session.flush()
    await announce_landing_change(session)  # their links stop resolving everywhere
    await announce_widget_change(session, advocate_id)  # no widget answer kept anywhere
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

    Applies ``personal_data.REFERRAL*`` to their referrals, the clicks that led to them (by
    click and visitor id), their offer redemptions and revenue events, hashes the person key in
    CRM contacts, and rewrites stored responses and webhook payloads. Statuses, flags,
    redemptions (as facts) and revenue amounts stay. The billing and CRM objects known to be the
    person's (a Stripe customer, subscription or promotion code) are forgotten.
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
    ids = {r.id for r in referrals}
    click_ids = {r.click_id for r in referrals if r.click_id is not None}
    visitor_ids = {r.visitor_id for r in referrals if r.visitor_id}
    keys = {r.person_key for r in referrals if not r.person_key.startswith(ERASED_PREFIX)}
    redemptions = list(
        await session.scalars(
            select(OfferRedemption).where(OfferRedemption.referral_id.in_(ids)).with_for_update()
        )
    )
    values: set[str] = set(keys)
    for r in referrals:
        values.update(v for v in (r.email, r.name, r.company, r.external_id) if v)
    for redemption in redemptions:
        values.update(v for v in (redemption.redeemed_by, redemption.order_ref) if v)
    await _erase_rows(session, pd.REFERRAL, Referral.id.in_(ids), secret=secret, loaded=referrals)
    for r in referrals:
        r.erased_at = r.erased_at or now
    await _erase_rows(
        session,
        pd.REFERRAL_REDEMPTIONS,
        OfferRedemption.referral_id.in_(ids),
        secret=secret,
        loaded=redemptions,
    )
    await _erase_rows(
        session, pd.REFERRAL_REVENUE, RevenueEvent.referral_id.in_(ids), secret=secret
    )
    cleared_clicks = 0
    if click_ids or visitor_ids:
        cleared_clicks = await _erase_rows(
            session,
            pd.REFERRAL_CLICKS,
            or_(Click.id.in_(click_ids), Click.visitor_id.in_(visitor_ids)),
            secret=secret,
        )
    for key in keys:
        await _erase_rows(session, pd.CONTACTS, OpportunityContact.person_key == key, secret=secret)
    await _sweep_stored_json(session, values, secret=secret, referral_ids=ids)
    # A code re-send still waiting to go out must not carry the address (or the code) any more.
    await session.execute(
        update(OutboxEvent)
        .where(
            OutboxEvent.event_type == "offer.code_resend_requested",
            OutboxEvent.payload["referral_id"].as_integer().in_(ids),
        )
        .values(payload=OutboxEvent.payload.op("-")(literal_column("ARRAY['email', 'code']")))
    )
    await session.execute(delete(ExternalRef).where(ExternalRef.referral_id.in_(ids)))
    await session.flush()
    return ErasedPerson(referrals=len(referrals), clicks=cleared_clicks)
