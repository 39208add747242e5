"""GraphQL: signal ingest, import, score explanation, tiers and settings."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.api.graphql import gql
from tests.factories import make_advocate, make_api_key, make_program
from vouch.api.ids import encode_id
from vouch.models import Program, Signal, TierEvent

RECORD = """mutation($input: SignalInput!) { recordSignal(input: $input) {
  signals { created signal { id kind value source externalId data } }
  errors { message field code } } }"""
RECORD_MANY = """mutation($s: [SignalInput!]!) { recordSignals(signals: $s) {
  signals { created } errors { message field code } } }"""
IMPORT = """mutation($f: ImportFormat!, $c: String!, $skip: Boolean!) {
  importSignals(format: $f, content: $c, skipInvalid: $skip) {
    created duplicates skipped rowErrors { row field message } errors { message field code } } }"""
EXPLAIN = """query($a: ID!, $p: ID!) { scoreExplanation(advocateId: $a, programId: $p) {
  score raw tier contributions { kind rule value weight decay points note } } }"""


async def count(session, model) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def signal(advocate_id, **extra):
    return {
        "advocateId": encode_id("Advocate", advocate_id),
        "kind": "NPS",
        "value": 10,
        "occurredAt": "2026-01-05T10:00:00Z",
        "source": "delighted",
        "externalId": "resp-1",
        **extra,
    }


async def test_record_signal_is_idempotent_and_explained(client, session):
    program = await make_program(session, settings={"scoring": {"half_life_days": None}})
    person = await make_advocate(session)
    key = await make_api_key(session, scopes=["write"])
    first = await gql(client, RECORD, {"input": signal(person.id, data={"q": "why"})}, token=key)
    again = await gql(client, RECORD, {"input": signal(person.id)}, token=key)
    one = first["data"]["recordSignal"]
    assert one["errors"] == []
    assert one["signals"][0]["created"] is True
    assert one["signals"][0]["signal"]["data"] == {"q": "why"}
    assert again["data"]["recordSignal"]["signals"][0]["created"] is False
    assert await count(session, Signal) == 1
    explained = await gql(
        client,
        EXPLAIN,
        {"a": encode_id("Advocate", person.id), "p": encode_id("Program", program.id)},
        token=key,
    )
    assert explained["data"]["scoreExplanation"] == {
        "score": 30.0,
        "raw": 30.0,
        "tier": None,
        "contributions": [
            {
                "kind": "nps",
                "rule": "nps_promoter",
                "value": 10.0,
                "weight": 30.0,
                "decay": 1.0,
                "points": 30.0,
                "note": "",
            }
        ],
    }


async def test_bad_signal_input_writes_nothing(client, session):
    person = await make_advocate(session)
    key = await make_api_key(session, scopes=["write"])
    # an unknown kind is not in the SignalKind enum: refused before anything runs
    vibes = await gql(
        client, RECORD, {"input": signal(person.id, kind="VIBES")}, token=key, expect_errors=True
    )
    assert vibes["data"] is None
    assert "SignalKind" in vibes["errors"][0]["message"]
    cases = [
        (signal(person.id, value=11), "value", "INVALID"),
        (signal(person.id, occurredAt="2099-01-01T00:00:00Z"), "occurredAt", "INVALID"),
        (signal(person.id, data=[1, 2]), "data", "INVALID"),
        ({**signal(person.id), "advocateId": encode_id("Program", 1)}, "advocateId", "INVALID"),
        (
            {**signal(person.id), "advocateId": encode_id("Advocate", 999_999)},
            "advocateId",
            "NOT_FOUND",
        ),
    ]
    for payload, field, code in cases:
        body = await gql(client, RECORD, {"input": payload}, token=key)
        errors = body["data"]["recordSignal"]["errors"]
        assert [(e["field"], e["code"]) for e in errors] == [(field, code)], payload
    many = await gql(
        client,
        RECORD_MANY,
        {"s": [signal(person.id), signal(person.id, externalId="r2", value=-1)]},
        token=key,
    )
    assert many["data"]["recordSignals"]["errors"][0]["field"] == "signals.1.value"
    assert await count(session, Signal) == 0


async def test_signal_ingest_needs_write_scope(client, session, app):
    person = await make_advocate(session)
    reader = await make_api_key(session, scopes=["read"])
    widget = app.state.widget_tokens.mint(person.id)
    for token in (reader, widget, None):
        body = await gql(
            client, RECORD, {"input": signal(person.id)}, token=token, expect_errors=True
        )
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await count(session, Signal) == 0


async def test_import_reports_every_bad_row_or_skips_them(client, session):
    await make_advocate(session, external_id="crm-1")
    key = await make_api_key(session, scopes=["write"])
    csv = (
        "advocate_external_id,kind,value,occurred_at,source,external_id\n"
        "crm-1,renewal,,2026-10-01T00:00:00Z,crm,a1\n"
        "crm-2,renewal,,2026-10-01T00:00:00Z,crm,a2\n"
        "crm-1,csat,9,2026-10-01T00:00:00Z,crm,a3\n"
    )
    strict = (await gql(client, IMPORT, {"f": "CSV", "c": csv, "skip": False}, token=key))["data"][
        "importSignals"
    ]
    assert strict["created"] == 0
    assert strict["rowErrors"] == [
        {"row": 2, "field": "advocate_external_id", "message": "no advocate with this external id"},
        {"row": 3, "field": "value", "message": "a csat value must be a whole number from 1 to 5"},
    ]
    assert strict["errors"][0]["message"] == (
        "2 row(s) are invalid; nothing was imported (first: row 2: no advocate with this external id)"
    )
    assert await count(session, Signal) == 0
    lenient = (await gql(client, IMPORT, {"f": "CSV", "c": csv, "skip": True}, token=key))["data"][
        "importSignals"
    ]
    assert (
        lenient["created"],
        lenient["skipped"],
        len(lenient["rowErrors"]),
        lenient["errors"],
    ) == (1, 2, 2, [])
    broken = (await gql(client, IMPORT, {"f": "JSON", "c": "{nope", "skip": False}, token=key))[
        "data"
    ]["importSignals"]
    assert broken["errors"] == [
        {
            "message": "content is not valid JSON (line 1, column 2)",
            "field": "content",
            "code": "INVALID",
        }
    ]
    assert await count(session, Signal) == 1


async def test_recompute_tiers_distribution_and_settings(client, session):
    program = await make_program(session)
    people = [await make_advocate(session) for _ in range(10)]
    writer = await make_api_key(session, scopes=["write"])
    admin = await make_api_key(session, scopes=["admin"], name="admin")
    for i, person in enumerate(people):
        await gql(
            client,
            RECORD,
            {
                "input": signal(
                    person.id,
                    kind="USAGE_MILESTONE",
                    value=None,
                    externalId=f"u{i}",
                    occurredAt=f"2026-01-{i + 1:02d}T00:00:00Z",
                )
            },
            token=writer,
        )
    pid = encode_id("Program", program.id)
    run = await gql(
        client,
        "mutation($p: ID!) { recomputeTiers(programId: $p) { run { scored changes tier1 tier2 tier3 untiered } errors { code } } }",
        {"p": pid},
        token=writer,
    )
    assert run["data"]["recomputeTiers"] == {
        "run": {"scored": 10, "changes": 6, "tier1": 1, "tier2": 2, "tier3": 3, "untiered": 4},
        "errors": [],
    }
    assert await count(session, TierEvent) == 6
    dist = await gql(
        client,
        "query($p: ID!) { tierDistribution(programId: $p) { tier1 tier2 tier3 untiered scored readyAccounts totalAccounts referralReadyAccountRate } }",
        {"p": pid},
        token=writer,
    )
    assert dist["data"]["tierDistribution"] == {
        "tier1": 1,
        "tier2": 2,
        "tier3": 3,
        "untiered": 4,
        "scored": 10,
        "readyAccounts": 6,
        "totalAccounts": 10,
        "referralReadyAccountRate": 0.6,
    }
    configure = "mutation($p: ID!, $s: JSON!) { configureAdvocacy(programId: $p, settings: $s) { settings { tiers points } errors { field code message } } }"
    denied = await gql(
        client,
        configure,
        {"p": pid, "s": {"tiers": {"mode": "threshold"}}},
        token=writer,
        expect_errors=True,
    )
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    bad = await gql(
        client, configure, {"p": pid, "s": {"tiers": {"percentiles": [60, 30, 20]}}}, token=admin
    )
    assert bad["data"]["configureAdvocacy"]["errors"] == [
        {
            "field": "tiers.percentiles",
            "code": "INVALID",
            "message": "the three percentiles must add up to at most 100",
        }
    ]
    ok = await gql(
        client,
        configure,
        {
            "p": pid,
            "s": {
                "tiers": {"mode": "threshold", "thresholds": [90, 50, 5]},
                "points": {"review": 70},
            },
        },
        token=admin,
    )
    settings = ok["data"]["configureAdvocacy"]["settings"]
    assert settings["tiers"] == {
        "mode": "threshold",
        "percentiles": [10.0, 20.0, 30.0],
        "thresholds": [90.0, 50.0, 5.0],
    }
    assert settings["points"]["review"] == 70
    await session.refresh(program)
    assert program.settings == {
        "tiers": {"mode": "threshold", "thresholds": [90, 50, 5]},
        "points": {"review": 70},
    }
    unknown = await gql(
        client,
        "mutation($p: ID!) { recomputeTiers(programId: $p) { run { scored } errors { field code } } }",
        {"p": encode_id("Program", 999_999)},
        token=writer,
    )
    assert unknown["data"]["recomputeTiers"] == {
        "run": None,
        "errors": [{"field": "programId", "code": "NOT_FOUND"}],
    }
    assert await session.scalar(select(func.count()).select_from(Program)) == 1
