"""Advocacy KPIs, exact on a hand-built data set."""

from __future__ import annotations

import pytest

from tests.advocacy.conftest import NOW, days_ago, make_opportunity, make_scored
from tests.factories import make_advocate, make_program
from vouch.advocacy.kpis import (
    ConversionBy,
    Window,
    advocacy_kpis,
    ask_conversion,
)
from vouch.core.errors import ValidationFailed
from vouch.models import ActionOpportunity, AdvocacyAction, Ask, RevenueEvent


async def build(session):
    program = await make_program(session)
    other_program = await make_program(session)
    a = await make_advocate(session, persona="champion")
    b = await make_advocate(session, persona="admin")
    c = await make_advocate(session, persona=None)
    d = await make_advocate(session, persona="admin")
    for person, tier in ((a, 1), (b, 2), (c, 3), (d, 3)):
        await make_scored(session, person.id, program.id, tier)

    def ask(
        person, type_, moment, sent, accepted=None, published=None, declined=None, prog=program
    ):
        return Ask(
            advocate_id=person.id,
            program_id=prog.id,
            type=type_,
            moment=moment,
            status="published"
            if published
            else "declined"
            if declined
            else "accepted"
            if accepted
            else "sent"
            if sent is not None
            else "queued",
            queued_at=days_ago(30),
            sent_at=days_ago(sent) if sent is not None else None,
            accepted_at=days_ago(accepted) if accepted is not None else None,
            published_at=days_ago(published) if published is not None else None,
            declined_at=days_ago(declined) if declined is not None else None,
        )

    session.add_all(
        [
            ask(a, "case_study", "renewal_signed", 20, accepted=18, published=10),
            ask(a, "review", "five_star_rating", 15, declined=14),
            ask(b, "referral_invite", "nps_promoter", 12, accepted=11, published=7),
            ask(b, "review", "five_star_rating", 5, accepted=4),
            ask(c, "social_share", "nps_promoter", 3),
            ask(c, "survey", "manual", None),
            ask(d, "review", "manual", 2, prog=other_program),
        ]
    )
    case_study = AdvocacyAction(
        advocate_id=a.id, program_id=program.id, kind="case_study", occurred_at=days_ago(10)
    )
    talk = AdvocacyAction(
        advocate_id=a.id, program_id=program.id, kind="talk", occurred_at=days_ago(2)
    )
    referral = AdvocacyAction(
        advocate_id=b.id, program_id=program.id, kind="referral", occurred_at=days_ago(7)
    )
    session.add_all([case_study, talk, referral])
    await session.flush()
    open_deal = await make_opportunity(session, amount_minor=500_000, currency="USD", status="open")
    won_usd = await make_opportunity(session, amount_minor=300_000, currency="USD", status="won")
    won_eur = await make_opportunity(session, amount_minor=200_000, currency="EUR", status="won")
    untouched = await make_opportunity(session, amount_minor=999, currency="USD", status="won")
    session.add_all(
        [
            ActionOpportunity(action_id=case_study.id, opportunity_id=open_deal.id),
            ActionOpportunity(action_id=case_study.id, opportunity_id=won_usd.id),
            ActionOpportunity(action_id=referral.id, opportunity_id=won_usd.id),
            ActionOpportunity(action_id=referral.id, opportunity_id=won_eur.id),
        ]
    )

    def revenue(ext, opp, kind, amount, currency):
        return RevenueEvent(
            external_id=ext,
            opportunity_id=opp.id,
            kind=kind,
            amount_minor=amount,
            currency=currency,
            occurred_at=days_ago(1),
            source="billing",
        )

    session.add_all(
        [
            revenue("r1", won_usd, "recurring", 100_000, "USD"),
            revenue("r2", won_usd, "refund", 20_000, "USD"),
            revenue("r3", won_eur, "one_time", 50_000, "EUR"),
            revenue("r4", untouched, "one_time", 999, "USD"),
        ]
    )
    await session.flush()
    return program


def rows(conversion):
    return [
        (r.key, r.asked, r.accepted, r.published, r.declined, r.accept_rate, r.publish_rate)
        for r in conversion
    ]


async def test_all_kpis_exact(session):
    program = await build(session)
    k = await advocacy_kpis(session, program_id=program.id, window=Window())
    assert rows(k.conversion_by_type) == [
        ("case_study", 1, 1, 1, 0, 1.0, 1.0),
        ("referral_invite", 1, 1, 1, 0, 1.0, 1.0),
        ("review", 2, 1, 0, 1, 0.5, 0.0),
        ("social_share", 1, 0, 0, 0, 0.0, 0.0),
    ]
    assert rows(k.conversion_by_moment) == [
        ("five_star_rating", 2, 1, 0, 1, 0.5, 0.0),
        ("nps_promoter", 2, 1, 1, 0, 0.5, 0.5),
        ("renewal_signed", 1, 1, 1, 0, 1.0, 1.0),
    ]
    assert rows(k.conversion_by_persona) == [
        ("admin", 2, 2, 1, 0, 1.0, 0.5),
        ("champion", 2, 1, 1, 1, 0.5, 0.5),
        ("unknown", 1, 0, 0, 0, 0.0, 0.0),
    ]
    assert (
        k.time_to_publish.published,
        k.time_to_publish.median_days,
        k.time_to_publish.mean_days,
    ) == (2, 7.5, 7.5)
    assert (k.activation.pool, k.activation.activated, k.activation.rate) == (4, 2, 0.5)
    assert (k.half_life.advocates, k.half_life.median_days) == (2, 4.0)
    inf = k.influenced
    assert inf.opportunities == 3
    assert [(m.currency, m.amount_minor) for m in inf.open_pipeline] == [("USD", 500_000)]
    assert [(m.currency, m.amount_minor) for m in inf.won] == [("EUR", 200_000), ("USD", 300_000)]
    assert [(m.currency, m.amount_minor) for m in inf.revenue] == [("EUR", 50_000), ("USD", 80_000)]


async def test_window_limits_every_kpi(session):
    program = await build(session)
    k = await advocacy_kpis(session, program_id=program.id, window=Window(since=days_ago(6)))
    assert rows(k.conversion_by_type) == [
        ("review", 1, 1, 0, 0, 1.0, 0.0),
        ("social_share", 1, 0, 0, 0, 0.0, 0.0),
    ]
    assert (k.time_to_publish.published, k.time_to_publish.median_days) == (0, None)
    assert (k.activation.activated, k.half_life.advocates, k.half_life.median_days) == (1, 1, 0.0)
    assert k.influenced.opportunities == 0
    everything = await ask_conversion(
        session, program_id=None, by=ConversionBy.TYPE, window=Window()
    )
    assert [(r.key, r.asked) for r in everything][-2:] == [("review", 3), ("social_share", 1)]


def test_bad_windows():
    with pytest.raises(ValidationFailed) as exc:
        Window(since=NOW, until=days_ago(1))
    assert exc.value.message == "since must be before until"
    with pytest.raises(ValidationFailed):
        Window(since=NOW.replace(tzinfo=None))
