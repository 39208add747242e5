"""Redeeming exactly once, idempotent retries, and conversions against a redemption code."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from tests.factories import make_advocate, make_link, make_program
from vouch.attribution.claims import ClaimContext, claim_offer, validate_claim
from vouch.attribution.redemptions import (
    AlreadyRedeemed,
    RedemptionExpired,
    record_conversion,
    record_conversion_once,
    redeem_offer,
    redeem_offer_once,
    validate_conversion,
    validate_redeem,
)
from vouch.core.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from vouch.core.sessions import SerialSession
from vouch.models import Conversion, IdempotencyKey, OfferRedemption
from vouch.models.enums import ReferralSource

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def issue(session, codec, *, email="friend@example.org", **program):
    prog = await make_program(session, **program)
    link = await make_link(session, codec, advocate=await make_advocate(session), program=prog)
    return await claim_offer(
        session,
        claim=validate_claim(email=email, name=None, company=None, consent=True),
        ctx=ClaimContext(program_id=prog.id, link_id=link.id, source=ReferralSource.LANDING),
        now=NOW,
    )


async def test_redeem_once_then_refuse_with_reason(session, codec):
    issued = await issue(session, codec)
    req = validate_redeem(issued.redemption_code.lower(), " acct-42 ", "order-1")
    redemption = await redeem_offer(session, req, now=NOW + timedelta(hours=1))
    assert (redemption.redeemed_at, redemption.redeemed_by, redemption.order_ref) == (
        NOW + timedelta(hours=1),
        "acct-42",
        "order-1",
    )
    with pytest.raises(AlreadyRedeemed) as exc:
        await redeem_offer(
            session,
            validate_redeem(issued.redemption_code, "acct-43", None),
            now=NOW + timedelta(hours=2),
        )
    assert exc.value.code is ErrorCode.ALREADY_REDEEMED
    assert exc.value.message == "this code was already redeemed at 2026-11-22T13:00:00+00:00"
    row = await session.scalar(select(OfferRedemption))
    assert (row.redeemed_by, row.order_ref) == ("acct-42", "order-1")


async def test_expired_and_unknown_codes_are_refused(session, codec):
    issued = await issue(session, codec, redemption_ttl_days=1)
    with pytest.raises(RedemptionExpired):
        await redeem_offer(
            session, validate_redeem(issued.redemption_code, "a", None), now=NOW + timedelta(days=2)
        )
    with pytest.raises(NotFound):
        await redeem_offer(session, validate_redeem("AAAA-BBBB-CCCC-DDDD", "a", None), now=NOW)
    assert await session.scalar(select(OfferRedemption.redeemed_at)) is None


@pytest.mark.parametrize(
    ("code", "by", "order", "field"),
    [
        ("", "a", None, "code"),
        ("x" * 33, "a", None, "code"),
        ("ABCD", " ", None, "redeemedBy"),
        ("ABCD", "a", "o" * 129, "orderRef"),
    ],
)
def test_redeem_input_is_validated(code, by, order, field):
    with pytest.raises(ValidationFailed) as exc:
        validate_redeem(code, by, order)
    assert exc.value.field == field


async def test_idempotent_retry_gets_the_first_answer(session, codec):
    issued = await issue(session, codec)
    req = validate_redeem(issued.redemption_code, "acct-1", "o-1")
    first = await redeem_offer_once(session, req, idempotency_key="k-1", now=NOW)
    retry = await redeem_offer_once(
        session, req, idempotency_key="k-1", now=NOW + timedelta(minutes=1)
    )
    assert retry.id == first.id
    assert retry.redeemed_at == NOW
    with pytest.raises(DomainError) as exc:
        await redeem_offer_once(
            session,
            validate_redeem(issued.redemption_code, "someone-else", None),
            idempotency_key="k-1",
            now=NOW,
        )
    assert exc.value.code is ErrorCode.IDEMPOTENCY_MISMATCH
    with pytest.raises(AlreadyRedeemed):
        await redeem_offer_once(session, req, idempotency_key="k-2", now=NOW)


@pytest.mark.committing
async def test_twenty_concurrent_redemptions_succeed_once(committing_engine, codec):
    factory = async_sessionmaker(committing_engine, class_=SerialSession, expire_on_commit=False)
    async with factory() as s:
        issued = await issue(s, codec)
        await s.commit()

    async def one(i):
        async with factory() as s:
            try:
                await redeem_offer(
                    s, validate_redeem(issued.redemption_code, f"acct-{i}", None), now=NOW
                )
                await s.commit()
                return "ok"
            except AlreadyRedeemed:
                await s.rollback()
                return "refused"

    outcomes = await asyncio.gather(*(one(i) for i in range(20)))
    assert outcomes.count("ok") == 1
    assert outcomes.count("refused") == 19


@pytest.mark.committing
async def test_twenty_concurrent_retries_with_one_key_share_one_answer(committing_engine, codec):
    factory = async_sessionmaker(committing_engine, class_=SerialSession, expire_on_commit=False)
    async with factory() as s:
        issued = await issue(s, codec)
        await s.commit()
    req = validate_redeem(issued.redemption_code, "acct-1", None)

    async def one():
        async with factory() as s:
            r = await redeem_offer_once(s, req, idempotency_key="same", now=NOW)
            await s.commit()
            return r.id

    ids = await asyncio.gather(*(one() for _ in range(20)))
    assert len(set(ids)) == 1
    async with factory() as s:
        assert await s.scalar(select(func.count()).select_from(IdempotencyKey)) == 1


def _conversion(code, **overrides):
    values = {
        "redemption_code": code,
        "kind": "purchase",
        "external_ref": "order-9",
        "amount_minor": 12_000,
        "currency": "eur",
        "occurred_at": NOW - timedelta(minutes=1),
        "now": NOW,
    }
    values.update(overrides)
    return validate_conversion(**values)


async def test_conversions_are_recorded_once_per_reference(session, codec):
    issued = await issue(session, codec)
    signup, created = await record_conversion(
        session,
        _conversion(issued.redemption_code, kind="signup", amount_minor=0, external_ref=None),
    )
    assert created is True
    assert (signup.kind, signup.external_ref, signup.amount_minor) == ("signup", "", 0)
    purchase, created = await record_conversion(session, _conversion(issued.redemption_code))
    assert created is True
    assert (purchase.kind, purchase.amount_minor, purchase.currency, purchase.referral_id) == (
        "purchase",
        12_000,
        "EUR",
        issued.referral_id,
    )
    again, created = await record_conversion(session, _conversion(issued.redemption_code))
    assert (again.id, created) == (purchase.id, False)
    with pytest.raises(DomainError) as exc:
        await record_conversion(session, _conversion(issued.redemption_code, amount_minor=1))
    assert exc.value.code is ErrorCode.CONFLICT
    assert await session.scalar(select(func.count()).select_from(Conversion)) == 2
    keyed, _ = await record_conversion_once(
        session, _conversion(issued.redemption_code), idempotency_key="c-1"
    )
    assert keyed.id == purchase.id


async def test_conversion_for_unknown_code_writes_nothing(session):
    with pytest.raises(NotFound):
        await record_conversion(session, _conversion("NOPE-NOPE-NOPE-NOPE"))
    assert await session.scalar(select(func.count()).select_from(Conversion)) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "refund"}, "kind"),
        ({"currency": "XXX"}, "currency"),
        ({"amount_minor": -1}, "amountMinor"),
        ({"kind": "signup", "amount_minor": 5}, "amountMinor"),
        ({"occurred_at": NOW + timedelta(hours=1)}, "occurredAt"),
        ({"occurred_at": datetime(2026, 1, 1)}, "occurredAt"),
        ({"redemption_code": ""}, "redemptionCode"),
    ],
)
def test_conversion_input_is_validated(overrides, field):
    with pytest.raises(ValidationFailed) as exc:
        _conversion("ABCD-ABCD-ABCD-ABCD", **overrides)
    assert exc.value.field == field


@pytest.mark.committing
async def test_twenty_concurrent_identical_conversions_record_one(committing_engine, codec):
    factory = async_sessionmaker(committing_engine, class_=SerialSession, expire_on_commit=False)
    async with factory() as s:
        issued = await issue(s, codec)
        await s.commit()
    request = _conversion(issued.redemption_code)

    async def one():
        async with factory() as s:
            conversion, created = await record_conversion(s, request)
            await s.commit()
            return conversion.id, created

    results = await asyncio.gather(*(one() for _ in range(20)))
    assert len({cid for cid, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    async with factory() as s:
        assert await s.scalar(select(func.count()).select_from(Conversion)) == 1


async def test_a_keyed_conversion_keeps_its_answer_and_a_retry_gets_it_back(session, codec):
    """The first call under a key stores its answer in the statement that writes the
    conversion; a retry gets the first conversion and ``created`` back; a new key for a
    reference already reported answers with the first conversion, not created."""
    issued = await issue(session, codec)
    first, created = await record_conversion_once(
        session, _conversion(issued.redemption_code), idempotency_key="k-1", idempotency_owner="o"
    )
    assert created is True
    stored = await session.scalar(
        select(IdempotencyKey.response).where(
            IdempotencyKey.owner == "o", IdempotencyKey.key == "k-1"
        )
    )
    assert stored == {"conversion_id": first.id, "created": True}
    again, created = await record_conversion_once(
        session, _conversion(issued.redemption_code), idempotency_key="k-1", idempotency_owner="o"
    )
    assert (again.id, created) == (first.id, True)
    other, created = await record_conversion_once(
        session, _conversion(issued.redemption_code), idempotency_key="k-2", idempotency_owner="o"
    )
    assert (other.id, created) == (first.id, False)
    stored = await session.scalar(
        select(IdempotencyKey.response).where(
            IdempotencyKey.owner == "o", IdempotencyKey.key == "k-2"
        )
    )
    assert stored == {"conversion_id": first.id, "created": False}
    _, created = await record_conversion(
        session, _conversion(issued.redemption_code, external_ref="order-10")
    )
    assert created is True
    assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 2
