"""Fraud rules flag (never drop); the moderation queue decides."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.attribution.factories import at, make_click, make_referral, make_world
from tests.factories import make_advocate
from vouch.attribution import fraud, moderation
from vouch.core.errors import Conflict, ValidationFailed
from vouch.models import Referral, ReferralEvent


async def test_clean_referral_has_no_flags(session, codec):
    program, advocate, link = await make_world(session, codec)
    click = await make_click(session, link=link, occurred_at=at(0))
    referral = await make_referral(
        session, program=program, advocate=advocate, link=link, created_at=at(0, minutes=3)
    )
    assert (
        await fraud.assess_referral(
            session, referral, click=click, advocate=advocate, now=at(0, minutes=3)
        )
        == []
    )


async def test_self_referral_by_normalised_email(session, codec):
    program, _, _ = await make_world(session, codec)
    advocate = await make_advocate(session, email="ada.lovelace@gmail.com")
    referral = await make_referral(
        session, program=program, advocate=advocate, email="AdaLovelace+friend@googlemail.com"
    )
    assert await fraud.assess_referral(
        session, referral, click=None, advocate=advocate, now=at(1)
    ) == ["self_referral"]


async def test_same_company_domain_but_not_freemail(session, codec):
    program, _, _ = await make_world(session, codec)
    advocate = await make_advocate(
        session, email="ann@bigco.example", account_domain="bigco.example"
    )
    colleague = await make_referral(
        session, program=program, advocate=advocate, email="bob@bigco.example"
    )
    assert await fraud.assess_referral(
        session, colleague, click=None, advocate=advocate, now=at(1)
    ) == ["same_account"]
    gmail_adv = await make_advocate(session, email="ann@gmail.com")
    friend = await make_referral(
        session, program=program, advocate=gmail_adv, email="bob@gmail.com"
    )
    assert (
        await fraud.assess_referral(session, friend, click=None, advocate=gmail_adv, now=at(1))
        == []
    )


async def test_disposable_and_too_fast(session, codec):
    program, advocate, link = await make_world(session, codec)
    click = await make_click(session, link=link, occurred_at=at(0))
    referral = await make_referral(
        session, program=program, advocate=advocate, link=link, email="x@mailinator.com"
    )
    flags = await fraud.assess_referral(
        session, referral, click=click, advocate=advocate, now=at(0, seconds=2)
    )
    assert flags == ["disposable_email", "too_fast"]


async def test_same_device_as_the_advocates_own_visit(session, codec):
    program, advocate, link = await make_world(session, codec)
    await make_click(
        session, link=link, occurred_at=at(0), ip_hash="h1", user_agent="UA", visitor_id="adv"
    )
    friend_click = await make_click(
        session,
        link=link,
        occurred_at=at(0, minutes=5),
        ip_hash="h1",
        user_agent="UA",
        visitor_id="private",
    )
    referral = await make_referral(session, program=program, advocate=advocate, link=link)
    flags = await fraud.assess_referral(
        session, referral, click=friend_click, advocate=advocate, now=at(0, minutes=6)
    )
    assert flags == ["same_device"]
    # The friend's own repeat visit (same visitor id) is not the advocate.
    repeat = await make_click(
        session,
        link=link,
        occurred_at=at(0, minutes=7),
        ip_hash="h2",
        user_agent="UA",
        visitor_id="f",
    )
    await make_click(
        session,
        link=link,
        occurred_at=at(0, minutes=8),
        ip_hash="h2",
        user_agent="UA",
        visitor_id="f",
    )
    assert (
        await fraud.assess_referral(
            session, referral, click=repeat, advocate=advocate, now=at(0, minutes=9)
        )
        == []
    )


async def test_velocity_per_link_and_per_ip(session, codec):
    program, advocate, link = await make_world(
        session, codec, settings={"fraud": {"max_claims_per_link": 2, "max_claims_per_ip": 1}}
    )
    made = [
        await make_referral(
            session,
            program=program,
            advocate=advocate,
            link=link,
            ip_hash="same",
            created_at=at(0, minutes=i),
        )
        for i in range(3)
    ]
    flags = await fraud.assess_referral(
        session, made[-1], click=None, advocate=advocate, now=at(0, minutes=3)
    )
    assert flags == ["velocity_link", "velocity_ip"]
    later = await fraud.assess_referral(
        session, made[-1], click=None, advocate=advocate, now=at(0, minutes=30)
    )
    assert later == []


async def test_flagging_queues_for_moderation_and_decisions_are_audited(session, codec):
    program, advocate, link = await make_world(session, codec)
    a = await make_referral(session, program=program, advocate=advocate, link=link)
    b = await make_referral(session, program=program, advocate=advocate, link=link)
    await moderation.flag_referral(session, a, ["too_fast"], now=at(1))
    await moderation.flag_referral(session, b, ["velocity_ip", "too_fast"], now=at(1))
    await moderation.flag_referral(session, b, [], now=at(1))
    page = await moderation.moderation_queue(session, program_id=program.id, first=10, after=None)
    assert [(r.id, r.flags) for r in page.items] == [
        (a.id, ["too_fast"]),
        (b.id, ["too_fast", "velocity_ip"]),
    ]

    with pytest.raises(ValidationFailed):
        await moderation.moderate_referral(
            session, a.id, approve=True, reason=" ", actor="admin", now=at(2)
        )
    assert a.moderation == "pending"
    result = await moderation.moderate_referral(
        session, a.id, approve=True, reason="real person", actor="admin:ann", now=at(2)
    )
    assert result.changed
    assert a.moderation == "approved"
    assert a.moderation_reason == "real person"
    repeat = await moderation.moderate_referral(
        session, a.id, approve=True, reason="again", actor="admin:ann", now=at(3)
    )
    assert repeat.changed is False
    with pytest.raises(Conflict):
        await moderation.moderate_referral(
            session, a.id, approve=False, reason="changed mind", actor="admin", now=at(3)
        )
    await moderation.moderate_referral(
        session, b.id, approve=False, reason="bot farm", actor="admin:ann", now=at(2)
    )
    assert (b.status, b.moderation) == ("rejected", "rejected")
    events = list(
        await session.scalars(
            select(ReferralEvent)
            .where(ReferralEvent.referral_id == b.id)
            .order_by(ReferralEvent.id)
        )
    )
    assert [(e.from_status, e.to_status, e.source, e.actor) for e in events] == [
        (None, "lead", "landing", "landing"),
        ("lead", "lead", "moderation", "admin:ann"),
        ("lead", "rejected", "moderation", "admin:ann"),
    ]
    assert events[1].detail == {
        "moderation": "rejected",
        "reason": "bot farm",
        "flags": ["too_fast", "velocity_ip"],
    }
    page = await moderation.moderation_queue(session, program_id=None, first=10, after=None)
    assert page.items == []
    assert (await session.get(Referral, a.id)).status == "lead"
