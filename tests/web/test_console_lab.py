"""The console's lab: an experiment's lift and interval as a chart with its CSV, and the
backtest form comparing an edited copy of the rules with the actual ledger."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select

from tests.advocacy.conftest import make_scored
from tests.api.builders import make_referral
from tests.factories import make_advocate, make_api_key, make_link, make_program, make_reward_rule
from tests.web.test_console import _csrf, _sign_in
from vouch.advocacy.experiments import ExperimentSpec, create_experiment
from vouch.attribution import lifecycle
from vouch.core.clock import utcnow
from vouch.models import Reward, RewardRule


async def test_experiment_page_charts_the_lift_and_exports_csv(client, session):
    program = await make_program(session)
    for tier in (1, 1, 2, 2, 2, 2, 3, 3):
        advocate = await make_advocate(session)
        await make_scored(session, advocate.id, program.id, tier)
    experiment = await create_experiment(
        session, program.id, ExperimentSpec(name="Spring holdout", holdout_bps=2500), now=utcnow()
    )
    key = await make_api_key(session, scopes=["read"])
    assert (await client.get("/console/experiments")).status_code == 303  # signed out
    await _sign_in(client, key)

    page = await client.get("/console/experiments")
    assert page.status_code == 200
    assert "Spring holdout" in page.text
    assert 'data-verdict="insufficient_sample"' in page.text
    assert "Too early to call." in page.text
    assert "<svg" in page.text
    rows = re.findall(r'<tr data-outcome="([a-z_]+)">', page.text)
    assert rows == ["referrals", "pipeline_minor", "revenue_minor", "renewed", "expansions"]
    strata = re.search(r'<table id="strata">.*?</table>', page.text, re.S)
    assert strata is not None
    assert re.findall(
        r"<th scope=\"row\">(\d)</th><td>(\d+)</td><td>(\d+)</td>", strata.group(0)
    ) == [
        ("1", "1", "1"),
        ("2", "3", "1"),
        ("3", "1", "1"),
    ]

    csv = await client.get(f"/console/experiments/{experiment.id}.csv")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0].startswith("outcome,n_treatment,n_holdout,mean_treatment,mean_holdout")
    assert [line.split(",")[:3] for line in lines[1:]] == [
        [name, "5", "3"]
        for name in ("referrals", "pipeline_minor", "revenue_minor", "renewed", "expansions")
    ]
    assert (await client.get("/console/experiments/999999.csv")).status_code == 404


async def test_backtest_form_compares_an_edited_copy_and_saves_nothing(client, session, codec):
    program = await make_program(session)
    await make_reward_rule(session, program=program, name="Referrer credit", amount_minor=5_000)
    advocate = await make_advocate(session)
    link = await make_link(session, codec, advocate=advocate, program=program)
    for days in (3, 2):
        at = utcnow() - timedelta(days=days)
        referral = await make_referral(session, link=link, created_at=at)
        await lifecycle.on_referral_created(session, referral, source="landing", actor=None, now=at)
        await lifecycle.transition(session, referral.id, "won", source="crm", actor=None, now=at)
    key = await make_api_key(session, scopes=["read"])
    await _sign_in(client, key)

    form = await client.get(f"/console/backtest?program={program.id}")
    assert form.status_code == 200
    assert 'value="Referrer credit"' in form.text
    assert 'name="rule-0-amount_minor" value="5000"' in form.text
    today = utcnow().date()
    data = {
        "csrf": _csrf(form.text),
        "program": str(program.id),
        "since": str(today - timedelta(days=30)),
        "until": str(today + timedelta(days=1)),
        "holding_days": "0",
        "rule-0-name": "Referrer credit",
        "rule-0-side": "referrer",
        "rule-0-trigger": "won",
        "rule-0-calc": "fixed",
        "rule-0-kind": "credit",
        "rule-0-amount_minor": "7000",
        "rule-0-clawback_days": "60",
    }
    before = (
        await session.scalar(select(func.count()).select_from(Reward)),
        await session.scalar(select(func.count()).select_from(RewardRule)),
    )
    compared = await client.post("/console/backtest", data=data)
    assert compared.status_code == 200
    row = re.search(r'<tr data-currency="USD">(.*?)</tr>', compared.text, re.S)
    assert row is not None
    assert re.findall(r'data-minor="(-?\d+)"', row.group(1)) == ["10000", "14000", "4000"]
    assert (
        await session.scalar(select(func.count()).select_from(Reward)),
        await session.scalar(select(func.count()).select_from(RewardRule)),
    ) == before

    bad = await client.post("/console/backtest", data=data | {"rule-0-amount_minor": "lots"})
    assert bad.status_code == 400
    assert "amount_minor must be a whole number" in bad.text
    forged = await client.post("/console/backtest", data=data | {"csrf": "nope"})
    assert forged.status_code == 403
