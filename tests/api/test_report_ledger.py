"""Every report cell against an independently built ledger (issue 13, "done when").

The ledger is built through the public surfaces only — GraphQL mutations, the landing pages
(clicks and claims with ``?ch=``), moderation, re-attribution, erasure — and each fact is also
written down here as plain Python. ``Reference`` computes every report from those facts,
following docs/REPORTS.md and nothing else, and the test compares every cell of the GraphQL
reports and of the CSV exports with it: two programs (USD, EUR), a USD program with an EUR
expansion deal, a partial refund, a re-attributed referral, a reopened deal, a rejected claim,
a self-referral and a duplicate claim that count nowhere, a bot click, non-referred revenue and
an erased friend.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

import httpx
from sqlalchemy import select

from tests.api.graphql import gql
from tests.factories import make_api_key
from tests.web.conftest import HUMAN_UA, csrf_from
from vouch.api.ids import encode_id
from vouch.models import Advocate, Program, Referral, ReferralLink

SLACK_UA = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
REACHED = {
    "qualified": {"qualified", "opportunity", "won", "churned", "refunded"},
    "opportunities": {"opportunity", "won", "churned", "refunded"},
    "won": {"won", "churned", "refunded"},
}


def r4(n: int, d: int) -> float | None:
    if d == 0:
        return None
    return float((Decimal(n) / Decimal(d)).quantize(Decimal("0.0001"), ROUND_HALF_EVEN))


@dataclass
class Ref:
    program: str
    advocate: str
    channel: str
    created: date
    reached: set[str] = field(default_factory=set)
    rejected: bool = False
    first_won: date | None = None


@dataclass
class Deal:
    ref: str | None
    kind: str
    amount: int
    currency: str
    created: date
    won_on: date | None = None  # close date while its status is won; None otherwise


@dataclass
class Money:
    ref: str | None
    deal: str | None
    signed: int
    currency: str
    on: date


@dataclass
class Reference:
    """The ledger as plain facts, and the reports computed from them."""

    programs: dict[str, tuple[int, str, str]] = field(default_factory=dict)  # id, name, cur
    advocates: dict[str, tuple[int, str]] = field(default_factory=dict)  # id, display name
    refs: dict[str, Ref] = field(default_factory=dict)
    deals: dict[str, Deal] = field(default_factory=dict)
    money: list[Money] = field(default_factory=list)
    clicks: list[tuple[str, bool, date]] = field(default_factory=list)  # program, bot, day
    rewards: list[tuple[str, str, int, str, date]] = field(default_factory=list)

    def parts(self, program: str | None) -> list[tuple[Ref, date, str, dict[str, int]]]:
        """Each referral's contributions: (referral, date, currency, measures)."""
        out = []
        for key, r in self.refs.items():
            if r.rejected or (program and r.program != program):
                continue
            out.append((r, r.created, self.programs[r.program][2], {"leads": 1}))
            for deal in self.deals.values():
                if deal.ref != key:
                    continue
                out.append(
                    (r, deal.created, deal.currency, {"opportunities": 1, "pipeline": deal.amount})
                )
                if deal.won_on is not None:
                    out.append(
                        (r, deal.won_on, deal.currency, {"won": 1, "won_minor": deal.amount})
                    )
            for m in self.money:
                if m.ref != key:
                    continue
                kind = self.deals[m.deal].kind if m.deal else "new_business"
                part = {"revenue": m.signed}
                part["sourced" if kind == "new_business" else "expansion"] = m.signed
                out.append((r, m.on, m.currency, part))
        return out

    def pipeline(self, group_by: str, program: str | None, since: date, until: date):
        rows: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        order: dict[str, Any] = {}  # report keys are opaque ids; rows come in row-id order
        for r, on, currency, part in self.parts(program):
            if not since <= on < until:
                continue
            if group_by == "program":
                pid, label = self.programs[r.program][:2]
                key = encode_id("Program", pid)
                order[key] = pid
            elif group_by == "advocate":
                aid, label = self.advocates[r.advocate]
                key = encode_id("Advocate", aid)
                order[key] = aid
            elif group_by == "channel":
                key = label = r.channel
            else:
                key = label = on.strftime("%Y-%m")
            for measure, value in part.items():
                rows[key, label, currency][measure] += value
        out = []
        for (key, label, currency), m in sorted(
            rows.items(),
            key=lambda kv: (order.get(kv[0][0], kv[0][0]), kv[0][2]),
        ):
            if not any(m[x] for x in ("leads", "opportunities", "pipeline", "won", "revenue")):
                continue
            out.append(
                {
                    "key": key,
                    "label": label,
                    "currency": currency,
                    "leads": m["leads"],
                    "opportunities": m["opportunities"],
                    "pipelineMinor": m["pipeline"],
                    "won": m["won"],
                    "wonMinor": m["won_minor"],
                    "revenueMinor": m["revenue"],
                    "sourcedRevenueMinor": m["sourced"],
                    "expansionRevenueMinor": m["expansion"],
                }
            )
        return out

    def funnel(self, program: str, since: date, until: date):
        clicks = sum(
            1 for p, bot, on in self.clicks if p == program and not bot and since <= on < until
        )
        leads = [
            r
            for r in self.refs.values()
            if r.program == program and not r.rejected and since <= r.created < until
        ]
        counts = [clicks, len(leads)] + [
            sum(1 for r in leads if r.reached & REACHED[s])
            for s in ("qualified", "opportunities", "won")
        ]
        names = ["clicks", "leads", "qualified", "opportunities", "won"]
        return [
            {
                "step": n,
                "count": c,
                "rateFromPrevious": r4(c, counts[i - 1]) if i else None,
                "rateFromFirst": r4(c, counts[0]) if i else None,
            }
            for i, (n, c) in enumerate(zip(names, counts, strict=True))
        ]

    def cost(self, program: str, since: date, until: date):
        customers = sum(
            1
            for r in self.refs.values()
            if r.program == program
            and not r.rejected
            and r.first_won
            and since <= r.first_won < until
        )
        by_state: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for p, currency, amount, state, on in self.rewards:
            if p == program and since <= on < until:
                by_state[currency][state] += amount
        revenue: dict[str, int] = defaultdict(int)
        total: dict[str, int] = defaultdict(int)
        for m in self.money:
            if not since <= m.on < until:
                continue
            total[m.currency] += m.signed
            if m.ref and not self.refs[m.ref].rejected and self.refs[m.ref].program == program:
                revenue[m.currency] += m.signed
        active = {c for _, on, c, _ in self.parts(program) if since <= on < until}
        rows = []
        for currency in sorted(set(by_state) | set(revenue) | active):
            s = by_state[currency]
            cost = s["pending"] + s["approved"] + s["fulfilled"]
            rows.append(
                {
                    "currency": currency,
                    "pendingMinor": s["pending"],
                    "approvedMinor": s["approved"],
                    "fulfilledMinor": s["fulfilled"],
                    "voidedMinor": s["voided"],
                    "rewardCostMinor": cost,
                    "revenueMinor": revenue[currency],
                    "totalRevenueMinor": total[currency],
                    "revenueShare": r4(revenue[currency], total[currency]),
                    "customers": customers,
                    "costPerCustomerMinor": int(
                        (Decimal(cost) / customers).quantize(Decimal(1), ROUND_HALF_UP)
                    )
                    if customers
                    else None,
                    "roi": r4(revenue[currency] - cost, cost),
                }
            )
        return rows

    def leaderboard(self, program: str | None, since: date, until: date, limit: int):
        stats: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"leads": 0, "won": 0, "revenue": defaultdict(int), "any": False}
        )
        for r, on, currency, part in self.parts(program):
            if not since <= on < until:
                continue
            s = stats[r.advocate]
            s["leads"] += part.get("leads", 0)
            s["won"] += part.get("won", 0)
            s["revenue"][currency] += part.get("revenue", 0)
        ranked = sorted(
            (a for a, s in stats.items() if s["leads"] or s["won"] or any(s["revenue"].values())),
            key=lambda a: (-stats[a]["won"], -stats[a]["leads"], self.advocates[a][0]),
        )[:limit]
        return [
            {
                "rank": i,
                "name": self.advocates[a][1],
                "leads": stats[a]["leads"],
                "won": stats[a]["won"],
                "revenue": [
                    {"currency": c, "amountMinor": v}
                    for c, v in sorted(stats[a]["revenue"].items())
                    if v
                ],
            }
            for i, a in enumerate(ranked, start=1)
        ]


class Api:
    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self.client, self.key = client, key

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        data = (await gql(self.client, query, variables, token=self.key))["data"]
        (payload,) = data.values()
        assert payload.get("errors", []) == [], payload
        return dict(payload)


def as_csv(row: dict[str, Any]) -> dict[str, str]:
    """A GraphQL report row as the CSV export writes it (snake_case, empty for null)."""
    snake = {k: "".join("_" + c.lower() if c.isupper() else c for c in k) for k in row}
    return {snake[k]: "" if v is None else str(v) for k, v in row.items()}


async def csv_rows(client, key, name, pid, since, until, group="program") -> list[dict[str, str]]:
    params = f"since={since}&until={until}&groupBy={group}" + (f"&programId={pid}" if pid else "")
    response = await client.get(
        f"/reports/{name}.csv?{params}", headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


async def claim(app, code: str, email: str, *, ch: str | None = None) -> httpx.Response:
    """One friend in their own browser: the landing page (a click), then the claim form."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        page = await browser.get(
            f"/r/{code}", params={"ch": ch} if ch else {}, headers={"user-agent": HUMAN_UA}
        )
        data = {"csrf": csrf_from(page.text), "email": email, "name": "A Friend", "consent": "yes"}
        return await browser.post(f"/r/{code}/claim", data=data, headers={"user-agent": HUMAN_UA})


async def test_every_report_cell_matches_the_reference_ledger(client, session, app):
    admin = Api(client, await make_api_key(session, scopes=["admin"]))
    today = datetime.now(UTC).date()
    ref = Reference()

    for slug, name, currency in (("pp", "Program P", "USD"), ("qq", "Program Q", "EUR")):
        out = await admin(
            """mutation($i: CreateProgramInput!) { createProgram(input: $i) {
            program { id } errors { code } } }""",
            i={"slug": slug, "name": name, "currency": currency},
        )
        pid = await session.scalar(select(Program.id).where(Program.slug == slug))
        ref.programs[slug] = (pid, name, currency)
        assert out["program"]["id"] == encode_id("Program", pid)
    await admin(
        """mutation($p: ID!, $r: [RewardRuleInput!]!) { setRewardRules(programId: $p, rules: $r)
        { errors { code } } }""",
        p=encode_id("Program", ref.programs["pp"][0]),
        r=[
            {
                "name": "thanks",
                "side": "REFERRER",
                "trigger": "WON",
                "amountMinor": 5_000,
                "currency": "USD",
            }
        ],
    )
    for ext, first in (("A", "Ann"), ("B", "Bob"), ("C", "Cid")):
        await admin(
            """mutation($i: AdvocateInput!) { upsertAdvocate(input: $i) { errors { code } } }""",
            i={
                "externalId": ext,
                "firstName": first,
                "lastName": "Ledger",
                "email": f"{first.lower()}@advocates.example",
            },
        )
        aid = await session.scalar(select(Advocate.id).where(Advocate.external_id == ext))
        ref.advocates[ext] = (aid, f"{first} Ledger")
    links: dict[str, tuple[int, str]] = {}
    for name, adv, prog, channel in (
        ("LA", "A", "pp", "email"),
        ("LB", "B", "pp", "direct"),
        ("LC", "C", "pp", "direct"),
        ("LQ", "A", "qq", "direct"),
    ):
        await admin(
            """mutation($a: ID!, $p: ID!, $c: String!) { createReferralLink(advocateId: $a,
            programId: $p, channel: $c) { errors { code } } }""",
            a=encode_id("Advocate", ref.advocates[adv][0]),
            p=encode_id("Program", ref.programs[prog][0]),
            c=channel,
        )
        link = await session.scalar(
            select(ReferralLink).where(
                ReferralLink.advocate_id == ref.advocates[adv][0],
                ReferralLink.program_id == ref.programs[prog][0],
            )
        )
        links[name] = (link.id, link.code)

    # Claims through the landing pages. Each claim follows its page load at once: too_fast
    # holds it for moderation, which approves it (or rejects r4).
    for key, link, adv, prog, ch, channel in (
        ("r1", "LA", "A", "pp", "linkedin", "linkedin"),
        ("r2", "LB", "B", "pp", None, "direct"),
        ("r3", "LB", "B", "pp", "whatsapp", "whatsapp"),
        ("r4", "LC", "C", "pp", None, "direct"),
        ("r5", "LQ", "A", "qq", "sms", "sms"),
    ):
        response = await claim(app, links[link][1], f"{key}@friends.example", ch=ch)
        assert response.status_code == 303
        ref.clicks.append((prog, False, today))
        ref.refs[key] = Ref(prog, adv, channel, today)
    # Counted nowhere: a duplicate claim (a second click, no second referral), the advocate's
    # own email (refused) and a link unfurler's visit (a bot click).
    # (the answer to a repeated claim is main's to choose; no second referral is what counts)
    assert (await claim(app, links["LA"][1], "r1@friends.example")).status_code in (200, 303)
    ref.clicks.append(("pp", False, today))
    assert (await claim(app, links["LB"][1], "bob@advocates.example")).status_code == 422
    ref.clicks.append(("pp", False, today))
    assert (
        await client.get(f"/r/{links['LA'][1]}", headers={"user-agent": SLACK_UA})
    ).status_code == 200
    ref.clicks.append(("pp", True, today))
    await app.state.clicks.flush()

    ids = {
        key: await session.scalar(
            select(Referral.id).where(Referral.email == f"{key}@friends.example")
        )
        for key in ref.refs
    }
    moderate = """mutation($r: ID!, $ok: Boolean!) { moderateReferral(referralId: $r,
      approve: $ok, reason: "reviewed") { errors { code } } }"""
    for key, rid in ids.items():
        await admin(moderate, r=encode_id("Referral", rid), ok=key != "r4")
    ref.refs["r4"].rejected = True

    upsert = """mutation($i: UpsertOpportunityInput!) { upsertOpportunity(input: $i) {
      errors { code } } }"""

    async def deal(crm, key, amount, currency, *, kind="new_business", status="open"):
        await admin(
            upsert,
            i={
                "crmId": crm,
                "stage": status,
                "status": status,
                "kind": kind,
                "amountMinor": amount,
                "currency": currency,
                "referralId": encode_id("Referral", ids[key]) if key else None,
                "closeDate": today.isoformat() if status == "won" else None,
            },
        )

    await deal("O1", "r1", 100_000, "USD")
    await deal("O1", "r1", 100_000, "USD", status="won")
    await deal("O2", "r1", 30_000, "EUR", kind="expansion")
    await deal("O2", "r1", 30_000, "EUR", kind="expansion", status="won")
    await deal("O3", "r2", 50_000, "USD")
    await deal("O4", "r3", 40_000, "USD")
    await deal("O4", "r3", 40_000, "USD", status="won")
    await deal("O5", "r5", 20_000, "EUR")
    await deal("O5", "r5", 20_000, "EUR", status="won")
    await deal("O5", "r5", 20_000, "EUR", status="open")  # the deal is reopened
    await deal("O9", None, 70_000, "USD", status="won")  # not referred
    for crm, key, amount, currency, kind, won in (
        ("O1", "r1", 100_000, "USD", "new_business", True),
        ("O2", "r1", 30_000, "EUR", "expansion", True),
        ("O3", "r2", 50_000, "USD", "new_business", False),
        ("O4", "r3", 40_000, "USD", "new_business", True),
        ("O5", "r5", 20_000, "EUR", "new_business", False),
    ):
        ref.deals[crm] = Deal(key, kind, amount, currency, today, today if won else None)
    for key in ("r1", "r2", "r3", "r5"):
        ref.refs[key].reached.add("opportunity")
    for key in ("r1", "r3", "r5"):
        ref.refs[key].reached.add("won")
        ref.refs[key].first_won = today
    ref.rewards += [("pp", "USD", 5_000, "pending", today)] * 2  # r1 and r3 won in P

    record = (
        """mutation($i: RecordRevenueInput!) { recordRevenue(input: $i) { errors { code } } }"""
    )
    at = datetime.now(UTC).isoformat()  # after every claim: revenue may not predate them
    charges: list[tuple[str, str | None, str | None, str, int, str | None, str | None]] = [
        ("ch1", "O1", "r1", "one_time", 100_000, "USD", None),
        ("ch2", "O2", "r1", "one_time", 30_000, "EUR", None),
        ("ch4", "O4", "r3", "one_time", 40_000, "USD", None),
        ("re4", None, "r3", "refund", 15_000, None, "ch4"),
        ("ch9", "O9", None, "one_time", 70_000, "USD", None),
    ]
    for ext, billed, owner, kind, amount, cur, refunds in charges:
        await admin(
            record,
            i={
                "externalId": ext,
                "kind": kind,
                "amountMinor": amount,
                "currency": cur,
                "occurredAt": at,
                "opportunityCrmId": billed,
                "refundsExternalId": refunds,
            },
        )
        signed = -amount if kind == "refund" else amount
        ref.money.append(Money(owner, billed or "O4", signed, cur or "USD", today))

    # Re-attribution: r2 (pipeline only) moves to C's direct link; erasure changes no number.
    await admin(
        """mutation($r: ID!, $l: ID!) { reattributeReferral(referralId: $r, linkId: $l,
        reason: "CRM says Cid") { errors { code } } }""",
        r=encode_id("Referral", ids["r2"]),
        l=encode_id("ReferralLink", links["LC"][0]),
    )
    ref.refs["r2"].advocate, ref.refs["r2"].channel = "C", "direct"
    await admin('mutation { eraseReferredPerson(email: "r3@friends.example") { errors { code } } }')

    since, until = today, today + timedelta(days=1)
    reports = """query($p: ID, $g: String!, $s: Date!, $u: Date!) {
      reports(programId: $p, since: $s, until: $u) {
      pipeline(groupBy: $g) { key label currency leads opportunities pipelineMinor won wonMinor
        revenueMinor sourcedRevenueMinor expansionRevenueMinor }
      funnel { step count rateFromPrevious rateFromFirst }
      cost { currency pendingMinor approvedMinor fulfilledMinor voidedMinor rewardCostMinor
        revenueMinor totalRevenueMinor revenueShare customers costPerCustomerMinor roi }
      leaderboard(limit: 2) { rank name leads won revenue { currency amountMinor } } } }"""
    scopes: list[str | None] = ["pp", "qq", None]
    for scope in scopes:
        pid = encode_id("Program", ref.programs[scope][0]) if scope else None
        for group in ("program", "advocate", "channel", "month"):
            variables = {"p": pid, "g": group, "s": str(since), "u": str(until)}
            got = (await gql(client, reports, variables, token=admin.key))["data"]
            r = got["reports"]
            expected = ref.pipeline(group, scope, since, until)
            assert r["pipeline"] == expected, (scope, group)
            assert await csv_rows(client, admin.key, "pipeline", pid, since, until, group) == [
                as_csv(row) for row in expected
            ]
        assert r["leaderboard"] == ref.leaderboard(scope, since, until, 2), scope
        if scope is not None:
            assert r["funnel"] == ref.funnel(scope, since, until), scope
            assert r["cost"] == ref.cost(scope, since, until), scope
            for name in ("funnel", "cost"):
                assert await csv_rows(client, admin.key, name, pid, since, until) == [
                    as_csv(row) for row in r[name]
                ]
    # For the reader: the hand-checked headline numbers of program P.
    p_cost = ref.cost("pp", since, until)
    assert [(c["currency"], c["revenueMinor"], c["totalRevenueMinor"]) for c in p_cost] == [
        ("EUR", 30_000, 30_000),
        ("USD", 125_000, 195_000),
    ]
