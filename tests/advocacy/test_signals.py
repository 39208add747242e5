"""Signal ingest: validated, idempotent by (advocate, source, external id), bulk with row errors."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.advocacy.conftest import NOW, days_ago
from tests.factories import make_advocate, make_program
from vouch.advocacy.signals import (
    ImportRejected,
    build_signal,
    import_signals,
    ingest_signal_event,
    read_rows,
    record_signal,
    record_signals,
)
from vouch.core.errors import NotFound, ValidationFailed
from vouch.models import AdvocateScore, Signal
from vouch.models.enums import SignalKind


async def count_signals(session) -> int:
    return int(await session.scalar(select(func.count()).select_from(Signal)) or 0)


async def test_record_is_idempotent_and_rescores(session):
    program = await make_program(session)
    advocate = await make_advocate(session)
    signal = build_signal(
        advocate_id=advocate.id,
        kind="nps",
        value=10,
        occurred_at=days_ago(0),
        now=NOW,
        source="survey",
        external_id="resp-1",
    )
    first = await record_signal(session, signal, now=NOW)
    again = await record_signal(session, signal, now=NOW)
    assert (first.created, again.created) == (True, False)
    assert first.signal.id == again.signal.id
    assert await count_signals(session) == 1
    score = await session.get(AdvocateScore, (advocate.id, program.id))
    assert score is not None
    assert score.score == 30.0
    await session.refresh(advocate)
    assert (advocate.score, advocate.tier, advocate.scored_at) == (30.0, None, NOW)


async def test_signal_without_external_id_is_deduplicated_by_content(session):
    advocate = await make_advocate(session)
    signal = build_signal(advocate_id=advocate.id, kind="renewal", occurred_at=days_ago(2), now=NOW)
    assert signal.external_id is not None
    assert signal.external_id.startswith("auto:")
    await record_signals(session, [signal, signal], now=NOW)
    assert await count_signals(session) == 1


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        (
            {"kind": "vibes"},
            "kind",
            "unknown signal kind 'vibes'; use one of: " + ", ".join(SignalKind),
        ),
        ({"kind": "nps", "value": None}, "value", "a nps signal needs a value"),
        ({"kind": "nps", "value": 11}, "value", "a nps value must be a whole number from 0 to 10"),
        ({"kind": "nps", "value": 8.5}, "value", "a nps value must be a whole number from 0 to 10"),
        (
            {"kind": "usage_depth", "value": 2},
            "value",
            "a usage_depth value must be a number from 0 to 1",
        ),
        ({"kind": "renewal", "value": float("nan")}, "value", "value must be a finite number"),
        (
            {"kind": "renewal", "occurred_at": NOW + timedelta(hours=1)},
            "occurredAt",
            "occurredAt is in the future",
        ),
        (
            {"kind": "renewal", "occurred_at": datetime(2026, 1, 1)},
            "occurredAt",
            "occurredAt needs a timezone (use UTC, e.g. ...Z)",
        ),
        (
            {"kind": "renewal", "source": "Bad Source!"},
            "source",
            "source must be 1 to 64 characters: lowercase letters, digits, '_', '.', '-'",
        ),
        (
            {"kind": "renewal", "external_id": "x" * 129},
            "externalId",
            "externalId must be 1 to 128 characters",
        ),
        (
            {"kind": "renewal", "data": {"blob": "x" * 5000}},
            "data",
            "data must be at most 4096 bytes",
        ),
    ],
)
def test_bad_signal_fields(kwargs, field, message):
    values = {"advocate_id": 1, "occurred_at": NOW, "now": NOW, **kwargs}
    with pytest.raises(ValidationFailed) as exc:
        build_signal(**values)
    assert (exc.value.field, exc.value.message) == (field, message)


async def test_unknown_or_erased_advocate_writes_nothing(session):
    live = await make_advocate(session)
    erased = await make_advocate(session, erased_at=NOW, email=None)
    good = build_signal(advocate_id=live.id, kind="renewal", occurred_at=NOW, now=NOW)
    bad = build_signal(advocate_id=erased.id, kind="renewal", occurred_at=NOW, now=NOW)
    with pytest.raises(NotFound) as exc:
        await record_signals(session, [good, bad], now=NOW)
    assert exc.value.field == "signals.1.advocateId"
    assert await count_signals(session) == 0


CSV = """advocate_external_id,kind,value,occurred_at,source,external_id
crm-1,nps,9,2026-10-30T10:00:00Z,delighted,r1
crm-1,renewal,,2026-10-01T00:00:00+00:00,,r2
crm-2,nps,12,2026-10-30T10:00:00Z,delighted,r3
crm-9,renewal,,2026-10-01T00:00:00Z,,r4
crm-2,csat,4,yesterday,,r5
"""


async def test_csv_import_with_bad_rows_writes_nothing_and_lists_every_error(session):
    await make_advocate(session, external_id="crm-1")
    await make_advocate(session, external_id="crm-2")
    with pytest.raises(ImportRejected) as exc:
        await import_signals(session, read_rows("csv", CSV), now=NOW)
    assert [(e.row, e.field, e.message) for e in exc.value.errors] == [
        (3, "value", "a nps value must be a whole number from 0 to 10"),
        (4, "advocate_external_id", "no advocate with this external id"),
        (
            5,
            "occurred_at",
            "occurred_at must be an ISO-8601 timestamp such as 2026-11-01T09:30:00Z",
        ),
    ]
    assert await count_signals(session) == 0


async def test_csv_import_skipping_invalid_rows_and_reimport_is_a_noop(session):
    one = await make_advocate(session, external_id="crm-1")
    await make_advocate(session, external_id="crm-2")
    result = await import_signals(session, read_rows("csv", CSV), now=NOW, skip_invalid=True)
    assert (result.created, result.duplicates, result.skipped) == (2, 0, 3)
    assert result.advocate_ids == [one.id]
    again = await import_signals(session, read_rows("csv", CSV), now=NOW, skip_invalid=True)
    assert (again.created, again.duplicates) == (0, 2)
    rows = (await session.execute(select(Signal.kind, Signal.source).order_by(Signal.kind))).all()
    assert [tuple(r) for r in rows] == [("nps", "delighted"), ("renewal", "import")]


async def test_json_import(session):
    await make_advocate(session, external_id="crm-7")
    rows = read_rows(
        "json",
        '{"signals": [{"advocate_external_id": "crm-7", "kind": "support_resolved",'
        ' "occurred_at": "2026-10-29T08:00:00Z", "data": {"ticket": "T-1"}}]}',
    )
    result = await import_signals(session, rows, now=NOW)
    assert (result.created, result.errors) == (1, [])
    stored = await session.scalar(select(Signal))
    assert stored is not None
    assert (stored.kind, stored.data) == ("support_resolved", {"ticket": "T-1"})


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    [
        ("json", "[{", "content is not valid JSON (line 1, column 3)"),
        ("json", '{"a": 1}', 'JSON content must be a list of signals (or {"signals": [...]})'),
        ("json", "[]", "the import has no rows"),
        ("json", "[" * 100_000 + "]" * 100_000, "content is nested too deeply"),
        (
            "csv",
            "who,what\n1,2\n",
            "CSV header lacks column(s): advocate_external_id, kind, occurred_at; expected advocate_external_id,kind,value,occurred_at,source,external_id",
        ),
        ("xml", "<a/>", "format must be json or csv"),
    ],
)
def test_malformed_uploads(fmt, content, message):
    with pytest.raises(ValidationFailed) as exc:
        read_rows(fmt, content)
    assert exc.value.message == message


async def test_webhook_ingest(session):
    advocate = await make_advocate(session, external_id="hs-42")
    payload = {
        "advocate_external_id": "hs-42",
        "kind": "expansion",
        "occurred_at": "2026-10-31T09:00:00Z",
        "external_id": "deal-9",
    }
    first = await ingest_signal_event(session, payload, source="hubspot", now=NOW)
    again = await ingest_signal_event(session, payload, source="hubspot", now=NOW)
    assert (first.created, again.created) == (True, False)
    assert (first.signal.advocate_id, first.signal.source) == (advocate.id, "hubspot")
    with pytest.raises(NotFound):
        await ingest_signal_event(
            session, {**payload, "advocate_external_id": "hs-0"}, source="hubspot", now=NOW
        )
    assert await count_signals(session) == 1


async def test_json_rows_of_the_wrong_shape_are_row_errors(session):
    await make_advocate(session, external_id="crm-8")
    rows = read_rows(
        "json",
        '[1, {"advocate_external_id": "crm-8", "kind": "nps", "value": [9],'
        ' "occurred_at": "2026-10-01T00:00:00Z"}, {"advocate_external_id": "crm-8",'
        ' "kind": "renewal", "occurred_at": "2026-10-01"}, {"advocate_external_id": "crm-8",'
        ' "kind": "renewal", "occurred_at": "2026-10-01T00:00:00Z", "data": "x"}]',
    )
    with pytest.raises(ImportRejected) as exc:
        await import_signals(session, rows, now=NOW)
    assert [(e.row, e.field, e.message) for e in exc.value.errors] == [
        (1, "row", "each signal must be a JSON object"),
        (2, "value", "value must be a number"),
        (3, "occurred_at", "occurredAt needs a timezone (use UTC, e.g. ...Z)"),
        (4, "data", "data must be a JSON object"),
    ]
    assert await count_signals(session) == 0
