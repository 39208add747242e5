"""Redeeming the referred-side offer exactly once, and conversions reported against it.

Redemption is a single conditional UPDATE: of any number of concurrent attempts exactly one
finds ``redeemed_at IS NULL``; the rest are told why they were refused. Retries of the same
request carry an idempotency key and get the first answer back instead of a refusal.
Conversions are idempotent on their natural key (referral, kind, external reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.access import idempotency
from vouch.attribution import lifecycle, rewards, webhooks
from vouch.core.clock import utcnow
from vouch.core.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from vouch.core.money import check_amount, check_currency
from vouch.core.raw_select import flush_pending, run_raw
from vouch.core.snapshot import snapshot_class
from vouch.models import Conversion, OfferRedemption, Referral
from vouch.models.enums import ConversionKind, ReferralStatus, RewardTrigger
from vouch.models.snapshots import ConversionSnapshot

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


_REFERRAL_ROW = snapshot_class(Referral)
_CONVERSION_ROW = snapshot_class(Conversion)
_WIDTH = len(_REFERRAL_ROW._fields)
# A redemption code's referral under its row lock, with its program's currency and settings and
# the program's active qualified and won reward rules (what a conversion's move may earn): one
# statement. $1 the code.
_LOCK_BY_CODE = f"""
SELECT {", ".join(f"r.{column.name}" for column in Referral.__table__.columns)},
       p.currency, p.settings,
       (SELECT json_agg(rule ORDER BY rule.id) FROM reward_rules AS rule
        WHERE rule.program_id = r.program_id AND rule.active
          AND rule.trigger IN ('{RewardTrigger.QUALIFIED.value}', '{RewardTrigger.WON.value}'))
FROM referrals AS r
JOIN offer_redemptions AS o ON o.referral_id = r.id
JOIN programs AS p ON p.id = r.program_id
WHERE o.code = $1
FOR UPDATE OF r"""  # noqa: S608 (column names and enum values only)
# The conversion (once per referral, kind and reference: a re-report inserts nothing), its
# ``conversion.recorded`` outbox event with deliveries, and, under an idempotency key, the key's
# first answer, in one statement. $1 referral, $2 kind, $3 reference, $4 amount, $5 currency,
# $6 occurred at, $7 the payload but the id, $8 now, $9-$11 the key's owner, key and operation
# (NULL: no key).
_INSERT = "".join(
    (
        """
WITH conversion AS (
    INSERT INTO conversions (referral_id, kind, external_ref, amount_minor, currency, occurred_at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (referral_id, kind, external_ref) DO NOTHING
    RETURNING """,
        ", ".join(_CONVERSION_ROW._fields),
        "\n),",
        webhooks.enqueue_ctes(
            event_type="'conversion.recorded'",
            payload="$7::jsonb || jsonb_build_object('conversion_id', conversion.id)",
            now="$8",
            source="conversion",
        ),
        ", ",
        idempotency.answer_cte(
            source="conversion", id_name="conversion_id", owner="$9", key="$10", scope="$11"
        ),
        "\nSELECT * FROM conversion",
    )
)
_EXISTING = f"""
SELECT {", ".join(_CONVERSION_ROW._fields)} FROM conversions
WHERE referral_id = $1 AND kind = $2 AND external_ref = $3"""  # noqa: S608


async def record_conversion(
    session: AsyncSession,
    request: ConversionRequest,
    *,
    answer_key: tuple[str, str] | None = None,
) -> tuple[ConversionSnapshot, bool]:
    """Record a signup or purchase against a redemption code's referral.

    Idempotent on (referral, kind, external reference): re-reporting returns the first row
    and ``False``. ``answer_key`` (owner, key) is a claimed idempotency key of this operation:
    a new conversion stores its answer there in the statement that writes it. Writes in the
    session's transaction, never commits."""
    # Lock the referral first: two concurrent conversions of one referral otherwise both take
    # the FK's KEY SHARE lock on it and then deadlock upgrading to the lifecycle's FOR UPDATE.
    # The referral is read under that lock: the lifecycle move below needs no lock of its own.
    await flush_pending(session)  # the caller's own changes first, as before any statement
    rows = await run_raw(session, _LOCK_BY_CODE, [request.redemption_code])
    if not rows:
        raise NotFound("no offer with this redemption code", field="redemptionCode")
    row = rows[0]
    referral = _REFERRAL_ROW._make(row[:_WIDTH])
    program_currency, settings, rules = row[_WIDTH], row[_WIDTH + 1], row[_WIDTH + 2]
    currency = request.currency if request.currency is not None else program_currency
    occurred_at = request.occurred_at.astimezone(UTC)
    now = utcnow()
    kind = str(request.kind)
    payload = {
        "referral_id": referral.id,
        "kind": kind,
        "amount_minor": request.amount_minor,
        "currency": currency,
        "occurred_at": occurred_at.isoformat(),
    }
    inserted = await run_raw(
        session,
        _INSERT,
        [
            referral.id,
            kind,
            request.external_ref,
            request.amount_minor,
            currency,
            occurred_at,
            webhooks.payload_json(payload),
            now,
            *(answer_key or (None, None)),
            CONVERSION_SCOPE,
        ],
    )
    if inserted:
        conversion = _CONVERSION_ROW._make(inserted[0])
        target, sources = _ADVANCE[ConversionKind(kind)]
        if referral.status in sources:  # read under the referral's row lock: still current
            won = target == ReferralStatus.WON
            await lifecycle.transition(
                session,
                referral.id,
                target,
                source="conversion",
                actor=f"conversion:{kind}",
                now=now,
                won_amount_minor=conversion.amount_minor if won else None,
                won_currency=conversion.currency if won else None,
                locked=referral,
                rules=rewards.rules_by_trigger(rewards.rule_snapshots(rules)),
                auto_approve=bool(settings.get(rewards.AUTO_APPROVE)),
            )
        return conversion, True
    found = await run_raw(session, _EXISTING, [referral.id, kind, request.external_ref])
    conversion = _CONVERSION_ROW._make(found[0])  # the conflicting row is committed: visible
    if conversion.amount_minor != request.amount_minor or conversion.currency != currency:
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


async def record_conversion_once(
    session: AsyncSession,
    request: ConversionRequest,
    *,
    idempotency_key: str | None,
    idempotency_owner: str = "",
) -> tuple[ConversionSnapshot, bool]:
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
    owner = idempotency_owner[: idempotency.MAX_OWNER_LENGTH]
    conversion, created = await record_conversion(
        session, request, answer_key=(owner, idempotency_key)
    )
    if not created:  # a new conversion stored its answer as it was written
        await idempotency.store_response(
            session,
            scope=CONVERSION_SCOPE,
            key=idempotency_key,
            response={"conversion_id": conversion.id, "created": created},
            owner=idempotency_owner,
        )
    return conversion, created
