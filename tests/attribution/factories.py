"""Factories for the attribution tests: referrals, clicks and decisions built from the models."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import make_advocate, make_link, make_program
from vouch.attribution import chain, lifecycle
from vouch.core.codes import LinkCodec
from vouch.core.emails import normalize_email
from vouch.models import Advocate, Click, Program, Referral, ReferralLink

_seq = itertools.count(1)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(days: float = 0, **kw: float) -> datetime:
    return T0 + timedelta(days=days, **kw)


async def make_click(
    session: AsyncSession, *, link: ReferralLink, occurred_at: datetime, **overrides: Any
) -> Click:
    values: dict[str, Any] = {
        "link_id": link.id,
        "program_id": link.program_id,
        "occurred_at": occurred_at,
        "channel": link.channel,
        "ip_hash": f"ip{next(_seq)}",
        "user_agent": "Mozilla/5.0",
        "visitor_id": f"v{next(_seq)}",
    }
    values.update(overrides)
    click = Click(**values)
    session.add(click)
    await session.flush()
    return click


async def make_referral(
    session: AsyncSession,
    *,
    program: Program,
    advocate: Advocate,
    link: ReferralLink | None = None,
    created_at: datetime | None = None,
    record: bool = True,
    **overrides: Any,
) -> Referral:
    """A lead as the claim flow would create it, with its first event and decision."""
    n = next(_seq)
    email = overrides.pop("email", f"friend{n}@acme{n}.example")
    now = created_at or T0
    values: dict[str, Any] = {
        "program_id": program.id,
        "advocate_id": advocate.id,
        "link_id": link.id if link else None,
        "person_key": normalize_email(email),
        "email": email,
        "name": f"Friend {n}",
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    referral = Referral(**values)
    session.add(referral)
    await session.flush()
    if record:
        await lifecycle.on_referral_created(
            session, referral, source=referral.source, actor="landing", now=now
        )
        await chain.record_decision(
            session, referral, evidence="click", actor="landing", reason="last click", now=now
        )
    return referral


async def make_world(session: AsyncSession, codec: LinkCodec, **program_overrides: Any):
    program = await make_program(session, **program_overrides)
    advocate = await make_advocate(session)
    link = await make_link(session, codec, advocate=advocate, program=program)
    return program, advocate, link
