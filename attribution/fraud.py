"""Fraud rules that flag, never drop: a flagged referral is kept and waits for moderation.

``assess_referral`` is pure reading; the claim flow stores what it returns with
``moderation.flag_referral`` in the same transaction as the referral.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.emails import email_domain, is_disposable, normalize_email
from vouch.core.raw_select import run_raw
from vouch.models import Advocate, Click, Program, Referral

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
        return cls.from_settings(program.settings if program else None)

    @classmethod
    def from_settings(cls, settings: dict[str, Any] | None) -> FraudSettings:
        """From a program's ``settings`` (its ``fraud`` object; anything not an int is ignored)."""
        raw: Any = (settings or {}).get("fraud", {})
        if not isinstance(raw, dict):
            return cls()
        known = {
            k: int(v)
            for k, v in raw.items()
            if k in cls.__dataclass_fields__ and isinstance(v, int)
        }
        return cls(**known)


class FriendFacts(Protocol):
    """What the rules read of the new referral."""

    @property
    def email(self) -> str | None: ...
    @property
    def external_id(self) -> str | None: ...
    @property
    def link_id(self) -> int | None: ...
    @property
    def ip_hash(self) -> str | None: ...


class AdvocateFacts(Protocol):
    """What the rules read of the credited advocate."""

    @property
    def id(self) -> int: ...
    @property
    def email(self) -> str | None: ...
    @property
    def email_normalized(self) -> str | None: ...
    @property
    def account_domain(self) -> str | None: ...
    @property
    def account_id(self) -> str | None: ...


class ClickFacts(Protocol):
    """What the rules read of the click that led to the claim."""

    @property
    def id(self) -> int: ...
    @property
    def ip_hash(self) -> str | None: ...
    @property
    def user_agent(self) -> str | None: ...
    @property
    def visitor_id(self) -> str | None: ...
    @property
    def occurred_at(self) -> datetime: ...


# Everything the rules count, in one statement, each count stopping where its rule is decided
# (one past a velocity limit; the first shared-device visit), so the screen's cost does not grow
# with a link's, an address's or an advocate's popularity. Counted after the referral is
# written, so the velocity counts include it. The shared-device count runs only for a click with
# an address and a user agent ($6 is NULL otherwise).
_COUNTS = """
SELECT
    (SELECT count(*) FROM (
        SELECT 1 FROM referrals WHERE link_id = $1 AND created_at >= $3 LIMIT $4
    ) AS recent_on_link),
    (SELECT count(*) FROM (
        SELECT 1 FROM referrals WHERE ip_hash = $2 AND created_at >= $3 LIMIT $5
    ) AS recent_from_ip),
    CASE WHEN $6::bigint IS NULL THEN 0 ELSE (SELECT count(*) FROM (
        SELECT 1 FROM clicks AS c
        WHERE c.link_id IN (SELECT id FROM referral_links WHERE advocate_id = $7)
          AND c.id <> $6 AND c.ip_hash = $8 AND c.user_agent = $9
          AND c.visitor_id IS DISTINCT FROM $10::varchar
          AND c.occurred_at >= $11 AND c.occurred_at <= $12
        LIMIT 1
    ) AS shared_device) END
"""


@dataclass(frozen=True, slots=True)
class Counts:
    recent_on_link: int
    recent_from_ip: int
    shared_device: int


async def counts(
    session: AsyncSession,
    cfg: FraudSettings,
    referral: FriendFacts,
    *,
    advocate_id: int,
    click: ClickFacts | None,
    now: datetime,
) -> Counts:
    """What the history-based rules need to know, in one prebuilt statement."""
    device = click if click is not None and click.ip_hash and click.user_agent else None
    rows = await run_raw(
        session,
        _COUNTS,
        [
            referral.link_id,
            referral.ip_hash,
            now - timedelta(minutes=cfg.velocity_window_minutes),
            cfg.max_claims_per_link + 1,
            cfg.max_claims_per_ip + 1,
            device.id if device is not None else None,
            advocate_id,
            device.ip_hash if device is not None else None,
            device.user_agent if device is not None else None,
            device.visitor_id if device is not None else None,
            now - timedelta(days=cfg.own_visit_lookback_days),
            device.occurred_at if device is not None else None,
        ],
    )
    on_link, from_ip, shared = rows[0]
    return Counts(int(on_link), int(from_ip), int(shared))


def flags_for(
    cfg: FraudSettings,
    referral: FriendFacts,
    *,
    advocate: AdvocateFacts,
    click: ClickFacts | None,
    seen: Counts,
    now: datetime,
    landed_at: datetime | None = None,
) -> list[str]:
    """The fraud flags for a new referral, in a stable order (empty when nothing is suspect).

    ``too_fast`` measures from the landing that led to the claim: the later of its recorded
    click and ``landed_at`` (when the claim form's page was served, signed in the form)."""
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
    if seen.shared_device >= 1:
        flags.append(SAME_DEVICE)
    if referral.link_id is not None or referral.ip_hash:
        if seen.recent_on_link > cfg.max_claims_per_link:
            flags.append(VELOCITY_LINK)
        if seen.recent_from_ip > cfg.max_claims_per_ip:
            flags.append(VELOCITY_IP)
    landings = [t for t in (click.occurred_at if click else None, landed_at) if t is not None]
    if landings and (now - max(landings)) < timedelta(seconds=cfg.min_click_to_signup_seconds):
        flags.append(TOO_FAST)
    return flags


async def assess_referral(
    session: AsyncSession,
    referral: Referral,
    *,
    click: Click | None,
    advocate: Advocate,
    now: datetime,
    landed_at: datetime | None = None,
) -> list[str]:
    """The fraud flags for a referral already written (its program's settings are read)."""
    program = await session.get(Program, referral.program_id)
    cfg = FraudSettings.for_program(program)
    seen = await counts(session, cfg, referral, advocate_id=advocate.id, click=click, now=now)
    return flags_for(
        cfg, referral, advocate=advocate, click=click, seen=seen, now=now, landed_at=landed_at
    )
