"""Advocates: read, list with filters, upsert by external id, bulk import."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.batching import any_ids, ids_params
from vouch.core.emails import check_email, normalize_email
from vouch.core.errors import Conflict, DomainError, NotFound, ValidationFailed
from vouch.core.paging import Page, paginate
from vouch.core.raw_select import RawSelect
from vouch.core.security import erased_key
from vouch.core.snapshot import snapshot_class
from vouch.models import Advocate, Referral, ReferralLink
from vouch.models.snapshots import AdvocateSnapshot

MAX_IMPORT_ROWS = 1_000

# Column -> (camelCase field name, max length) for the free-text fields.
_TEXT_FIELDS: dict[str, tuple[str, int]] = {
    "first_name": ("firstName", 100),
    "last_name": ("lastName", 100),
    "account_id": ("accountId", 128),
    "account_name": ("accountName", 200),
    "account_domain": ("accountDomain", 253),
    "persona": ("persona", 64),
    "segment": ("segment", 64),
}
_BOOL_FIELDS = {
    "is_icp": "isIcp",
    "consent_referral": "consentReferral",
    "consent_marketing": "consentMarketing",
    "opted_in_extra_asks": "optedInExtraAsks",
}


@dataclass(frozen=True, slots=True)
class AdvocateFilter:
    program_id: int | None = None
    tier: int | None = None
    min_score: float | None = None
    max_score: float | None = None
    segment: str | None = None
    has_referred: bool | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True)
class AdvocateData:
    """One advocate as the CRM sends it: ``values`` holds only the fields it sent
    (column name -> value; ``None`` clears a field). Fields not sent are left as they are."""

    external_id: str
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpsertResult:
    advocate: Advocate
    created: bool


@dataclass(frozen=True, slots=True)
class RowError:
    index: int
    error: DomainError


@dataclass(frozen=True, slots=True)
class ImportResult:
    advocates: list[Advocate]
    created: int
    updated: int
    errors: list[RowError]


async def get_advocate(session: AsyncSession, advocate_id: int) -> Advocate:
    advocate = await session.get(Advocate, advocate_id)
    if advocate is None:
        raise NotFound("no such advocate", field="id")
    return advocate


_ADVOCATE_ROW = snapshot_class(Advocate)
_ADVOCATE_BY_ID = RawSelect(
    select(*Advocate.__table__.columns).where(Advocate.id == bindparam("id"))
)


async def read_advocate(session: AsyncSession, advocate_id: int) -> AdvocateSnapshot:
    """A read-only snapshot of the advocate (not session-bound), for hot read paths such as
    the widget's ``me``; use ``get_advocate`` to change it."""
    rows = await _ADVOCATE_BY_ID.fetch(session, {"id": advocate_id})
    if not rows:
        raise NotFound("no such advocate", field="id")
    return _ADVOCATE_ROW._make(rows[0])  # type: ignore[no-any-return]


async def get_advocate_by_external_id(session: AsyncSession, external_id: str) -> Advocate:
    advocate = None
    if 0 < len(external_id) <= 128:
        advocate = await session.scalar(
            select(Advocate).where(Advocate.external_id == external_id.strip())
        )
    if advocate is None:
        raise NotFound("no advocate has this external id", field="externalId")
    return advocate


_ADVOCATES_BY_IDS = select(Advocate).where(any_ids(Advocate.id))


async def advocates_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Advocate]:
    rows = await session.scalars(_ADVOCATES_BY_IDS, ids_params(ids))
    return {a.id: a for a in rows}


async def list_advocates(
    session: AsyncSession,
    flt: AdvocateFilter,
    *,
    first: int,
    after: int | None,
    before: int | None = None,
    from_end: bool = False,
    newest_first: bool = False,
) -> Page[Advocate]:
    if flt.tier is not None and not 1 <= flt.tier <= 3:
        raise ValidationFailed("tier must be 1, 2 or 3", field="filter.tier")
    if flt.min_score is not None and flt.max_score is not None and flt.min_score > flt.max_score:
        raise ValidationFailed("minScore must not exceed maxScore", field="filter.maxScore")
    stmt = select(Advocate).where(Advocate.erased_at.is_(None))
    if flt.program_id is not None:
        stmt = stmt.where(
            exists().where(
                ReferralLink.advocate_id == Advocate.id, ReferralLink.program_id == flt.program_id
            )
        )
    if flt.tier is not None:
        stmt = stmt.where(Advocate.tier == flt.tier)
    if flt.min_score is not None:
        stmt = stmt.where(Advocate.score >= flt.min_score)
    if flt.max_score is not None:
        stmt = stmt.where(Advocate.score <= flt.max_score)
    if flt.segment is not None:
        stmt = stmt.where(Advocate.segment == flt.segment)
    if flt.has_referred is not None:
        referred = exists().where(Referral.advocate_id == Advocate.id)
        stmt = stmt.where(referred if flt.has_referred else ~referred)
    if flt.search:
        pattern = (
            "%" + flt.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        stmt = stmt.where(
            or_(
                Advocate.email.ilike(pattern),
                Advocate.first_name.ilike(pattern),
                Advocate.last_name.ilike(pattern),
            )
        )
    return await paginate(
        session,
        stmt,
        key=Advocate.id,
        first=first,
        after=after,
        before=before,
        from_end=from_end,
        descending=newest_first,
    )


def check_advocate(data: AdvocateData, *, prefix: str = "") -> dict[str, Any]:
    """Validate one advocate; return the column values to write."""
    external_id = data.external_id.strip()
    if not external_id or len(external_id) > 128:
        raise ValidationFailed(
            "externalId must be 1 to 128 characters", field=f"{prefix}externalId"
        )
    if external_id.startswith("erased:"):
        raise ValidationFailed(
            "externalId must not start with 'erased:'", field=f"{prefix}externalId"
        )
    values: dict[str, Any] = {"external_id": external_id}
    for column, value in data.values.items():
        if column == "email":
            if value is None or not str(value).strip():
                values["email"] = None
                values["email_normalized"] = None
            else:
                email = check_email(str(value), field=f"{prefix}email")
                values["email"] = email
                values["email_normalized"] = normalize_email(email)
        elif column in _TEXT_FIELDS:
            name, max_length = _TEXT_FIELDS[column]
            text = None if value is None else str(value).strip() or None
            if text is not None and len(text) > max_length:
                raise ValidationFailed(
                    f"must be at most {max_length} characters", field=f"{prefix}{name}"
                )
            values[column] = text
        elif column in _BOOL_FIELDS:
            if value is None:
                raise ValidationFailed(
                    "must be true or false", field=f"{prefix}{_BOOL_FIELDS[column]}"
                )
            values[column] = bool(value)
        else:  # a programming error at the edge, not user input
            raise ValueError(f"unknown advocate field {column!r}")
    return values


async def _refuse_erased(
    session: AsyncSession, secret: str, external_ids: Sequence[str]
) -> set[str]:
    """External ids whose advocate was erased (stored as a keyed hash) must not come back."""
    hashed = {erased_key(secret, ext): ext for ext in external_ids}
    rows = await session.scalars(
        select(Advocate.external_id).where(Advocate.external_id.in_(list(hashed)))
    )
    return {hashed[h] for h in rows}


_UPSERTS: dict[tuple[str, ...], Any] = {}


def _upsert_statement(shape: tuple[str, ...]) -> Any:
    """``INSERT … ON CONFLICT (external_id) DO UPDATE`` for rows with these columns, built once
    per column set and run with many parameter sets (SQLAlchemy batches them into multi-row
    statements): building a 1,000-row VALUES statement each time cost more than running it."""
    stmt = _UPSERTS.get(shape)
    if stmt is None:
        table = cast(Table, Advocate.__table__)
        base = insert(table)
        updates: dict[str, Any] = {col: base.excluded[col] for col in shape if col != "external_id"}
        updates["updated_at"] = func.now()
        stmt = base.on_conflict_do_update(index_elements=["external_id"], set_=updates).returning(
            table.c.external_id, table.c.id, literal_column("(xmax = 0)")
        )
        _UPSERTS[shape] = stmt
    return stmt


async def _upsert_rows(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> dict[str, tuple[int, bool]]:
    """Insert or update rows sharing the same columns in one statement per column set."""
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_shape[tuple(sorted(row))].append(row)
    outcome: dict[str, tuple[int, bool]] = {}
    for shape, group in by_shape.items():
        result: Any = await session.execute(_upsert_statement(shape), group)
        for external_id, advocate_id, inserted in result.all():
            outcome[external_id] = (advocate_id, bool(inserted))
    return outcome


async def upsert_advocate(
    session: AsyncSession, data: AdvocateData, *, secret: str
) -> UpsertResult:
    """Create the advocate with this external id, or update the fields given. Safe to retry."""
    values = check_advocate(data)
    if await _refuse_erased(session, secret, [values["external_id"]]):
        raise Conflict(
            "this advocate's personal data was erased; it cannot be re-created",
            field="externalId",
        )
    outcome = await _upsert_rows(session, [values])
    advocate_id, created = outcome[values["external_id"]]
    advocate = await session.get(Advocate, advocate_id, populate_existing=True)
    assert advocate is not None
    return UpsertResult(advocate=advocate, created=created)


async def import_advocates(
    session: AsyncSession,
    rows: Sequence[AdvocateData],
    *,
    secret: str,
    skip_invalid: bool = False,
    load: bool = True,
) -> ImportResult:
    """Upsert many advocates in one transaction.

    Every row is validated first. With errors and ``skip_invalid`` false nothing is written;
    with ``skip_invalid`` the valid rows are written and the invalid ones reported. Without
    ``load`` the result carries counts only (the CLI's bulk import), not the advocates.
    """
    if not rows:
        raise ValidationFailed("give at least one advocate", field="advocates")
    if len(rows) > MAX_IMPORT_ROWS:
        raise ValidationFailed(f"at most {MAX_IMPORT_ROWS} advocates per import", field="advocates")
    errors: list[RowError] = []
    valid: dict[int, dict[str, Any]] = {}
    first_seen: dict[str, int] = {}
    for index, data in enumerate(rows):
        prefix = f"advocates.{index}."
        try:
            values = check_advocate(data, prefix=prefix)
            if values["external_id"] in first_seen:
                raise ValidationFailed(
                    f"externalId repeats row {first_seen[values['external_id']]}",
                    field=f"{prefix}externalId",
                )
        except DomainError as exc:
            errors.append(RowError(index=index, error=exc))
            continue
        first_seen[values["external_id"]] = index
        valid[index] = values
    erased = await _refuse_erased(session, secret, list(first_seen))
    for index, values in list(valid.items()):
        if values["external_id"] in erased:
            errors.append(
                RowError(
                    index=index,
                    error=Conflict(
                        "this advocate's personal data was erased; it cannot be re-created",
                        field=f"advocates.{index}.externalId",
                    ),
                )
            )
            del valid[index]
    errors.sort(key=lambda e: e.index)
    if errors and not skip_invalid:
        return ImportResult(advocates=[], created=0, updated=0, errors=errors)
    if not valid:
        return ImportResult(advocates=[], created=0, updated=0, errors=errors)
    outcome = await _upsert_rows(session, list(valid.values()))
    created = sum(1 for _, was_created in outcome.values() if was_created)
    if not load:
        return ImportResult(
            advocates=[], created=created, updated=len(outcome) - created, errors=errors
        )
    loaded = {
        a.id: a
        for a in await session.scalars(
            select(Advocate)
            .where(Advocate.id.in_([advocate_id for advocate_id, _ in outcome.values()]))
            .execution_options(populate_existing=True)
        )
    }
    ordered = [loaded[outcome[values["external_id"]][0]] for values in valid.values()]
    return ImportResult(
        advocates=ordered, created=created, updated=len(outcome) - created, errors=errors
    )


async def widget_advocate(session: AsyncSession, advocate_id: int) -> Advocate:
    """The advocate a widget token may be minted for: existing and not erased."""
    advocate = await session.get(Advocate, advocate_id)
    if advocate is None:
        raise NotFound("no such advocate", field="advocateId")
    if advocate.erased_at is not None:
        raise Conflict("this advocate has been erased", field="advocateId")
    return advocate


ADVOCATE_COLUMNS = ("external_id", "email", *_TEXT_FIELDS, *_BOOL_FIELDS)
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f", ""})


def _file_bool(value: object, *, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValidationFailed("must be true or false", field=field)


def advocate_rows(fmt: str, content: str) -> list[AdvocateData]:
    """Advocates from a CSV (header row of column names) or JSON (a list of objects) file, for
    ``vouch import advocates``. Only columns present in a row are written."""
    raw: Any
    if fmt == "json":
        try:
            raw = json.loads(content)
        except (json.JSONDecodeError, RecursionError):
            raise ValidationFailed("the file is not valid JSON", field="content") from None
        if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
            raise ValidationFailed("JSON must be a list of objects", field="content")
    elif fmt == "csv":
        reader = csv.DictReader(io.StringIO(content.lstrip("\ufeff")))
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if "external_id" not in header:
            raise ValidationFailed("the CSV header needs an external_id column", field="content")
        unknown = [h for h in header if h not in ADVOCATE_COLUMNS]
        if unknown:
            raise ValidationFailed(
                f"unknown column(s): {', '.join(unknown[:5])}; use {', '.join(ADVOCATE_COLUMNS)}",
                field="content",
            )
        reader.fieldnames = header
        raw = [dict(r) for r in reader]
    else:
        raise ValidationFailed("format must be csv or json", field="format")
    rows: list[AdvocateData] = []
    for number, item in enumerate(raw, start=1):
        values: dict[str, Any] = {}
        for column, value in item.items():
            if column in _BOOL_FIELDS:
                values[column] = _file_bool(value, field=f"row {number}: {column}")
            elif column in _TEXT_FIELDS or column == "email":
                values[column] = None if value is None else str(value)
            elif column != "external_id":
                raise ValidationFailed(f"row {number}: unknown field {column!r}", field="content")
        rows.append(AdvocateData(external_id=str(item.get("external_id") or ""), values=values))
    if not rows:
        raise ValidationFailed("the file has no rows", field="content")
    return rows
