"""Claiming the offer: attribution rule, one referral per person, self-referral, rate limits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from tests.factories import make_advocate, make_link, make_program
from vouch.attribution.claims import (
    REDEMPTION_ALPHABET,
    ClaimContext,
    OfferUnavailable,
    RateLimited,
    SelfReferral,
    Touch,
    choose_touch,
    claim_offer,
    hit_rate_limit,
    validate_claim,
)
from vouch.core.errors import ErrorCode, ValidationFailed
from vouch.core.sessions import SerialSession
from vouch.models import (
    AttributionDecision,
    Click,
    OfferRedemption,
    RateLimitHit,
    Referral,
    ReferralEvent,
)
from vouch.models.enums import ReferralSource

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_choose_touch_applies_rule_and_window():
    a = Touch(1, 10, NOW - timedelta(days=20))
    b = Touch(2, 10, NOW - timedelta(days=2))
    other_program = Touch(3, 11, NOW - timedelta(days=1))
    stale = Touch(4, 10, NOW - timedelta(days=45))
    touches = (b, other_program, a, stale)
    assert choose_touch(touches, program_id=10, model="first_touch", window_days=30, now=NOW) == a
    assert choose_touch(touches, program_id=10, model="last_touch", window_days=30, now=NOW) == b
    assert choose_touch(touches, program_id=10, model="first_touch", window_days=7, now=NOW) == b
    assert choose_touch(touches, program_id=12, model="last_touch", window_days=30, now=NOW) is None


def test_validate_claim_normalises_and_rejects():
    claim = validate_claim(
        email="  Katherine.Johnson+promo@GMAIL.com ",
        name="  Katherine   J ",
        company="",
        consent=True,
    )
    assert claim.email == "Katherine.Johnson+promo@gmail.com"
    assert claim.person_key == "katherinejohnson@gmail.com"
    assert claim.name == "Katherine J"
    assert claim.company is None
    cases: list[tuple[dict[str, Any], str]] = [
        ({"email": ""}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"consent": False}, "consent"),
        ({"name": "n" * 201}, "name"),
        ({"company": "bad\x00company"}, "company"),
    ]
    for kwargs, field in cases:
        values: dict[str, Any] = {
            "email": "a@example.org",
            "name": None,
            "company": None,
            "consent": True,
        }
        values.update(kwargs)
        with pytest.raises(ValidationFailed) as exc:
            validate_claim(**values)
        assert exc.value.field == field


async def _world(session, codec, **program):
    prog = await make_program(session, **program)
    grace = await make_advocate(session, first_name="Grace", email="grace.hopper@gmail.com")
    ada = await make_advocate(session, first_name="Ada", email="ada@example.com")
    grace_link = await make_link(session, codec, advocate=grace, program=prog)
    ada_link = await make_link(session, codec, advocate=ada, program=prog)
    return prog, grace, ada, grace_link, ada_link


async def _counts(session):
    return [
        await session.scalar(select(func.count()).select_from(model))
        for model in (Referral, ReferralEvent, AttributionDecision, OfferRedemption)
    ]


async def test_claim_creates_lead_event_decision_and_redemption(session, codec):
    prog, grace, _, link, _ = await _world(session, codec, redemption_ttl_days=30)
    session.add(
        Click(
            link_id=link.id,
            program_id=prog.id,
            occurred_at=NOW - timedelta(minutes=5),
            visitor_id="v" * 32,
            utm={},
        )
    )
    await session.flush()
    click_id = await session.scalar(select(Click.id).where(Click.link_id == link.id))
    claim = validate_claim(email="kj@example.org", name="KJ", company="NASA", consent=True)
    ctx = ClaimContext(
        program_id=prog.id,
        link_id=link.id,
        source=ReferralSource.LANDING,
        touches=(Touch(link.id, prog.id, NOW - timedelta(minutes=5)),),
        visitor_id="v" * 32,
        ip_hash="h" * 32,
    )
    result = await claim_offer(session, claim=claim, ctx=ctx, now=NOW)
    assert result.created is True
    assert result.expires_at == NOW + timedelta(days=30)
    code = result.redemption_code
    assert len(code) == 19
    assert code.count("-") == 3
    assert set(code.replace("-", "")) <= set(REDEMPTION_ALPHABET)

    referral = await session.get(Referral, result.referral_id)
    assert (referral.program_id, referral.advocate_id, referral.link_id) == (
        prog.id,
        grace.id,
        link.id,
    )
    assert (referral.person_key, referral.email, referral.name, referral.company) == (
        "kj@example.org",
        "kj@example.org",
        "KJ",
        "NASA",
    )
    assert (referral.status, referral.source, referral.consent) == ("lead", "landing", True)
    assert (referral.click_id, referral.visitor_id, referral.ip_hash) == (
        click_id,
        "v" * 32,
        "h" * 32,
    )
    event = await session.scalar(
        select(ReferralEvent).where(ReferralEvent.referral_id == referral.id)
    )
    assert (event.from_status, event.to_status, event.source, event.actor, event.at) == (
        None,
        "lead",
        "landing",
        "landing",
        NOW,
    )
    decision = await session.scalar(
        select(AttributionDecision).where(AttributionDecision.referral_id == referral.id)
    )
    assert (decision.rule, decision.rules_version, decision.window_days) == ("last_touch", 1, 30)
    assert (decision.evidence, decision.actor, decision.link_id, decision.click_id) == (
        "click",
        "landing",
        link.id,
        click_id,
    )
    assert decision.is_current is True
    redemption = await session.scalar(
        select(OfferRedemption).where(OfferRedemption.referral_id == referral.id)
    )
    assert (redemption.code, redemption.redeemed_at, redemption.issued_at) == (code, None, NOW)


@pytest.mark.parametrize(("model", "winner"), [("first_touch", "grace"), ("last_touch", "ada")])
async def test_program_rule_decides_between_two_links(session, codec, model, winner):
    prog, grace, ada, grace_link, ada_link = await _world(session, codec, attribution_model=model)
    touches = (
        Touch(grace_link.id, prog.id, NOW - timedelta(days=3)),
        Touch(ada_link.id, prog.id, NOW - timedelta(hours=1)),
    )
    ctx = ClaimContext(
        program_id=prog.id, link_id=ada_link.id, source=ReferralSource.LANDING, touches=touches
    )
    claim = validate_claim(email="friend@example.org", name=None, company=None, consent=True)
    result = await claim_offer(session, claim=claim, ctx=ctx, now=NOW)
    referral = await session.get(Referral, result.referral_id)
    expected = {"grace": (grace.id, grace_link.id), "ada": (ada.id, ada_link.id)}[winner]
    assert (referral.advocate_id, referral.link_id) == expected
    decision = await session.scalar(
        select(AttributionDecision).where(AttributionDecision.referral_id == referral.id)
    )
    assert (decision.rule, decision.evidence, decision.link_id) == (model, "click", expected[1])


async def test_revoked_cookie_link_falls_back_to_the_claim_link(session, codec):
    prog, _, ada, grace_link, ada_link = await _world(
        session, codec, attribution_model="first_touch"
    )
    grace_link.status = "revoked"
    await session.flush()
    ctx = ClaimContext(
        program_id=prog.id,
        link_id=ada_link.id,
        source=ReferralSource.LANDING,
        touches=(Touch(grace_link.id, prog.id, NOW - timedelta(days=1)),),
    )
    claim = validate_claim(email="friend@example.org", name=None, company=None, consent=True)
    result = await claim_offer(session, claim=claim, ctx=ctx, now=NOW)
    referral = await session.get(Referral, result.referral_id)
    assert (referral.advocate_id, referral.link_id) == (ada.id, ada_link.id)
    decision = await session.scalar(
        select(AttributionDecision).where(AttributionDecision.referral_id == referral.id)
    )
    assert decision.evidence == "form"


@pytest.mark.parametrize(
    "email",
    ["grace.hopper@gmail.com", "GraceHopper+referral@gmail.com", "g.r.a.c.e.hopper@googlemail.com"],
)
async def test_self_referral_is_blocked_and_writes_nothing(session, codec, email):
    prog, _, _, grace_link, _ = await _world(session, codec)
    ctx = ClaimContext(program_id=prog.id, link_id=grace_link.id, source=ReferralSource.LANDING)
    claim = validate_claim(email=email, name=None, company=None, consent=True)
    with pytest.raises(SelfReferral) as exc:
        await claim_offer(session, claim=claim, ctx=ctx, now=NOW)
    assert exc.value.code is ErrorCode.SELF_REFERRAL
    assert await _counts(session) == [0, 0, 0, 0]


async def test_claiming_twice_returns_the_same_code(session, codec):
    prog, grace, _, grace_link, ada_link = await _world(session, codec)
    first = await claim_offer(
        session,
        claim=validate_claim(email="friend@example.org", name=None, company=None, consent=True),
        ctx=ClaimContext(program_id=prog.id, link_id=grace_link.id, source=ReferralSource.LANDING),
        now=NOW,
    )
    # Same person, differently written, through another advocate's link a day later.
    second = await claim_offer(
        session,
        claim=validate_claim(email="Friend@Example.org", name="F", company=None, consent=True),
        ctx=ClaimContext(program_id=prog.id, link_id=ada_link.id, source=ReferralSource.LANDING),
        now=NOW + timedelta(days=1),
    )
    assert second.created is False
    assert (second.referral_id, second.redemption_id, second.redemption_code) == (
        first.referral_id,
        first.redemption_id,
        first.redemption_code,
    )
    assert await _counts(session) == [1, 1, 1, 1]
    referral = await session.get(Referral, first.referral_id)
    assert referral.advocate_id == grace.id


@pytest.mark.parametrize(
    "program",
    [{"status": "paused"}, {"status": "archived"}, {"offer_expires_at": NOW - timedelta(days=1)}],
)
async def test_unavailable_offers_cannot_be_claimed(session, codec, program):
    prog, _, _, link, _ = await _world(session, codec, **program)
    ctx = ClaimContext(program_id=prog.id, link_id=link.id, source=ReferralSource.LANDING)
    claim = validate_claim(email="friend@example.org", name=None, company=None, consent=True)
    with pytest.raises(OfferUnavailable):
        await claim_offer(session, claim=claim, ctx=ctx, now=NOW)
    assert await _counts(session) == [0, 0, 0, 0]


async def test_redemption_never_outlives_the_offer(session, codec):
    ends = NOW + timedelta(days=3)
    prog, _, _, link, _ = await _world(session, codec, offer_expires_at=ends)
    result = await claim_offer(
        session,
        claim=validate_claim(email="friend@example.org", name=None, company=None, consent=True),
        ctx=ClaimContext(program_id=prog.id, link_id=link.id, source=ReferralSource.CODE_ENTRY),
        now=NOW,
    )
    assert result.expires_at == ends
    referral = await session.get(Referral, result.referral_id)
    assert referral.source == "code_entry"
    decision = await session.scalar(
        select(AttributionDecision).where(AttributionDecision.referral_id == referral.id)
    )
    assert decision.evidence == "code_entry"


async def test_rate_limit_counts_per_bucket_and_hour(session):
    for expected in (1, 2, 3):
        assert await hit_rate_limit(session, bucket="claim:abc", limit=3, now=NOW) == expected
    with pytest.raises(RateLimited) as exc:
        await hit_rate_limit(session, bucket="claim:abc", limit=3, now=NOW + timedelta(minutes=59))
    assert exc.value.code is ErrorCode.RATE_LIMITED
    assert await hit_rate_limit(session, bucket="claim:other", limit=3, now=NOW) == 1
    assert (
        await hit_rate_limit(session, bucket="claim:abc", limit=3, now=NOW + timedelta(hours=1))
        == 1
    )
    rows = (await session.execute(select(RateLimitHit.bucket, RateLimitHit.hits))).all()
    assert sorted(rows) == [("claim:abc", 1), ("claim:abc", 4), ("claim:other", 1)]
    # Two hours on, a new window prunes every window older than the previous hour.
    later = NOW + timedelta(hours=2)
    assert await hit_rate_limit(session, bucket="claim:new", limit=3, now=later) == 1
    rows = (await session.execute(select(RateLimitHit.bucket, RateLimitHit.window_start))).all()
    assert sorted(rows) == [("claim:abc", NOW + timedelta(hours=1)), ("claim:new", later)]


@pytest.mark.committing
async def test_twenty_concurrent_identical_claims_leave_one_referral(committing_engine, codec):
    factory = async_sessionmaker(committing_engine, class_=SerialSession, expire_on_commit=False)
    async with factory() as setup_session:
        prog, _, _, link, _ = await _world(setup_session, codec)
        await setup_session.commit()
    claim = validate_claim(email="race@example.org", name=None, company=None, consent=True)
    ctx = ClaimContext(program_id=prog.id, link_id=link.id, source=ReferralSource.LANDING)

    async def one():
        async with factory() as s:
            result = await claim_offer(s, claim=claim, ctx=ctx, now=NOW)
            await s.commit()
            return result

    results = await asyncio.gather(*(one() for _ in range(20)))
    assert len({r.redemption_code for r in results}) == 1
    assert sum(r.created for r in results) == 1
    async with factory() as check:
        assert await _counts(check) == [1, 1, 1, 1]


@pytest.mark.committing
async def test_concurrent_rate_limit_hits_are_counted_exactly(committing_engine):
    factory = async_sessionmaker(committing_engine, class_=SerialSession, expire_on_commit=False)

    async def one():
        async with factory() as s:
            try:
                await hit_rate_limit(s, bucket="claim:race", limit=5, now=NOW)
                ok = True
            except RateLimited:
                ok = False
            await s.commit()
            return ok

    outcomes = await asyncio.gather(*(one() for _ in range(20)))
    assert outcomes.count(True) == 5
    async with factory() as check:
        assert await check.scalar(select(RateLimitHit.hits)) == 20


@pytest.mark.committing
async def test_a_claim_is_one_transaction(committing_engine, codec):
    """Everything a claim writes goes with its transaction: rolled back, nothing is left (no
    referral, event, decision, redemption, rollup row or outbox event)."""
    factory = async_sessionmaker(committing_engine, class_=SerialSession, expire_on_commit=False)
    async with factory() as setup_session:
        prog, _, _, link, _ = await _world(setup_session, codec)
        await setup_session.commit()
    claim = validate_claim(email="undo@example.org", name=None, company=None, consent=True)
    ctx = ClaimContext(program_id=prog.id, link_id=link.id, source=ReferralSource.LANDING)
    async with factory() as s:
        result = await claim_offer(s, claim=claim, ctx=ctx, now=NOW)
        assert result.created
        await s.rollback()
    async with factory() as check:
        assert await _counts(check) == [0, 0, 0, 0]
        assert await check.scalar(text("SELECT count(*) FROM outbox_events")) == 0
        assert await check.scalar(text("SELECT count(*) FROM referral_daily_rollups")) == 0
    async with factory() as s:
        await claim_offer(s, claim=claim, ctx=ctx, now=NOW)
        await s.commit()
    async with factory() as check:
        assert await _counts(check) == [1, 1, 1, 1]
        assert await check.scalar(text("SELECT count(*) FROM outbox_events")) == 1


def test_redemption_codes_are_four_groups_of_the_alphabet_every_letter_in_every_place():
    from collections import Counter

    from vouch.attribution.claims import REDEMPTION_ALPHABET, new_redemption_code

    codes = [new_redemption_code() for _ in range(4000)]
    assert len(set(codes)) == len(codes)
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4]
        assert set("".join(groups)) <= set(REDEMPTION_ALPHABET)
    for place in (0, 7, 18):  # first, middle, last character: each letter about 1/32 of codes
        seen = Counter(code[place] for code in codes)
        assert set(seen) == set(REDEMPTION_ALPHABET)
        assert max(seen.values()) < 4000 / 32 * 1.6
