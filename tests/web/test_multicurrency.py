"""Issue 13, items 8 and 9: a USD program with an EUR deal. The leaderboard has one row per
advocate (ranked by deals won, then referrals; revenue per currency), and the console shows
every currency the API and the CSV show."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime

from tests.api.graphql import gql
from tests.attribution.factories import make_referral
from tests.factories import make_advocate, make_api_key, make_link, make_program, make_reward_rule
from tests.web.test_console import _sign_in
from vouch.api.ids import encode_id
from vouch.attribution import opportunities, revenue
from vouch.attribution.opportunities import OpportunityData
from vouch.attribution.revenue import RevenueData


def d(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


async def build(session, codec):
    """P (USD), referrer reward 10 % of the won deal. Ann: a USD 100 000 deal and an EUR
    80 000 deal, both won and charged. Bob: one USD 500 000 deal won and charged, two leads."""
    p = await make_program(session, name="P", currency="USD")
    ann = await make_advocate(session, first_name="Ann", last_name="Alpha", tier=1)
    bob = await make_advocate(session, first_name="Bob", last_name="Beta", tier=2)
    la = await make_link(session, codec, advocate=ann, program=p, channel="email")
    lb = await make_link(session, codec, advocate=bob, program=p, channel="email")
    await make_reward_rule(
        session,
        program=p,
        name="ten percent",
        calc="percent",
        amount_minor=None,
        currency=None,
        percent_bps=1000,
    )

    async def won_deal(link, advocate, crm, amount, currency, day):
        ref = await make_referral(
            session, program=p, advocate=advocate, link=link, created_at=d(3, day)
        )
        for status in ("open", "won"):
            await opportunities.upsert_opportunity(
                session,
                OpportunityData(
                    crm_id=crm,
                    stage=status,
                    status=status,
                    amount_minor=amount,
                    currency=currency,
                    referral_id=ref.id,
                    close_date=date(2026, 3, day + 1) if status == "won" else None,
                ),
                source="crm",
                actor="crm",
                now=d(3, day + 1),
            )
        await revenue.record_revenue(
            session,
            RevenueData(
                external_id=f"ch-{crm}",
                kind="one_time",
                amount_minor=amount,
                currency=currency,
                occurred_at=d(3, day + 2),
                opportunity_crm_id=crm,
            ),
            source="billing",
            actor="billing",
            now=d(3, day + 2),
        )

    await won_deal(la, ann, "A1", 100_000, "USD", 2)
    await won_deal(la, ann, "A2", 80_000, "EUR", 5)
    await won_deal(lb, bob, "B1", 500_000, "USD", 8)
    for day in (10, 11):
        await make_referral(session, program=p, advocate=bob, link=lb, created_at=d(3, day))
    return p, ann, bob


LEADERS = """query($p: ID, $n: Int!) { reports(programId: $p, since: "2026-03-01",
  until: "2026-04-01") { leaderboard(limit: $n) { rank name leads won
  revenue { currency amountMinor } } } }"""


async def test_leaderboard_one_row_per_advocate_revenue_per_currency(client, session, codec):
    p, ann, bob = await build(session, codec)
    key = await make_api_key(session, scopes=["read"])
    pid = encode_id("Program", p.id)
    board = (await gql(client, LEADERS, {"p": pid, "n": 10}, token=key))["data"]["reports"]
    assert board["leaderboard"] == [
        {
            "rank": 1,
            "name": "Ann Alpha",
            "leads": 2,
            "won": 2,
            "revenue": [
                {"currency": "EUR", "amountMinor": 80_000},
                {"currency": "USD", "amountMinor": 100_000},
            ],
        },
        {
            "rank": 2,
            "name": "Bob Beta",
            "leads": 3,
            "won": 1,
            "revenue": [{"currency": "USD", "amountMinor": 500_000}],
        },
    ]
    top = (await gql(client, LEADERS, {"p": pid, "n": 1}, token=key))["data"]["reports"]
    assert [r["name"] for r in top["leaderboard"]] == ["Ann Alpha"]
    response = await client.get(
        f"/reports/leaderboard.csv?programId={pid}&since=2026-03-01&until=2026-04-01",
        headers={"authorization": f"Bearer {key}"},
    )
    assert list(csv.reader(io.StringIO(response.text))) == [
        [
            "rank",
            "advocate_id",
            "name",
            "tier",
            "leads",
            "won",
            "revenue_minor_EUR",
            "revenue_minor_USD",
        ],
        ["1", encode_id("Advocate", ann.id), "Ann Alpha", "1", "2", "2", "80000", "100000"],
        ["2", encode_id("Advocate", bob.id), "Bob Beta", "2", "3", "1", "0", "500000"],
    ]


def cells(html: str, section: str) -> str:
    found = re.search(rf'<section class="panel" id="{section}">(.*?)</section>', html, re.S)
    assert found is not None, section
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1)))


async def test_console_shows_every_currency_the_api_shows(client, session, codec):
    p, _ann, _bob = await build(session, codec)
    key = await make_api_key(session, scopes=["read"])
    pid = encode_id("Program", p.id)
    q = """query($p: ID) { reports(programId: $p, since: "2026-03-01", until: "2026-04-01") {
      pipeline(groupBy: "month") { key currency wonMinor revenueMinor }
      cost { currency pendingMinor rewardCostMinor revenueMinor } } }"""
    data = (await gql(client, q, {"p": pid}, token=key))["data"]["reports"]
    assert data["pipeline"] == [
        {"key": "2026-03", "currency": "EUR", "wonMinor": 80_000, "revenueMinor": 80_000},
        {"key": "2026-03", "currency": "USD", "wonMinor": 600_000, "revenueMinor": 600_000},
    ]
    assert data["cost"] == [
        {
            "currency": "EUR",
            "pendingMinor": 8_000,
            "rewardCostMinor": 8_000,
            "revenueMinor": 80_000,
        },
        {
            "currency": "USD",
            "pendingMinor": 60_000,
            "rewardCostMinor": 60_000,
            "revenueMinor": 600_000,
        },
    ]
    assert (await _sign_in(client, key)).status_code == 303
    page = await client.get(f"/console?program={p.id}&since=2026-03-01&until=2026-04-01")
    assert page.status_code == 200
    shown = {
        section: [a for a in AMOUNTS if a in cells(page.text, section)]
        for section in ("pipeline", "liability", "leaders")
    }
    assert shown == {
        "pipeline": ["EUR 800.00", "USD 6,000.00"],
        "liability": ["EUR 80.00", "USD 600.00"],
        "leaders": ["EUR 800.00", "USD 1,000.00", "USD 5,000.00"],
    }


AMOUNTS = ("EUR 800.00", "USD 6,000.00", "EUR 80.00", "USD 600.00", "USD 1,000.00", "USD 5,000.00")
