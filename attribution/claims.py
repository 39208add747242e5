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

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution import fraud, lifecycle, moderation, webhooks
from vouch.attribution.clicks import latest_click
from vouch.core.emails import check_email, normalize_email
from vouch.core.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from vouch.core.security import erased_key
from vouch.models import (
    Advocate,
    AttributionDecision,
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
    ReferralStatus,
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
    raw = "".join(
        secrets.choice(REDEMPTION_ALPHABET)
        for _ in range(REDEMPTION_GROUPS * REDEMPTION_GROUP_SIZE)
    )
    return "-".join(
        raw[i : i + REDEMPTION_GROUP_SIZE] for i in range(0, len(raw), REDEMPTION_GROUP_SIZE)
    )


async def hit_rate_limit(session: AsyncSession, *, bucket: str, limit: int, now: datetime) -> int:
    """Count one hit in ``bucket``'s current hour across all workers; raise past ``limit``.

    The caller commits the hit on its own, so refused and failed attempts count too."""
    window_start = now.replace(minute=0, second=0, microsecond=0)
    stmt = insert(RateLimitHit).values(bucket=bucket[:128], window_start=window_start, hits=1)
    hits = await session.scalar(
        stmt.on_conflict_do_update(
            index_elements=[RateLimitHit.bucket, RateLimitHit.window_start],
            set_={"hits": RateLimitHit.hits + 1},
        ).returning(RateLimitHit.hits)
    )
    assert isinstance(hits, int)
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


async def _program_for_claim(session: AsyncSession, program_id: int, now: datetime) -> Program:
    program = await session.get(Program, program_id)
    if program is None or program.status == ProgramStatus.DRAFT:
        raise NotFound("This offer does not exist.", field="code")
    if program.status != ProgramStatus.ACTIVE or (
        program.offer_expires_at is not None and program.offer_expires_at <= now
    ):
        raise OfferUnavailable("This offer is not available any more.", field="code")
    return program


async def _choose_link(
    session: AsyncSession, program: Program, ctx: ClaimContext, now: datetime
) -> tuple[ReferralLink, Advocate, AttributionChoice]:
    """Apply the program's rule to the cookie touches; fall back to the URL/typed link."""
    choice: AttributionChoice | None = None
    touch = choose_touch(
        ctx.touches,
        program_id=program.id,
        model=program.attribution_model,
        window_days=program.attribution_window_days,
        now=now,
    )
    if touch is not None:
        choice = AttributionChoice(
            touch.link_id,
            AttributionEvidence.CLICK,
            f"{program.attribution_model} of {len(ctx.touches)} touch(es) in the cookie",
        )
    candidates = [choice] if choice is not None else []
    evidence = (
        AttributionEvidence.CODE_ENTRY
        if ctx.source == ReferralSource.CODE_ENTRY
        else AttributionEvidence.FORM
    )
    candidates.append(AttributionChoice(ctx.link_id, evidence, "link the claim was made on"))
    for candidate in candidates:
        row = (
            await session.execute(
                select(ReferralLink, Advocate)
                .join(Advocate, Advocate.id == ReferralLink.advocate_id)
                .where(
                    ReferralLink.id == candidate.link_id,
                    ReferralLink.program_id == program.id,
                    ReferralLink.status == LinkStatus.ACTIVE,
                    Advocate.erased_at.is_(None),
                )
            )
        ).one_or_none()
        if row is not None:
            return row[0], row[1], candidate
    raise NotFound("This offer does not exist.", field="code")


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


async def _create_referral(
    session: AsyncSession,
    *,
    program: Program,
    link: ReferralLink,
    claim: ClaimInput,
    ctx: ClaimContext,
    click: Click | None,
    now: datetime,
) -> Referral | None:
    """Insert the referral unless this person already has one in the program (then ``None``).

    Concurrent identical claims serialise on the (program_id, person_key) unique index."""
    return await session.scalar(
        insert(Referral)
        .values(
            program_id=program.id,
            advocate_id=link.advocate_id,
            link_id=link.id,
            person_key=claim.person_key,
            email=claim.email,
            name=claim.name,
            company=claim.company,
            status=ReferralStatus.LEAD,
            source=ctx.source,
            flags=[],
            moderation="clear",
            consent=True,
            click_id=click.id if click is not None else None,
            channel=click.channel if click is not None and click.channel else link.channel,
            visitor_id=ctx.visitor_id,
            ip_hash=ctx.ip_hash,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Referral.program_id, Referral.person_key])
        .returning(Referral)
    )


async def _issue_redemption(
    session: AsyncSession, *, program: Program, referral_id: int, now: datetime
) -> tuple[int, str, datetime | None]:
    expires_at = now + timedelta(days=program.redemption_ttl_days)
    if program.offer_expires_at is not None:
        expires_at = min(expires_at, program.offer_expires_at)
    for _ in range(5):  # 80 random bits: a collision is astronomically unlikely, still handled
        code = new_redemption_code()
        redemption_id = await session.scalar(
            insert(OfferRedemption)
            .values(
                referral_id=referral_id,
                program_id=program.id,
                code=code,
                issued_at=now,
                expires_at=expires_at,
            )
            .on_conflict_do_nothing(index_elements=[OfferRedemption.code])
            .returning(OfferRedemption.id)
        )
        if redemption_id is not None:
            return redemption_id, code, expires_at
    raise RuntimeError("could not issue a unique redemption code")  # pragma: no cover


async def _screen_and_announce(
    session: AsyncSession,
    *,
    referral: Referral,
    advocate: Advocate,
    click: Click | None,
    ctx: ClaimContext,
    now: datetime,
) -> None:
    """Flag what looks like fraud (held for moderation, never dropped), then record the first
    lifecycle event, its webhook and the signup rewards, which stay pending while held."""
    flags = await fraud.assess_referral(
        session, referral, click=click, advocate=advocate, now=now, landed_at=ctx.landed_at
    )
    await moderation.flag_referral(session, referral, flags, now=now)
    await lifecycle.on_referral_created(
        session, referral, source=str(ctx.source), actor=ACTOR, now=now
    )


async def _evidence_click(
    session: AsyncSession, link: ReferralLink, ctx: ClaimContext
) -> Click | None:
    """The visitor's latest click on the credited link; if it is still buffered (the claim
    followed the page load within the flush period), have it written first."""
    click = await latest_click(session, link_id=link.id, visitor_id=ctx.visitor_id)
    if click is None and ctx.visitor_id and ctx.await_clicks is not None:
        await ctx.await_clicks()
        click = await latest_click(session, link_id=link.id, visitor_id=ctx.visitor_id)
    return click


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
    """Create (or find) the friend's referral and its redemption code. Flushes, never commits.

    With ``secret``, a person whose data was erased is still recognised (their person key was
    replaced by a keyed hash), so erasure cannot be used to claim the offer twice."""
    program = await _program_for_claim(session, ctx.program_id, now)
    if secret is not None and await session.scalar(
        select(Referral.id).where(
            Referral.program_id == program.id,
            Referral.person_key == erased_key(secret, claim.person_key),
        )
    ):
        raise AlreadyClaimed("This email address has already claimed this offer.", field="email")
    link, advocate, choice = await _choose_link(session, program, ctx, now)
    if advocate.email_normalized and advocate.email_normalized == claim.person_key:
        raise SelfReferral("You can't claim an offer with your own referral link.", field="email")
    click = await _evidence_click(session, link, ctx)
    click_id = click.id if click is not None else None
    referral = await _create_referral(
        session, program=program, link=link, claim=claim, ctx=ctx, click=click, now=now
    )
    if referral is None:
        return await _existing_claim(session, program.id, claim.person_key)
    referral_id = referral.id
    session.add(
        AttributionDecision(
            referral_id=referral_id,
            advocate_id=link.advocate_id,
            link_id=link.id,
            click_id=click_id,
            rule=program.attribution_model,
            rules_version=program.rules_version,
            window_days=program.attribution_window_days,
            evidence=choice.evidence,
            actor=ACTOR,
            reason=choice.reason,
            is_current=True,
            decided_at=now,
        )
    )
    redemption_id, code, expires_at = await _issue_redemption(
        session, program=program, referral_id=referral_id, now=now
    )
    await session.flush()
    await _screen_and_announce(
        session, referral=referral, advocate=advocate, click=click, ctx=ctx, now=now
    )
    return ClaimResult(
        referral_id=referral_id,
        redemption_id=redemption_id,
        redemption_code=code,
        expires_at=expires_at,
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
