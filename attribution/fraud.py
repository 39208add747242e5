"""Fraud rules that flag, never drop: a flagged referral is kept and waits for moderation.

``assess_referral`` is pure reading; the claim flow stores what it returns with
``moderation.flag_referral`` in the same transaction as the referral.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.emails import email_domain, is_disposable, normalize_email
from vouch.models import Advocate, Click, Program, Referral, ReferralLink

SELF_REFERRAL = "self_referral"
SAME_ACCOUNT = "same_account"
SAME_DEVICE = "same_device"
DISPOSABLE_EMAIL = "disposable_email"
VELOCITY_LINK = "velocity_link"
VELOCITY_IP = "velocity_ip"
TOO_FAST = "too_fast"

# Webmail domains say nothing about the company, so they never make a same-domain match.
_FREEMAIL = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "fastmail.com",
        "gmx.com",
        "gmx.de",
        "web.de",
        "mail.com",
    }
)


@dataclass(frozen=True, slots=True)
class FraudSettings:
    """Defaults operators can override in ``Program.settings["fraud"]``."""

    velocity_window_minutes: int = 10
    max_claims_per_link: int = 5
    max_claims_per_ip: int = 3
    min_click_to_signup_seconds: int = 5
    own_visit_lookback_days: int = 30

    @classmethod
    def for_program(cls, program: Program | None) -> FraudSettings:
        raw: Any = (program.settings or {}).get("fraud", {}) if program else {}
        if not isinstance(raw, dict):
            return cls()
        known = {
            k: int(v)
            for k, v in raw.items()
            if k in cls.__dataclass_fields__ and isinstance(v, int)
        }
        return cls(**known)


_VELOCITY = text(
    """
    SELECT
        (SELECT count(*) FROM (
            SELECT 1 FROM referrals WHERE link_id = :link_id AND created_at >= :since
            LIMIT :link_cap) AS recent_on_link),
        (SELECT count(*) FROM (
            SELECT 1 FROM referrals WHERE ip_hash = :ip_hash AND created_at >= :since
            LIMIT :ip_cap) AS recent_from_ip)
    """
).bindparams(
    bindparam("link_id", type_=BigInteger),
    bindparam("ip_hash", type_=String),
    bindparam("since", type_=DateTime(timezone=True)),
    bindparam("link_cap", type_=Integer),
    bindparam("ip_cap", type_=Integer),
)


async def assess_referral(
    session: AsyncSession,
    referral: Referral,
    *,
    click: Click | None,
    advocate: Advocate,
    now: datetime,
    landed_at: datetime | None = None,
) -> list[str]:
    """The fraud flags for a new referral, in a stable order (empty when nothing is suspect).

    ``too_fast`` measures from the landing that led to the claim: the later of its recorded
    click and ``landed_at`` (when the claim form's page was served, signed in the form)."""
    program = await session.get(Program, referral.program_id)
    cfg = FraudSettings.for_program(program)
    flags: list[str] = []
    friend_email = referral.email
    if friend_email:
        if advocate.email_normalized and normalize_email(friend_email) == advocate.email_normalized:
            flags.append(SELF_REFERRAL)
        domain = email_domain(friend_email)
        if (
            advocate.account_domain
            and domain == advocate.account_domain.lower()
            and domain not in _FREEMAIL
        ) or (
            advocate.email
            and domain == email_domain(advocate.email)
            and domain not in _FREEMAIL
            and SELF_REFERRAL not in flags
        ):
            flags.append(SAME_ACCOUNT)
        if is_disposable(friend_email):
            flags.append(DISPOSABLE_EMAIL)
    if (
        referral.external_id
        and advocate.account_id
        and referral.external_id == advocate.account_id
        and SAME_ACCOUNT not in flags
    ):
        flags.append(SAME_ACCOUNT)

    # Same hashed IP and user agent as an earlier visit to the advocate's links from another
    # browser session: typically the advocate previewing their link, then claiming from a
    # private window. The friend's own repeat visits share the visitor id and do not count.
    if click is not None and click.ip_hash and click.user_agent:
        own_links = select(ReferralLink.id).where(ReferralLink.advocate_id == advocate.id)
        shared_device = await session.scalar(
            select(func.count())
            .select_from(Click)
            .where(
                Click.link_id.in_(own_links),
                Click.id != click.id,
                Click.ip_hash == click.ip_hash,
                Click.user_agent == click.user_agent,
                Click.visitor_id.is_distinct_from(click.visitor_id),
                Click.occurred_at >= now - timedelta(days=cfg.own_visit_lookback_days),
                Click.occurred_at <= click.occurred_at,
            )
        )
        if (shared_device or 0) >= 1:
            flags.append(SAME_DEVICE)

    window_start = now - timedelta(minutes=cfg.velocity_window_minutes)
    if referral.link_id is not None or referral.ip_hash:
        # Both counts in one statement, each stopping one past its limit: the screen's cost
        # does not grow with a link's (or an address's) popularity.
        per_link, per_ip = (
            await session.execute(
                _VELOCITY,
                {
                    "link_id": referral.link_id,
                    "ip_hash": referral.ip_hash,
                    "since": window_start,
                    "link_cap": cfg.max_claims_per_link + 1,
                    "ip_cap": cfg.max_claims_per_ip + 1,
                },
            )
        ).one()
        if per_link > cfg.max_claims_per_link:
            flags.append(VELOCITY_LINK)
        if per_ip > cfg.max_claims_per_ip:
            flags.append(VELOCITY_IP)

    landings = [t for t in (click.occurred_at if click else None, landed_at) if t is not None]
    if landings and (now - max(landings)) < timedelta(seconds=cfg.min_click_to_signup_seconds):
        flags.append(TOO_FAST)
    return flags
