"""Claiming the referred-side offer: one referral (lead) per person per program, attributed to
a link by the program's first- or last-touch rule, with a redemption code issued once.

The claim is one transaction at the edge: referral, its first event, the attribution decision
and the redemption are written together. Fraud flagging and reward triggers are meant to be
called from ``claim_offer`` right after ``_create_referral`` (see the marked place).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution import fraud, lifecycle, rewards, webhooks
from vouch.attribution.clicks import latest_click
from vouch.core.emails import check_email, normalize_email
from vouch.core.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from vouch.core.raw_select import run_raw
from vouch.core.security import erased_key
from vouch.core.snapshot import snapshot_class
from vouch.models import (
    Click,
    OfferRedemption,
    Program,
    RateLimitHit,
    Referral,
    ReferralLink,
)
from vouch.models.enums import (
    AttributionEvidence,
    AttributionModel,
    LinkStatus,
    ProgramStatus,
    ReferralSource,
    RewardTrigger,
)

ACTOR = "landing"
NAME_MAX = 200
COMPANY_MAX = 200
# Redemption codes: 16 symbols from a 32-letter unambiguous alphabet = 80 random bits.
REDEMPTION_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
REDEMPTION_GROUPS = 4
REDEMPTION_GROUP_SIZE = 4
RATE_WINDOW = timedelta(hours=1)
# A friend is re-sent their code at most once per window, however often it is asked for.
RESEND_PER_WINDOW = 1
EMAIL_REQUIRED = "Please enter your email address."


class SelfReferral(DomainError):
    code = ErrorCode.SELF_REFERRAL


class OfferUnavailable(DomainError):
    code = ErrorCode.INACTIVE


class RateLimited(DomainError):
    code = ErrorCode.RATE_LIMITED
    retry_after_seconds: int = int(RATE_WINDOW.total_seconds())


@dataclass(frozen=True, slots=True)
class Touch:
    """One arrival through a link, as remembered by the signed attribution cookie."""

    link_id: int
    program_id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class ClaimInput:
    """A validated claim. Build it with ``validate_claim``."""

    email: str
    person_key: str
    name: str | None
    company: str | None


@dataclass(frozen=True, slots=True)
class ClaimContext:
    """Where the claim came from: the link in the URL (or typed code), cookie touches, visitor."""

    program_id: int
    link_id: int
    source: ReferralSource
    touches: tuple[Touch, ...] = ()
    visitor_id: str | None = None
    ip_hash: str | None = None
    # When the page the claim was posted from was served (from the form's signed token): the
    # landing that led to the claim, even while its click still waits in a worker's buffer.
    landed_at: datetime | None = None
    # Writes the clicks this worker still buffers: called when the visitor's click is not in
    # the table yet, so the decision can name it.
    await_clicks: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True, slots=True)
class ClaimResult:
    referral_id: int
    redemption_id: int
    redemption_code: str
    expires_at: datetime | None
    created: bool


@dataclass(frozen=True, slots=True)
class AttributionChoice:
    link_id: int
    evidence: AttributionEvidence
    reason: str


def _clean_text(value: str | None, *, field: str, limit: int) -> str | None:
    if value is None:
        return None
    cleaned = " ".join(value.split())
    if not cleaned:
        return None
    if len(cleaned) > limit or not cleaned.isprintable():
        raise ValidationFailed(f"{field} must be at most {limit} printable characters", field=field)
    return cleaned


def validate_claim(
    *, email: str | None, name: str | None, company: str | None, consent: bool
) -> ClaimInput:
    """Check the form before anything is written; raises ``ValidationFailed``."""
    if not email or not email.strip():
        raise ValidationFailed(EMAIL_REQUIRED, field="email")
    canonical = check_email(email)
    clean_name = _clean_text(name, field="name", limit=NAME_MAX)
    clean_company = _clean_text(company, field="company", limit=COMPANY_MAX)
    if not consent:
        raise ValidationFailed("Please agree to the terms to claim the offer.", field="consent")
    return ClaimInput(
        email=canonical,
        person_key=normalize_email(canonical),
        name=clean_name,
        company=clean_company,
    )


def choose_touch(
    touches: tuple[Touch, ...],
    *,
    program_id: int,
    model: str,
    window_days: int,
    now: datetime,
) -> Touch | None:
    """The touch that wins under the program's rule, among this program's touches in window."""
    horizon = now - timedelta(days=window_days)
    eligible = sorted(
        (t for t in touches if t.program_id == program_id and horizon <= t.at <= now),
        key=lambda t: t.at,
    )
    if not eligible:
        return None
    return eligible[0] if model == AttributionModel.FIRST_TOUCH else eligible[-1]


def new_redemption_code() -> str:
    """16 characters of a 32-letter alphabet (80 random bits), in groups: one draw of the
    whole number, written in base 32 (a draw per character cost ten times the CPU)."""
    length, base = REDEMPTION_GROUPS * REDEMPTION_GROUP_SIZE, len(REDEMPTION_ALPHABET)
    number = secrets.randbelow(base**length)
    digits = []
    for _ in range(length):
        number, digit = divmod(number, base)
        digits.append(REDEMPTION_ALPHABET[digit])
    raw = "".join(digits)
    return "-".join(
        raw[i : i + REDEMPTION_GROUP_SIZE] for i in range(0, len(raw), REDEMPTION_GROUP_SIZE)
    )


# One hit in a bucket's window, counted across workers by the row's upsert.
_HIT = """
INSERT INTO rate_limit_hits (bucket, window_start, hits) VALUES ($1, $2, 1)
ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limit_hits.hits + 1
RETURNING hits
"""


async def hit_rate_limit(session: AsyncSession, *, bucket: str, limit: int, now: datetime) -> int:
    """Count one hit in ``bucket``'s current hour across all workers; raise past ``limit``.

    The hit counts whatever happens next, so refused and failed attempts count too: first in
    a session it runs on its own, in autocommit (no BEGIN and COMMIT round trips); in an open
    transaction it joins it, and the caller commits the hit on its own before going on."""
    window_start = now.replace(minute=0, second=0, microsecond=0)
    rows = await run_raw(session, _HIT, [bucket[:128], window_start], standalone=True)
    hits = int(rows[0][0])
    if hits == 1:
        # A new window: forget windows that can no longer matter, so the table stays small.
        await session.execute(
            delete(RateLimitHit).where(RateLimitHit.window_start < window_start - RATE_WINDOW)
        )
    if hits > limit:
        refused = RateLimited(
            "Too many attempts from your network. Please try again in an hour.", field=None
        )
        # The window is a clock hour: the caller may retry when it turns.
        refused.retry_after_seconds = max(
            1, int((window_start + RATE_WINDOW - now).total_seconds())
        )
        raise refused
    return hits


async def _existing_claim(session: AsyncSession, program_id: int, person_key: str) -> ClaimResult:
    row = (
        await session.execute(
            select(
                Referral.id, OfferRedemption.id, OfferRedemption.code, OfferRedemption.expires_at
            )
            .join(OfferRedemption, OfferRedemption.referral_id == Referral.id)
            .where(Referral.program_id == program_id, Referral.person_key == person_key)
        )
    ).one()
    return ClaimResult(
        referral_id=row[0],
        redemption_id=row[1],
        redemption_code=row[2],
        expires_at=row[3],
        created=False,
    )


async def _issue_redemption(
    session: AsyncSession,
    *,
    program_id: int,
    referral_id: int,
    expires_at: datetime | None,
    now: datetime,
) -> tuple[int, str]:
    for _ in range(5):  # 80 random bits: a collision is astronomically unlikely, still handled
        code = new_redemption_code()
        redemption_id = await session.scalar(
            insert(OfferRedemption)
            .values(
                referral_id=referral_id,
                program_id=program_id,
                code=code,
                issued_at=now,
                expires_at=expires_at,
            )
            .on_conflict_do_nothing(index_elements=[OfferRedemption.code])
            .returning(OfferRedemption.id)
        )
        if redemption_id is not None:
            return redemption_id, code
    raise RuntimeError("could not issue a unique redemption code")  # pragma: no cover


# The claim's reads in one statement: the program, whether the person's data was erased, the
# signup reward rules, and each candidate link that is live in the program (the link the claim
# was made on, and the links its cookie touches name) with its advocate and the visitor's latest
# click on it. One row per live candidate link; one row with no link when none is live.
# $1 program, $2 the erased person key (NULL: not checked), $3 candidate link ids, $4 visitor.
_CONTEXT = """
SELECT p.status, p.offer_expires_at, p.attribution_model, p.attribution_window_days,
       p.rules_version, p.redemption_ttl_days, p.settings,
       EXISTS (SELECT 1 FROM referrals WHERE program_id = p.id AND person_key = $2) AS erased,
       (SELECT json_agg(r ORDER BY r.id) FROM reward_rules AS r
        WHERE r.program_id = p.id AND r.trigger = 'signup' AND r.active) AS signup_rules,
       l.id, l.channel, a.id, a.email, a.email_normalized, a.account_domain, a.account_id,
       k.id, k.channel, k.ip_hash, k.user_agent, k.visitor_id, k.occurred_at
FROM programs AS p
LEFT JOIN (referral_links AS l JOIN advocates AS a ON a.id = l.advocate_id AND a.erased_at IS NULL)
    ON l.id = ANY($3::bigint[]) AND l.program_id = p.id AND l.status = 'active'
LEFT JOIN LATERAL (
    SELECT k.id, k.channel, k.ip_hash, k.user_agent, k.visitor_id, k.occurred_at
    FROM clicks AS k WHERE k.link_id = l.id AND k.visitor_id = $4
    ORDER BY k.occurred_at DESC, k.id DESC LIMIT 1
) AS k ON $4 IS NOT NULL
WHERE p.id = $1
"""

_REFERRAL_ROW = snapshot_class(Referral)
_REFERRAL_COLUMNS = ", ".join(column.name for column in Referral.__table__.columns)
# The referral (unless the person has one in the program: then no row), its redemption code and
# its attribution decision, in one statement. Concurrent identical claims serialise on the
# (program_id, person_key) unique index. A redemption code that collides (80 random bits) gives
# NULL and is issued again by the caller.
_CREATE = f"""
WITH referral AS (
    INSERT INTO referrals (program_id, advocate_id, link_id, person_key, email, name, company,
        status, source, flags, moderation, consent, click_id, channel, visitor_id, ip_hash,
        reward_round, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, 'lead', $8, '{{}}', 'clear', true, $9, $10, $11, $12,
        0, $13, $13)
    ON CONFLICT (program_id, person_key) DO NOTHING
    RETURNING {_REFERRAL_COLUMNS}
), redemption AS (
    INSERT INTO offer_redemptions (referral_id, program_id, code, issued_at, expires_at)
    SELECT id, program_id, $14, $13, $15 FROM referral
    ON CONFLICT (code) DO NOTHING
    RETURNING id
), decision AS (
    INSERT INTO attribution_decisions (referral_id, advocate_id, link_id, click_id, rule,
        rules_version, window_days, evidence, actor, reason, is_current, decided_at)
    SELECT id, advocate_id, link_id, click_id, $16, $17, $18, $19, '{ACTOR}', $20, true, $13
    FROM referral
)
SELECT referral.*, (SELECT id FROM redemption) AS redemption_id FROM referral
"""  # noqa: S608


@dataclass(frozen=True, slots=True)
class _Advocate:
    id: int
    email: str | None
    email_normalized: str | None
    account_domain: str | None
    account_id: str | None


@dataclass(frozen=True, slots=True)
class _Click:
    id: int
    channel: str | None
    ip_hash: str | None
    user_agent: str | None
    visitor_id: str | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class _Candidate:
    link_id: int
    channel: str | None
    advocate: _Advocate
    click: _Click | None


@dataclass(frozen=True, slots=True)
class _Context:
    program_id: int
    model: str
    window_days: int
    rules_version: int
    expires_at: datetime | None
    settings: dict[str, Any]
    signup_rules: list[rewards.EngineRule]
    links: dict[int, _Candidate]


async def _context(
    session: AsyncSession, ctx: ClaimContext, person_key: str, now: datetime, secret: str | None
) -> _Context:
    """Read what the claim needs, and refuse it as early as the checks allow."""
    candidates = sorted({ctx.link_id, *(t.link_id for t in ctx.touches)})
    rows = await run_raw(
        session,
        _CONTEXT,
        [
            ctx.program_id,
            erased_key(secret, person_key) if secret is not None else None,
            candidates,
            ctx.visitor_id,
        ],
    )
    if not rows or rows[0][0] == ProgramStatus.DRAFT:
        raise NotFound("This offer does not exist.", field="code")
    status, offer_expires_at, model, window_days, rules_version, ttl_days, settings = rows[0][:7]
    if status != ProgramStatus.ACTIVE or (offer_expires_at is not None and offer_expires_at <= now):
        raise OfferUnavailable("This offer is not available any more.", field="code")
    if rows[0][7]:
        raise AlreadyClaimed("This email address has already claimed this offer.", field="email")
    expires_at = now + timedelta(days=ttl_days)
    if offer_expires_at is not None:
        expires_at = min(expires_at, offer_expires_at)
    links = {
        row[9]: _Candidate(
            row[9],
            row[10],
            _Advocate(*row[11:16]),
            _Click(*row[16:22]) if row[16] is not None else None,
        )
        for row in rows
        if row[9] is not None
    }
    rules = rewards.rule_snapshots(rows[0][8])
    return _Context(
        ctx.program_id, model, window_days, rules_version, expires_at, settings, rules, links
    )


def _choose_link(
    context: _Context, ctx: ClaimContext, now: datetime
) -> tuple[_Candidate, AttributionChoice]:
    """Apply the program's rule to the cookie touches; fall back to the URL/typed link."""
    choices: list[AttributionChoice] = []
    touch = choose_touch(
        ctx.touches,
        program_id=context.program_id,
        model=context.model,
        window_days=context.window_days,
        now=now,
    )
    if touch is not None:
        choices.append(
            AttributionChoice(
                touch.link_id,
                AttributionEvidence.CLICK,
                f"{context.model} of {len(ctx.touches)} touch(es) in the cookie",
            )
        )
    evidence = (
        AttributionEvidence.CODE_ENTRY
        if ctx.source == ReferralSource.CODE_ENTRY
        else AttributionEvidence.FORM
    )
    choices.append(AttributionChoice(ctx.link_id, evidence, "link the claim was made on"))
    for choice in choices:
        candidate = context.links.get(choice.link_id)
        if candidate is not None:
            return candidate, choice
    raise NotFound("This offer does not exist.", field="code")


async def _evidence_click(
    session: AsyncSession, candidate: _Candidate, ctx: ClaimContext
) -> _Click | Click | None:
    """The visitor's latest click on the credited link; if it is still buffered (the claim
    followed the page load within the flush period), have it written first."""
    if candidate.click is not None or not ctx.visitor_id or ctx.await_clicks is None:
        return candidate.click
    await ctx.await_clicks()
    return await latest_click(session, link_id=candidate.link_id, visitor_id=ctx.visitor_id)


class AlreadyClaimed(DomainError):
    code = ErrorCode.DUPLICATE


async def claim_offer(
    session: AsyncSession,
    *,
    claim: ClaimInput,
    ctx: ClaimContext,
    now: datetime,
    secret: str | None = None,
) -> ClaimResult:
    """Create (or find) the friend's referral and its redemption code. Never commits.

    With ``secret``, a person whose data was erased is still recognised (their person key was
    replaced by a keyed hash), so erasure cannot be used to claim the offer twice.

    A new claim costs four prebuilt statements and the reward engine's: the reads, the writes
    (referral, redemption, decision), the fraud counts, and the announcement (flags, first
    event, rollup rows, webhook)."""
    context = await _context(session, ctx, claim.person_key, now, secret)
    candidate, choice = _choose_link(context, ctx, now)
    advocate = candidate.advocate
    if advocate.email_normalized and advocate.email_normalized == claim.person_key:
        raise SelfReferral("You can't claim an offer with your own referral link.", field="email")
    click = await _evidence_click(session, candidate, ctx)
    code = new_redemption_code()
    rows = await run_raw(
        session,
        _CREATE,
        [
            context.program_id,
            advocate.id,
            candidate.link_id,
            claim.person_key,
            claim.email,
            claim.name,
            claim.company,
            str(ctx.source),
            click.id if click is not None else None,
            click.channel if click is not None and click.channel else candidate.channel,
            ctx.visitor_id,
            ctx.ip_hash,
            now,
            code,
            context.expires_at,
            context.model,
            context.rules_version,
            context.window_days,
            str(choice.evidence),
            choice.reason,
        ],
    )
    if not rows:
        return await _existing_claim(session, context.program_id, claim.person_key)
    referral = _REFERRAL_ROW._make(rows[0][:-1])
    redemption_id = rows[0][-1]
    if redemption_id is None:  # the code collided
        redemption_id, code = await _issue_redemption(
            session,
            program_id=context.program_id,
            referral_id=referral.id,
            expires_at=context.expires_at,
            now=now,
        )
    cfg = fraud.FraudSettings.from_settings(context.settings)
    seen = await fraud.counts(session, cfg, referral, advocate_id=advocate.id, click=click, now=now)
    flags = fraud.flags_for(
        cfg, referral, advocate=advocate, click=click, seen=seen, now=now, landed_at=ctx.landed_at
    )
    flags, held = await lifecycle.announce_new_referral(
        session, referral, flags, source=str(ctx.source), actor=ACTOR, now=now
    )
    await rewards.on_referral_event(
        session,
        referral._replace(flags=flags, moderation=held),
        RewardTrigger.SIGNUP,
        now=now,
        rules=context.signup_rules,
        auto_approve=bool(context.settings.get(rewards.AUTO_APPROVE)),
    )
    return ClaimResult(
        referral_id=referral.id,
        redemption_id=redemption_id,
        redemption_code=code,
        expires_at=context.expires_at,
        created=True,
    )


async def request_code_resend(session: AsyncSession, result: ClaimResult, *, now: datetime) -> bool:
    """Ask for an existing claim's code to be sent to the address that claimed it: an
    ``offer.code_resend_requested`` event (outbound webhook, for the customer's ESP). The code
    itself is never shown to whoever asked. At most ``RESEND_PER_WINDOW`` per redemption per
    hour; returns whether an event was written. Flushes, never commits."""
    try:
        await hit_rate_limit(
            session, bucket=f"resend:{result.redemption_id}", limit=RESEND_PER_WINDOW, now=now
        )
    except RateLimited:
        return False
    row = (
        await session.execute(
            select(Referral.email, Referral.program_id, Program.offer_title)
            .join(Program, Program.id == Referral.program_id)
            .where(Referral.id == result.referral_id)
        )
    ).one()
    await webhooks.enqueue(
        session,
        "offer.code_resend_requested",
        {
            "referral_id": result.referral_id,
            "redemption_id": result.redemption_id,
            "program_id": row.program_id,
            "email": row.email,
            "code": result.redemption_code,
            "offer": row.offer_title,
            "expires_at": result.expires_at.isoformat() if result.expires_at else None,
        },
        now=now,
    )
    return True


async def find_landing_link_by_code(
    session: AsyncSession, *, link_id: int, nonce: int
) -> ReferralLink | None:
    """An active link for a typed (cross-device) code."""
    return await session.scalar(
        select(ReferralLink).where(
            ReferralLink.id == link_id,
            ReferralLink.nonce == nonce,
            ReferralLink.status == LinkStatus.ACTIVE,
        )
    )


async def get_redemption_summary(
    session: AsyncSession, redemption_id: int
) -> tuple[OfferRedemption, Program] | None:
    """The redemption and its program, for the "here is your code" page."""
    row = (
        await session.execute(
            select(OfferRedemption, Program)
            .join(Program, Program.id == OfferRedemption.program_id)
            .where(OfferRedemption.id == redemption_id)
        )
    ).one_or_none()
    return (row[0], row[1]) if row is not None else None
