"""The seeds' referral KPIs (docs/REPORTS.md#kpis) against a hand-built dataset: events are
recorded through the API, and the expected values come from a reference model in plain
Python over the same list of events (written from the definitions, not from the SQL)."""

from __future__ import annotations

import csv
import io
import re
import statistics
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import func

from tests.api.graphql import gql
from tests.attribution.factories import make_referral
from tests.factories import make_advocate, make_api_key, make_link, make_program
from tests.web.test_console import _sign_in
from vouch.api.ids import encode_id
from vouch.attribution import lifecycle, moderation
from vouch.core.clock import utcnow

SHARING = {"link_copied", "channel_chosen", "qr_shown"}


def r4(n: int, d: int) -> float | None:
    if d == 0:
        return None
    return float((Decimal(n) / Decimal(d)).quantize(Decimal("0.0001"), ROUND_HALF_EVEN))


@dataclass
class Ledger:
    """What was recorded, as plain facts."""

    pool: set[str] = field(default_factory=set)
    icp: set[str] = field(default_factory=set)
    shares: list[tuple[str, str]] = field(default_factory=list)  # (advocate, kind)
    asks: list[tuple[str, str, str]] = field(default_factory=list)  # (advocate, type, outcome)
    signals: list[tuple[str, str, float | None]] = field(default_factory=list)
    referrals: list[tuple[str, float | None, bool]] = field(default_factory=list)  # cycle days

    def expected(self) -> dict[str, object]:
        pool = self.pool
        shares = [(a, k) for a, k in self.shares if a in pool]
        initiated = {a for a, _ in shares}
        sharers = {a for a, k in shares if k in SHARING}
        edited = {a for a, k in shares if k == "message_edited"}
        invites = sum(1 for _, k in shares if k in SHARING)
        intro = [(a, o) for a, t, o in self.asks if t == "referral_invite" and a in pool]
        asked = {a for a, _ in intro}
        offered = {a for a, o in intro if o in ("accept", "publish")}

        def sig(kind: str) -> list[tuple[str, float | None]]:
            return [(a, v) for a, k, v in self.signals if k == kind and a in pool]

        qbrs = sig("qbr_referral_intent")
        mentions = sig("organic_mention")
        sentiment = [v for _, v in sig("sentiment") if v is not None]
        live = [r for r in self.referrals if not r[2]]
        cycles = [days for _, days, _ in live if days is not None]
        return {
            "pool": len(pool),
            "discussionInitiated": len(initiated),
            "discussionInitiationRate": r4(len(initiated), len(pool)),
            "sharers": len(sharers),
            "shareRate": r4(len(sharers), len(pool)),
            "icpPool": len(pool & self.icp),
            "icpSharers": len(sharers & self.icp),
            "icpShareRate": r4(len(sharers & self.icp), len(pool & self.icp)),
            "personalisedSharers": len(sharers & edited),
            "personalisedOutreachRate": r4(len(sharers & edited), len(sharers)),
            "introductionsAsked": len(asked),
            "introductionAskRate": r4(len(asked), len(pool)),
            "introductionsOffered": len(offered),
            "warmIntroductionOfferRate": r4(len(offered), len(asked)),
            "qbrs": len(qbrs),
            "qbrsWithReferralIntent": sum(1 for _, v in qbrs if v is None or v > 0),
            "qbrReferralIntentRate": r4(sum(1 for _, v in qbrs if v is None or v > 0), len(qbrs)),
            "mentions": len(mentions),
            "mentioningAdvocates": len({a for a, _ in mentions}),
            "sentimentSignals": len(sentiment),
            "sentimentPositive": sum(1 for v in sentiment if v > 0),
            "sentimentNeutral": sum(1 for v in sentiment if v == 0),
            "sentimentNegative": sum(1 for v in sentiment if v < 0),
            "sentimentAverage": round(sum(sentiment) / len(sentiment), 4) if sentiment else None,
            "invites": invites,
            "referrals": len(live),
            "invitesPerAdvocate": r4(invites, len(pool)),
            "inviteConversion": r4(len(live), invites),
            "kFactor": r4(len(live), len(pool)) if invites else None,
            "cycleReferrals": len(cycles),
            "cycleMedianDays": round(statistics.median(cycles), 2) if cycles else None,
            "cycleMeanDays": round(statistics.mean(cycles), 2) if cycles else None,
        }


FIELDS = " ".join(Ledger().expected().keys())


async def test_referral_kpis_match_the_reference_model(client, session, codec, app):
    now = utcnow()
    p = await make_program(session, slug="kpi-program")
    other = await make_program(session, slug="other-program")
    ledger = Ledger()
    names = {}
    for name, icp in (("ann", True), ("bea", True), ("cid", False), ("dan", False)):
        adv = await make_advocate(session, external_id=name, is_icp=icp)
        names[name] = adv
        if name != "dan":  # dan has no link in the program: outside the pool
            await make_link(session, codec, advocate=adv, program=p, channel="direct")
            ledger.pool.add(name)
        if icp:
            ledger.icp.add(name)
    # Erased advocates leave the pool.
    gone = await make_advocate(session, external_id="gone", is_icp=True, erased_at=func.now())
    await make_link(session, codec, advocate=gone, program=p)
    # dan shares in another program only.
    await make_link(session, codec, advocate=names["dan"], program=other)

    share = """mutation($k: String!, $c: String, $s: String) {
      recordShareEvent(kind: $k, channel: $c, programSlug: $s) { recorded errors { code } } }"""
    for name, kind, channel, slug in (
        ("ann", "page_opened", None, "kpi-program"),
        ("ann", "channel_chosen", "email", "kpi-program"),
        ("ann", "message_edited", "email", "kpi-program"),
        ("bea", "page_opened", None, "kpi-program"),
        ("cid", "link_copied", None, "kpi-program"),
        ("cid", "qr_shown", None, "kpi-program"),
        ("dan", "link_copied", None, "other-program"),
    ):
        token = app.state.widget_tokens.mint(names[name].id)
        out = await gql(client, share, {"k": kind, "c": channel, "s": slug}, token=token)
        assert out["data"]["recordShareEvent"] == {"recorded": True, "errors": []}
        if slug == "kpi-program":
            ledger.shares.append((name, kind))

    admin = await make_api_key(session, scopes=["admin"])
    create = """mutation($a: ID!, $p: ID!, $t: AskType!) { createAsk(advocateId: $a,
      programId: $p, type: $t, team: MARKETING) { ask { id } errors { code } } }"""
    send = "mutation($id: ID!) { sendAsk(id: $id) { ask { status } errors { code } } }"
    move = """mutation($id: ID!, $to: AskTransition!) { transitionAsk(id: $id, to: $to,
      fallback: false) { errors { code } } }"""
    for name, ask_type, outcome in (
        ("ann", "referral_invite", "accept"),
        ("bea", "referral_invite", "decline"),
        ("cid", "review", "accept"),
    ):
        ids = {"a": encode_id("Advocate", names[name].id), "p": encode_id("Program", p.id)}
        made = (await gql(client, create, {**ids, "t": ask_type.upper()}, token=admin))["data"]
        ask_id = made["createAsk"]["ask"]["id"]
        sent = (await gql(client, send, {"id": ask_id}, token=admin))["data"]["sendAsk"]
        assert sent == {"ask": {"status": "SENT"}, "errors": []}
        moved = await gql(client, move, {"id": ask_id, "to": outcome.upper()}, token=admin)
        assert moved["data"]["transitionAsk"] == {"errors": []}
        ledger.asks.append((name, ask_type, outcome))

    signal = """mutation($i: SignalInput!) { recordSignal(input: $i) { errors { code } } }"""
    for i, (name, kind, value) in enumerate(
        (
            ("ann", "qbr_referral_intent", None),
            ("bea", "qbr_referral_intent", 0),
            ("cid", "qbr_referral_intent", 1),
            ("ann", "organic_mention", None),
            ("ann", "organic_mention", None),
            ("cid", "organic_mention", None),
            ("dan", "organic_mention", None),
            ("ann", "sentiment", 0.8),
            ("bea", "sentiment", -0.5),
            ("cid", "sentiment", 0),
        )
    ):
        values: dict[str, object] = {
            "advocateId": encode_id("Advocate", names[name].id),
            "kind": kind.upper(),  # the SignalKind enum's name
            "occurredAt": (now - timedelta(hours=1, minutes=i)).isoformat(),
        }
        if value is not None:
            values["value"] = value
        out = await gql(client, signal, {"i": values}, token=admin)
        assert out["data"]["recordSignal"] == {"errors": []}, (name, kind)
        ledger.signals.append((name, kind, value))

    won = await make_referral(
        session, program=p, advocate=names["ann"], created_at=now - timedelta(days=10)
    )
    for status, days_ago in (("qualified", 9), ("opportunity", 8), ("won", 4)):
        await lifecycle.transition(
            session, won.id, status, source="crm", actor="crm", now=now - timedelta(days=days_ago)
        )
    ledger.referrals.append(("ann", 6.0, False))
    await make_referral(
        session, program=p, advocate=names["cid"], created_at=now - timedelta(days=2)
    )
    ledger.referrals.append(("cid", None, False))
    bad = await make_referral(
        session, program=p, advocate=names["ann"], created_at=now - timedelta(days=1)
    )
    await moderation.flag_referral(session, bad, ["velocity_ip"], now=now)
    await moderation.moderate_referral(
        session, bad.id, approve=False, reason="farm", actor="admin", now=now
    )
    ledger.referrals.append(("ann", None, True))

    since = (now - timedelta(days=30)).date().isoformat()
    until = (now + timedelta(days=1)).date().isoformat()
    q = f"""query($p: ID) {{ reports(programId: $p, since: "{since}", until: "{until}") {{
      kpis {{ {FIELDS} }} }} }}"""
    got = (await gql(client, q, {"p": encode_id("Program", p.id)}, token=admin))["data"]
    expected = ledger.expected()
    assert got["reports"]["kpis"] == expected
    # The hand-computed values, for the reader.
    assert (expected["pool"], expected["sharers"], expected["invites"]) == (3, 2, 3)
    assert (expected["kFactor"], expected["cycleMedianDays"]) == (0.6667, 6.0)

    # The CSV export and the console show the same numbers under the same names.
    def snake(name: str) -> str:
        return "".join("_" + c.lower() if c.isupper() else c for c in name)

    as_text = {snake(k): "" if v is None else str(v) for k, v in expected.items()}
    pid = encode_id("Program", p.id)
    response = await client.get(
        f"/reports/kpis.csv?programId={pid}&since={since}&until={until}",
        headers={"authorization": f"Bearer {admin}"},
    )
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["metric", "value"]
    assert dict(rows[1:]) == as_text
    assert (await _sign_in(client, admin)).status_code == 303
    page = await client.get(f"/console?program={p.id}&since={since}&until={until}")
    shown = dict(
        re.findall(r'<tr data-metric="(\w+)"><th scope="row">[^<]*</th><td>([^<]*)</td>', page.text)
    )
    assert shown == {k: v or "–" for k, v in as_text.items()}
    console_csv = await client.get(
        f"/console/export/kpis.csv?program={p.id}&since={since}&until={until}"
    )
    assert dict(list(csv.reader(io.StringIO(console_csv.text)))[1:]) == as_text
