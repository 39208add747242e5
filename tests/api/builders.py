"""Factories for the attribution rows the API reads (referrals, clicks, redemptions)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.clock import utcnow
from vouch.models import Click, OfferRedemption, Referral, ReferralEvent, ReferralLink

_seq = itertools.count(1)


async def make_referral(session: AsyncSession, *, link: ReferralLink, **overrides: Any) -> Referral:
    n = next(_seq)
    values: dict[str, Any] = {
        "program_id": link.program_id,
        "advocate_id": link.advocate_id,
        "link_id": link.id,
        "person_key": f"friend{n}@example.org",
        "email": f"friend{n}@example.org",
        "name": f"Friend Number{n}",
        "company": f"Company {n}",
    }
    values.update(overrides)
    referral = Referral(**values)
    session.add(referral)
    await session.flush()
    if referral.status in ("won", "churned", "refunded"):
        # A customer's history has its won event (what "customer" counts: docs/REPORTS.md).
        session.add(
            ReferralEvent(
                referral_id=referral.id, to_status="won", at=utcnow(), source="test", actor="test"
            )
        )
        await session.flush()
    return referral


async def make_click(session: AsyncSession, *, link: ReferralLink, **overrides: Any) -> Click:
    values: dict[str, Any] = {
        "link_id": link.id,
        "program_id": link.program_id,
        "occurred_at": utcnow(),
        "ip_hash": "a" * 32,
        "user_agent": "Mozilla/5.0",
        "visitor_id": f"v{next(_seq)}",
    }
    values.update(overrides)
    click = Click(**values)
    session.add(click)
    await session.flush()
    return click


async def make_redemption(
    session: AsyncSession, *, referral: Referral, **overrides: Any
) -> OfferRedemption:
    values: dict[str, Any] = {
        "referral_id": referral.id,
        "program_id": referral.program_id,
        "code": f"OFFER{next(_seq):06d}",
        "issued_at": utcnow(),
        "expires_at": utcnow() + timedelta(days=90),
    }
    values.update(overrides)
    redemption = OfferRedemption(**values)
    session.add(redemption)
    await session.flush()
    return redemption
