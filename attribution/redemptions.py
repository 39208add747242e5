"""Redeeming the referred-side offer exactly once, and conversions reported against it.

Redemption is a single conditional UPDATE: of any number of concurrent attempts exactly one
finds ``redeemed_at IS NULL``; the rest are told why they were refused. Retries of the same
request carry an idempotency key and get the first answer back instead of a refusal.
Conversions are idempotent on their natural key (referral, kind, external reference).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.access import idempotency
from vouch.attribution import lifecycle, webhooks
from vouch.core.clock import utcnow
from vouch.core.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from vouch.core.money import check_amount, check_currency
from vouch.models import Conversion, OfferRedemption, Program, Referral
from vouch.models.enums import ConversionKind, ReferralStatus

CODE_MAX = 32
REF_MAX = 128
REDEEM_SCOPE = "redeem_offer"
CONVERSION_SCOPE = "record_conversion"


class AlreadyRedeemed(DomainError):
    code = ErrorCode.ALREADY_REDEEMED


class RedemptionExpired(DomainError):
    code = ErrorCode.EXPIRED


@dataclass(frozen=True, slots=True)
class RedeemRequest:
    code: str
    redeemed_by: str
    order_ref: str | None = None


@dataclass(frozen=True, slots=True)
class ConversionRequest:
    redemption_code: str
    kind: ConversionKind
    external_ref: str
    amount_minor: int
    currency: str | None  # None: the program's currency (never assumed USD)
    occurred_at: datetime
    # Whether the caller gave occurred_at (a defaulted time is not part of the request).
    occurred_at_sent: bool = True


def normalize_redemption_code(value: str, *, field: str = "code") -> str:
    """Codes are matched case-insensitively and without surrounding blanks."""
    code = value.strip().upper()
    if not code or len(code) > CODE_MAX or not code.isprintable():
        raise ValidationFailed("not a valid redemption code", field=field)
    return code


def _clean_ref(value: str | None, *, field: str, required: bool) -> str | None:
    cleaned = (value or "").strip()
    if not cleaned:
        if required:
            raise ValidationFailed(f"{field} is required", field=field)
        return None
    if len(cleaned) > REF_MAX or not cleaned.isprintable():
        raise ValidationFailed(
            f"{field} must be at most {REF_MAX} printable characters", field=field
        )
    return cleaned


def validate_redeem(code: str, redeemed_by: str, order_ref: str | None) -> RedeemRequest:
    return RedeemRequest(
        code=normalize_redemption_code(code),
        redeemed_by=_clean_ref(redeemed_by, field="redeemedBy", required=True) or "",
        order_ref=_clean_ref(order_ref, field="orderRef", required=False),
    )


def validate_conversion(
    *,
    redemption_code: str,
    kind: str,
    external_ref: str | None,
    amount_minor: int,
    currency: str | None,
    occurred_at: datetime | None,
    now: datetime,
) -> ConversionRequest:
    """Check a conversion report; ``occurred_at`` None means now (and is not fingerprinted)."""
    sent = occurred_at is not None
    occurred_at = occurred_at if occurred_at is not None else now
    try:
        conversion_kind = ConversionKind(kind.strip().lower())
    except ValueError:
        raise ValidationFailed("kind must be signup or purchase", field="kind") from None
    if occurred_at.tzinfo is None:
        raise ValidationFailed("occurredAt must carry a timezone", field="occurredAt")
    if occurred_at > now:
        raise ValidationFailed("occurredAt is in the future", field="occurredAt")
    amount = check_amount(amount_minor)
    if conversion_kind is ConversionKind.SIGNUP and amount != 0:
        raise ValidationFailed("a signup carries no amount", field="amountMinor")
    return ConversionRequest(
        redemption_code=normalize_redemption_code(redemption_code, field="redemptionCode"),
        kind=conversion_kind,
        external_ref=_clean_ref(external_ref, field="externalRef", required=False) or "",
        amount_minor=amount,
        currency=check_currency(currency) if currency else None,
        occurred_at=occurred_at,
        occurred_at_sent=sent,
    )


async def _refusal(session: AsyncSession, code: str, now: datetime) -> DomainError:
    """Why a redemption did not happen: unknown, already redeemed, or expired."""
    existing = await session.scalar(select(OfferRedemption).where(OfferRedemption.code == code))
    if existing is None:
        return NotFound("no offer with this redemption code", field="code")
    if existing.redeemed_at is not None:
        return AlreadyRedeemed(
            f"this code was already redeemed at {existing.redeemed_at.isoformat()}", field="code"
        )
    return RedemptionExpired("this code has expired", field="code")


async def redeem_offer(
    session: AsyncSession, request: RedeemRequest, *, now: datetime
) -> OfferRedemption:
    """Mark the code redeemed, once. Raises ``AlreadyRedeemed``, ``RedemptionExpired`` or
    ``NotFound``. Flushes, never commits."""
    redemption = await session.scalar(
        update(OfferRedemption)
        .where(
            OfferRedemption.code == request.code,
            OfferRedemption.redeemed_at.is_(None),
            or_(OfferRedemption.expires_at.is_(None), OfferRedemption.expires_at > now),
        )
        .values(redeemed_at=now, redeemed_by=request.redeemed_by, order_ref=request.order_ref)
        .returning(OfferRedemption)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    if redemption is None:
        raise await _refusal(session, request.code, now)
    await webhooks.enqueue(
        session,
        "offer.redeemed",
        {
            "redemption_id": redemption.id,
            "referral_id": redemption.referral_id,
            "program_id": redemption.program_id,
            "redeemed_at": now.isoformat(),
            "order_ref": redemption.order_ref,
        },
        now=now,
    )
    return redemption


async def _load_redemption(session: AsyncSession, redemption_id: int) -> OfferRedemption:
    return (
        await session.execute(
            select(OfferRedemption)
            .where(OfferRedemption.id == redemption_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


async def redeem_offer_once(
    session: AsyncSession,
    request: RedeemRequest,
    *,
    idempotency_key: str | None,
    now: datetime,
    idempotency_owner: str = "",
) -> OfferRedemption:
    """``redeem_offer`` behind an idempotency key: a retry gets the first answer back."""
    if idempotency_key is None:
        return await redeem_offer(session, request, now=now)
    payload = {"code": request.code, "by": request.redeemed_by, "order": request.order_ref}
    stored = await idempotency.claim(
        session,
        scope=REDEEM_SCOPE,
        key=idempotency_key,
        payload=payload,
        owner=idempotency_owner,
    )
    if stored is not None:
        return await _load_redemption(session, int(stored["redemption_id"]))
    redemption = await redeem_offer(session, request, now=now)
    await idempotency.store_response(
        session,
        scope=REDEEM_SCOPE,
        key=idempotency_key,
        response={"redemption_id": redemption.id},
        owner=idempotency_owner,
    )
    return redemption


# A redemption code's referral and its program (all of both, fresh: the reward engine then
# finds the program in the session), under the referral's row lock.
_LOCK_BY_CODE = (
    select(Referral, Program)
    .join(OfferRedemption, OfferRedemption.referral_id == Referral.id)
    .join(Program, Program.id == Referral.program_id)
    .where(OfferRedemption.code == bindparam("code"))
    .with_for_update(of=Referral)
    .execution_options(populate_existing=True)
)


async def record_conversion(
    session: AsyncSession, request: ConversionRequest
) -> tuple[Conversion, bool]:
    """Record a signup or purchase against a redemption code's referral.

    Idempotent on (referral, kind, external reference): re-reporting returns the first row
    and ``False``. Flushes, never commits."""
    # Lock the referral first: two concurrent conversions of one referral otherwise both take
    # the FK's KEY SHARE lock on it and then deadlock upgrading to the lifecycle's FOR UPDATE.
    # The whole referral is loaded, fresh, under that lock: the lifecycle move below then
    # needs no lock of its own.
    found = (await session.execute(_LOCK_BY_CODE, {"code": request.redemption_code})).one_or_none()
    if found is None:
        raise NotFound("no offer with this redemption code", field="redemptionCode")
    referral, program = found
    referral_id, status, program_currency = referral.id, referral.status, program.currency
    if request.currency is None:
        request = replace(request, currency=program_currency)
    conversion = await session.scalar(
        insert(Conversion)
        .values(
            referral_id=referral_id,
            kind=request.kind,
            external_ref=request.external_ref,
            amount_minor=request.amount_minor,
            currency=request.currency,
            occurred_at=request.occurred_at,
        )
        .on_conflict_do_nothing(
            index_elements=[Conversion.referral_id, Conversion.kind, Conversion.external_ref]
        )
        .returning(Conversion)
    )
    if conversion is not None:
        await _advance(session, referral, status, conversion)
        return conversion, True
    conversion = await session.scalar(
        select(Conversion)
        .where(
            Conversion.referral_id == referral_id,
            Conversion.kind == request.kind,
            Conversion.external_ref == request.external_ref,
        )
        .execution_options(populate_existing=True)
    )
    assert conversion is not None
    if conversion.amount_minor != request.amount_minor or conversion.currency != request.currency:
        raise DomainError(
            "this conversion was already reported with a different amount",
            field="externalRef",
            code=ErrorCode.CONFLICT,
        )
    return conversion, False


# A product signup qualifies a lead; a purchase wins it (B2C programs have no CRM to say so).
# A referral the CRM already moved further, or that was rejected, is left where it is.
_ADVANCE = {
    ConversionKind.SIGNUP: (ReferralStatus.QUALIFIED, {ReferralStatus.LEAD}),
    ConversionKind.PURCHASE: (
        ReferralStatus.WON,
        {ReferralStatus.LEAD, ReferralStatus.QUALIFIED, ReferralStatus.OPPORTUNITY},
    ),
}


async def _advance(
    session: AsyncSession, referral: Referral, status: str, conversion: Conversion
) -> None:
    """Announce the conversion and move the referral along its lifecycle (rewards follow)."""
    now = utcnow()
    await webhooks.enqueue(
        session,
        "conversion.recorded",
        {
            "conversion_id": conversion.id,
            "referral_id": referral.id,
            "kind": conversion.kind,
            "amount_minor": conversion.amount_minor,
            "currency": conversion.currency,
            "occurred_at": conversion.occurred_at.isoformat(),
        },
        now=now,
    )
    target, sources = _ADVANCE[ConversionKind(conversion.kind)]
    if status in sources:  # read under the referral's row lock, so it is still current
        await lifecycle.transition(
            session,
            referral.id,
            target,
            source="conversion",
            actor=f"conversion:{conversion.kind}",
            now=now,
            won_amount_minor=conversion.amount_minor if target == ReferralStatus.WON else None,
            won_currency=conversion.currency if target == ReferralStatus.WON else None,
            locked=referral,
        )


async def record_conversion_once(
    session: AsyncSession,
    request: ConversionRequest,
    *,
    idempotency_key: str | None,
    idempotency_owner: str = "",
) -> tuple[Conversion, bool]:
    """``record_conversion`` behind an optional idempotency key: a retry gets the first answer
    (the conversion and whether that first call created it)."""
    if idempotency_key is None:
        return await record_conversion(session, request)
    payload = {
        "code": request.redemption_code,
        "kind": str(request.kind),
        "ref": request.external_ref,
        "amount": request.amount_minor,
        "currency": request.currency,
        "at": request.occurred_at.isoformat() if request.occurred_at_sent else None,
    }
    stored = await idempotency.claim(
        session,
        scope=CONVERSION_SCOPE,
        key=idempotency_key,
        payload=payload,
        owner=idempotency_owner,
    )
    if stored is not None and "conversion_id" in stored:
        first = await session.get(Conversion, int(stored["conversion_id"]))
        if first is not None:
            return first, bool(stored.get("created", False))
    conversion, created = await record_conversion(session, request)
    await idempotency.store_response(
        session,
        scope=CONVERSION_SCOPE,
        key=idempotency_key,
        response={"conversion_id": conversion.id, "created": created},
        owner=idempotency_owner,
    )
    return conversion, created
