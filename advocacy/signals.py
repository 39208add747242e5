"""Signals: dated facts about an advocate, ingested one at a time, in bulk, or by webhook.

A signal is idempotent by (advocate, source, external_id). When the sender gives no
external id, one is derived from the signal's content, so a retried request is still a no-op.
Every ingest path validates everything first and writes nothing when anything is wrong
(an import may opt into skipping the bad rows instead).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy.scoring import rescore_advocates
from vouch.core.choices import parse_choice
from vouch.core.errors import NotFound, ValidationFailed
from vouch.core.paging import Page, paginate
from vouch.models import Advocate, Signal
from vouch.models.enums import SignalKind

MAX_IMPORT_ROWS = 10_000
MAX_IMPORT_BYTES = 5_000_000
MAX_DATA_BYTES = 4_096
# A clock skew allowance: a sender's "now" may be slightly ahead of ours.
FUTURE_TOLERANCE = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_SOURCE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
_INSERT_CHUNK = 1_000

# Kinds whose value is required, with its allowed range and whether it must be whole.
VALUE_RULES: dict[SignalKind, tuple[float, float, bool]] = {
    SignalKind.NPS: (0, 10, True),
    SignalKind.CSAT: (1, 5, True),
    SignalKind.REVIEW_RATING: (1, 5, True),
    SignalKind.USAGE_DEPTH: (0, 1, False),
    SignalKind.SENTIMENT: (-1, 1, False),
}


@dataclass(frozen=True, slots=True)
class SignalInput:
    """One validated signal, ready to write."""

    advocate_id: int
    kind: SignalKind
    occurred_at: datetime
    value: float | None = None
    source: str = "api"
    external_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Recorded:
    signal: Signal
    created: bool


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one import row was rejected (rows count from 1, after any CSV header)."""

    row: int
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: int
    duplicates: int
    skipped: int
    errors: list[RowError]
    advocate_ids: list[int]


class ImportRejected(ValidationFailed):
    """The import had bad rows and wrote nothing; ``errors`` lists every bad row."""

    def __init__(self, errors: list[RowError]) -> None:
        first = errors[0]
        super().__init__(
            f"{len(errors)} row(s) are invalid; nothing was imported "
            f"(first: row {first.row}: {first.message})",
            field="content",
        )
        self.errors = errors


def parse_kind(value: object, *, field: str = "kind") -> SignalKind:
    return parse_choice(SignalKind, value, field=field, what="signal kind")


def check_value(kind: SignalKind, value: float | None, *, field: str = "value") -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValidationFailed("value must be a finite number", field=field)
    rule = VALUE_RULES.get(kind)
    if rule is None:
        if value is not None and abs(value) > 1e12:
            raise ValidationFailed("value is out of range", field=field)
        return value
    low, high, whole = rule
    if value is None:
        raise ValidationFailed(f"a {kind.value} signal needs a value", field=field)
    if not low <= value <= high or (whole and value != int(value)):
        kind_of = "a whole number" if whole else "a number"
        raise ValidationFailed(
            f"a {kind.value} value must be {kind_of} from {low:g} to {high:g}", field=field
        )
    return value


def check_occurred_at(value: datetime, now: datetime, *, field: str = "occurredAt") -> datetime:
    if value.tzinfo is None:
        raise ValidationFailed("occurredAt needs a timezone (use UTC, e.g. ...Z)", field=field)
    value = value.astimezone(UTC)
    if value > now + FUTURE_TOLERANCE:
        raise ValidationFailed("occurredAt is in the future", field=field)
    if value < EARLIEST:
        raise ValidationFailed("occurredAt is before 2000-01-01", field=field)
    return value


def check_source(value: str | None, *, field: str = "source") -> str:
    source = (value or "api").strip().lower()
    if not _SOURCE.match(source):
        raise ValidationFailed(
            "source must be 1 to 64 characters: lowercase letters, digits, '_', '.', '-'",
            field=field,
        )
    return source


def check_external_id(value: str | None, *, field: str = "externalId") -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 128:
        raise ValidationFailed("externalId must be 1 to 128 characters", field=field)
    return value


def check_data(value: Mapping[str, Any] | None, *, field: str = "data") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationFailed("data must be a JSON object", field=field)
    try:
        encoded = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        raise ValidationFailed("data must be plain JSON", field=field) from None
    if len(encoded) > MAX_DATA_BYTES:
        raise ValidationFailed(f"data must be at most {MAX_DATA_BYTES} bytes", field=field)
    return dict(value)


def derived_external_id(kind: SignalKind, occurred_at: datetime, value: float | None) -> str:
    """A content key for signals sent without an id: the same fact sent twice is one row."""
    raw = f"{kind.value}|{occurred_at.astimezone(UTC).isoformat()}|{value!r}"
    return "auto:" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def build_signal(
    *,
    advocate_id: int,
    kind: object,
    occurred_at: datetime,
    now: datetime,
    value: float | None = None,
    source: str | None = None,
    external_id: str | None = None,
    data: Mapping[str, Any] | None = None,
    prefix: str = "",
) -> SignalInput:
    """Validate one signal's fields; errors name the field (``prefix`` for nested inputs)."""
    parsed_kind = parse_kind(kind, field=f"{prefix}kind")
    checked_value = check_value(parsed_kind, value, field=f"{prefix}value")
    at = check_occurred_at(occurred_at, now, field=f"{prefix}occurredAt")
    return SignalInput(
        advocate_id=advocate_id,
        kind=parsed_kind,
        occurred_at=at,
        value=checked_value,
        source=check_source(source, field=f"{prefix}source"),
        external_id=check_external_id(external_id, field=f"{prefix}externalId")
        or derived_external_id(parsed_kind, at, checked_value),
        data=check_data(data, field=f"{prefix}data"),
    )


async def _live_advocate_ids(session: AsyncSession, ids: Iterable[int]) -> set[int]:
    wanted = set(ids)
    if not wanted:
        return set()
    rows = await session.scalars(
        select(Advocate.id).where(Advocate.id.in_(wanted), Advocate.erased_at.is_(None))
    )
    return set(rows)


def _row(sig: SignalInput) -> dict[str, Any]:
    return {
        "advocate_id": sig.advocate_id,
        "kind": sig.kind.value,
        "value": sig.value,
        "occurred_at": sig.occurred_at,
        "source": sig.source,
        "external_id": sig.external_id,
        "data": sig.data,
    }


async def _insert(session: AsyncSession, signals: Sequence[SignalInput]) -> list[int]:
    """Insert, skipping the ones already stored; returns the ids of new rows."""
    created: list[int] = []
    for start in range(0, len(signals), _INSERT_CHUNK):
        chunk = signals[start : start + _INSERT_CHUNK]
        rows = await session.scalars(
            insert(Signal)
            .values([_row(s) for s in chunk])
            .on_conflict_do_nothing(index_elements=["advocate_id", "source", "external_id"])
            .returning(Signal.id)
        )
        created.extend(rows)
    return created


async def record_signals(
    session: AsyncSession, signals: Sequence[SignalInput], *, now: datetime
) -> list[Recorded]:
    """Record validated signals (all or nothing) and refresh the advocates' scores.

    Re-sent signals come back with created=False.
    """
    if not signals:
        raise ValidationFailed("give at least one signal", field="signals")
    if len(signals) > MAX_IMPORT_ROWS:
        raise ValidationFailed(f"at most {MAX_IMPORT_ROWS} signals per call", field="signals")
    live = await _live_advocate_ids(session, (s.advocate_id for s in signals))
    for index, sig in enumerate(signals):
        if sig.advocate_id not in live:
            where = "advocateId" if len(signals) == 1 else f"signals.{index}.advocateId"
            raise NotFound("no such advocate (or it was erased)", field=where)
    new_ids = set(await _insert(session, signals))
    stored = await session.scalars(
        select(Signal).where(
            Signal.advocate_id.in_({s.advocate_id for s in signals}),
            Signal.external_id.in_({s.external_id for s in signals}),
        )
    )
    by_key = {(s.advocate_id, s.source, s.external_id): s for s in stored}
    result = []
    for sig in signals:
        row = by_key[(sig.advocate_id, sig.source, sig.external_id)]
        result.append(Recorded(signal=row, created=row.id in new_ids))
    if new_ids:
        await rescore_advocates(session, sorted({s.advocate_id for s in signals}), now)
    return result


async def record_signal(session: AsyncSession, signal: SignalInput, *, now: datetime) -> Recorded:
    """Record one validated signal; a re-sent one is returned unchanged with created=False."""
    return (await record_signals(session, [signal], now=now))[0]


# --- bulk import and webhook payloads -----------------------------------------------------

IMPORT_COLUMNS = (
    "advocate_external_id",
    "kind",
    "value",
    "occurred_at",
    "source",
    "external_id",
)


@dataclass(frozen=True, slots=True)
class _ParsedRow:
    advocate_ref: str
    kind: object
    value: float | None
    occurred_at: datetime
    source: str | None
    external_id: str | None
    data: Mapping[str, Any] | None


def _parse_datetime(value: object, *, field: str) -> datetime:
    if isinstance(value, datetime):
        return value
    text = str(value or "").strip()
    if not text:
        raise ValidationFailed("occurred_at is required", field=field)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValidationFailed(
            "occurred_at must be an ISO-8601 timestamp such as 2026-11-01T09:30:00Z", field=field
        ) from None
    return parsed


def _parse_value(value: object, *, field: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValidationFailed("value must be a number", field=field)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationFailed("value must be a number", field=field) from None


def _optional_text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def parse_payload(raw: Mapping[str, Any]) -> _ParsedRow:
    """One signal as JSON: ``advocate_external_id``, ``kind``, ``value``, ``occurred_at``,
    ``source``, ``external_id`` and an optional ``data`` object."""
    if not isinstance(raw, Mapping):
        raise ValidationFailed("each signal must be a JSON object", field="row")
    ref = _optional_text(raw.get("advocate_external_id"))
    if ref is None:
        raise ValidationFailed("advocate_external_id is required", field="advocate_external_id")
    data = raw.get("data")
    if data is not None and not isinstance(data, Mapping):
        raise ValidationFailed("data must be a JSON object", field="data")
    return _ParsedRow(
        advocate_ref=ref[:128],
        kind=raw.get("kind"),
        value=_parse_value(raw.get("value"), field="value"),
        occurred_at=_parse_datetime(raw.get("occurred_at"), field="occurred_at"),
        source=_optional_text(raw.get("source")),
        external_id=_optional_text(raw.get("external_id")),
        data=data,
    )


def _field_name(exc_field: str | None) -> str:
    mapping = {
        "occurredAt": "occurred_at",
        "externalId": "external_id",
        "advocateId": "advocate_external_id",
    }
    return mapping.get(exc_field or "", exc_field or "row")


def read_rows(
    fmt: str,
    content: str,
    *,
    max_bytes: int = MAX_IMPORT_BYTES,
    max_rows: int = MAX_IMPORT_ROWS,
) -> list[Mapping[str, Any]]:
    """Split an upload into row objects; a malformed file is one clear error. The limits are an
    API caller's by default; the CLI (an operator with the file on disk) passes its own."""
    if len(content.encode()) > max_bytes:
        raise ValidationFailed(f"content must be at most {max_bytes} bytes", field="content")
    if fmt == "json":
        try:
            rows = json.loads(content)
        except json.JSONDecodeError as exc:
            raise ValidationFailed(
                f"content is not valid JSON (line {exc.lineno}, column {exc.colno})",
                field="content",
            ) from None
        except RecursionError:
            raise ValidationFailed("content is nested too deeply", field="content") from None
        if isinstance(rows, Mapping) and isinstance(rows.get("signals"), list):
            rows = rows["signals"]
        if not isinstance(rows, list):
            raise ValidationFailed(
                'JSON content must be a list of signals (or {"signals": [...]})', field="content"
            )
    elif fmt == "csv":
        reader = csv.DictReader(io.StringIO(content.lstrip("\ufeff")))
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in ("advocate_external_id", "kind", "occurred_at") if c not in header]
        if missing:
            raise ValidationFailed(
                f"CSV header lacks column(s): {', '.join(missing)}; expected "
                f"{','.join(IMPORT_COLUMNS)}",
                field="content",
            )
        reader.fieldnames = header
        try:
            rows = [dict(r) for r in reader]
        except csv.Error as exc:
            raise ValidationFailed(f"content is not valid CSV: {exc}", field="content") from None
    else:
        raise ValidationFailed("format must be json or csv", field="format")
    if not rows:
        raise ValidationFailed("the import has no rows", field="content")
    if len(rows) > max_rows:
        raise ValidationFailed(f"at most {max_rows} rows per import", field="content")
    return rows


async def import_signals(
    session: AsyncSession,
    rows: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    default_source: str = "import",
    skip_invalid: bool = False,
) -> ImportResult:
    """Import rows that name advocates by their CRM id.

    Every row is validated first. With any bad row nothing is written and ``ImportRejected``
    lists every bad row; with ``skip_invalid`` the good rows are written and the bad ones
    reported. Rows already imported count as duplicates.
    """
    parsed: list[tuple[int, _ParsedRow]] = []
    errors: list[RowError] = []
    for number, raw in enumerate(rows, start=1):
        try:
            parsed.append((number, parse_payload(raw)))
        except ValidationFailed as exc:
            errors.append(RowError(number, _field_name(exc.field), exc.message))
    refs = {row.advocate_ref for _, row in parsed}
    advocates: dict[str, int] = {}
    if refs:
        found = await session.execute(
            select(Advocate.external_id, Advocate.id).where(
                Advocate.external_id.in_(refs), Advocate.erased_at.is_(None)
            )
        )
        advocates = {row[0]: row[1] for row in found}
    good: list[SignalInput] = []
    for number, row in parsed:
        advocate_id = advocates.get(row.advocate_ref)
        if advocate_id is None:
            errors.append(
                RowError(number, "advocate_external_id", "no advocate with this external id")
            )
            continue
        try:
            good.append(
                build_signal(
                    advocate_id=advocate_id,
                    kind=row.kind,
                    occurred_at=row.occurred_at,
                    now=now,
                    value=row.value,
                    source=row.source or default_source,
                    external_id=row.external_id,
                    data=row.data,
                )
            )
        except ValidationFailed as exc:
            errors.append(RowError(number, _field_name(exc.field), exc.message))
    errors.sort(key=lambda e: e.row)
    if errors and not skip_invalid:
        raise ImportRejected(errors)
    created = len(await _insert(session, good)) if good else 0
    if created:
        await rescore_advocates(session, sorted({s.advocate_id for s in good}), now)
    return ImportResult(
        created=created,
        duplicates=len(good) - created,
        skipped=len(errors),
        errors=errors,
        advocate_ids=sorted({s.advocate_id for s in good}),
    )


async def ingest_signal_event(
    session: AsyncSession, payload: Mapping[str, Any], *, source: str, now: datetime
) -> Recorded:
    """For the inbound webhook: one JSON signal naming its advocate by CRM id.

    ``source`` is the webhook's sender (e.g. ``"hubspot"``) unless the payload names one.
    """
    row = parse_payload(payload)
    advocate_id = await session.scalar(
        select(Advocate.id).where(
            Advocate.external_id == row.advocate_ref, Advocate.erased_at.is_(None)
        )
    )
    if advocate_id is None:
        raise NotFound("no advocate with this external id", field="advocate_external_id")
    signal = build_signal(
        advocate_id=advocate_id,
        kind=row.kind,
        occurred_at=row.occurred_at,
        now=now,
        value=row.value,
        source=row.source or source,
        external_id=row.external_id,
        data=row.data,
    )
    return await record_signal(session, signal, now=now)


# --- reads --------------------------------------------------------------------------------


async def signals_of(
    session: AsyncSession, advocate_id: int, *, until: datetime | None = None
) -> list[Signal]:
    """All of one advocate's signals up to ``until``, oldest first."""
    stmt = select(Signal).where(Signal.advocate_id == advocate_id)
    if until is not None:
        stmt = stmt.where(Signal.occurred_at <= until)
    return list(await session.scalars(stmt.order_by(Signal.occurred_at, Signal.id)))


async def recent_signals_for(
    session: AsyncSession, advocate_ids: Sequence[int], *, limit: int = 50
) -> dict[int, list[Signal]]:
    """The latest ``limit`` signals of each advocate, newest first, in one statement."""
    result: dict[int, list[Signal]] = {pk: [] for pk in advocate_ids}
    if not advocate_ids:
        return result
    ranked = (
        select(
            Signal.id,
            func.row_number()
            .over(
                partition_by=Signal.advocate_id,
                order_by=(Signal.occurred_at.desc(), Signal.id.desc()),
            )
            .label("n"),
        )
        .where(Signal.advocate_id.in_(set(advocate_ids)))
        .subquery()
    )
    rows = await session.scalars(
        select(Signal)
        .join(ranked, ranked.c.id == Signal.id)
        .where(ranked.c.n <= limit)
        .order_by(Signal.advocate_id, Signal.occurred_at.desc(), Signal.id.desc())
    )
    for row in rows:
        result[row.advocate_id].append(row)
    return result


async def list_signals(
    session: AsyncSession,
    advocate_id: int,
    *,
    kind: str | None,
    first: int,
    after: int | None,
    before: int | None = None,
    from_end: bool = False,
) -> Page[Signal]:
    """One advocate's signals, newest stored first."""
    stmt = select(Signal).where(Signal.advocate_id == advocate_id)
    if kind is not None:
        stmt = stmt.where(Signal.kind == parse_kind(kind).value)
    return await paginate(
        session,
        stmt,
        key=Signal.id,
        first=first,
        after=after,
        before=before,
        from_end=from_end,
        descending=True,
    )
