"""The reporting rollup (``referral_daily_rollups``): incremental upkeep and full rebuild.

One SQL definition says what every referral contributes (``CONTRIBUTIONS``). Writes that touch
a referral's world take its contribution before and after the change and add the difference
(``track``); the rebuild recomputes the whole table from the same definition, so the two can
never drift apart by construction — and a test checks they agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.raw_select import run_raw
from vouch.models import ProgramDailyRollup, ReferralDailyRollup
from vouch.models.enums import RevenueKind

MEASURES = (
    "leads",
    "opportunities",
    "pipeline_minor",
    "won",
    "won_minor",
    "revenue_minor",
    "sourced_revenue_minor",
    "expansion_revenue_minor",
)
Key = tuple[date, int, int, str, str]

# What each referral contributes, dated by each measure's own event (UTC days).
CONTRIBUTIONS = """
WITH r AS (
    SELECT r.id, r.program_id, r.advocate_id, COALESCE(r.channel, l.channel, 'none') AS channel,
           p.currency, r.created_at
    FROM referrals r
    JOIN programs p ON p.id = r.program_id
    LEFT JOIN referral_links l ON l.id = r.link_id
    WHERE r.status <> 'rejected' AND ({where})
), parts AS (
    SELECT (r.created_at AT TIME ZONE 'UTC')::date AS day, r.program_id, r.advocate_id,
           r.channel, r.currency, 1 AS leads, 0 AS opportunities, 0::bigint AS pipeline_minor,
           0 AS won, 0::bigint AS won_minor, 0::bigint AS revenue_minor,
           0::bigint AS sourced_revenue_minor, 0::bigint AS expansion_revenue_minor
    FROM r
    UNION ALL
    SELECT (o.created_at AT TIME ZONE 'UTC')::date, r.program_id, r.advocate_id, r.channel,
           o.currency, 0, 1, o.amount_minor, 0, 0, 0, 0, 0
    FROM opportunities o JOIN r ON r.id = o.referral_id
    UNION ALL
    SELECT COALESCE(o.close_date, (o.updated_at AT TIME ZONE 'UTC')::date), r.program_id,
           r.advocate_id, r.channel, o.currency, 0, 0, 0, 1, o.amount_minor, 0, 0, 0
    FROM opportunities o JOIN r ON r.id = o.referral_id
    WHERE o.status = 'won'
    UNION ALL
    SELECT (e.occurred_at AT TIME ZONE 'UTC')::date, r.program_id, r.advocate_id, r.channel,
           e.currency, 0, 0, 0, 0, 0, s.signed,
           CASE WHEN o.kind IS NULL OR o.kind = 'new_business' THEN s.signed ELSE 0 END,
           CASE WHEN o.kind IN ('expansion', 'renewal') THEN s.signed ELSE 0 END
    FROM revenue_events e
    JOIN r ON r.id = e.referral_id
    LEFT JOIN opportunities o ON o.id = e.opportunity_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN e.kind = 'refund' THEN -e.amount_minor ELSE e.amount_minor END
    ) AS s(signed)
)
SELECT day, program_id, advocate_id, channel, currency,
       SUM(leads)::bigint, SUM(opportunities)::bigint, SUM(pipeline_minor)::bigint,
       SUM(won)::bigint, SUM(won_minor)::bigint, SUM(revenue_minor)::bigint,
       SUM(sourced_revenue_minor)::bigint, SUM(expansion_revenue_minor)::bigint
FROM parts
GROUP BY day, program_id, advocate_id, channel, currency
"""


async def contributions(
    session: AsyncSession, referral_ids: Iterable[int]
) -> dict[Key, tuple[int, ...]]:
    ids = sorted(set(referral_ids))
    if not ids:
        return {}
    rows = await session.execute(_CONTRIBUTIONS_OF, {"ids": ids})
    return {tuple(row[:5]): tuple(int(v) for v in row[5:]) for row in rows}  # type: ignore[misc]


_CONTRIBUTIONS_OF = text(CONTRIBUTIONS.format(where="r.id = ANY(:ids)"))
_FINE_KEY = ("day", "program_id", "advocate_id", "channel", "currency")
_COARSE_KEY = ("program_id", "day", "channel", "currency")


def _adding(table: str, key: tuple[str, ...]) -> str:
    """``ON CONFLICT`` clause adding the new row's measures to the existing row's."""
    added = ", ".join(f"{m} = {table}.{m} + EXCLUDED.{m}" for m in MEASURES)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {added}"


_ANY_MEASURE = " OR ".join(f"{m} <> 0" for m in MEASURES)
_SUMS = ", ".join(f"SUM({m})::bigint AS {m}" for m in MEASURES)
_COLUMNS = ", ".join(MEASURES)


def add_contributions_ctes(ids: str) -> str:
    """What new referrals bring to both rollups, read and added, as CTEs (``c``, ``fine``,
    ``coarse``) another statement can carry: a claim writes its lead's rollup rows in the
    statement that announces it. ``ids`` is the SQL placeholder for the referral ids (their
    "before" is nothing). Rows are written in key order, as ``apply`` does, so concurrent
    writers lock rollup rows in the same order. Only constants are formatted in."""
    return _adding_ctes(CONTRIBUTIONS.format(where=f"r.id = ANY({ids})"))


# What new revenue events add: each its revenue measures on its own day, as ``CONTRIBUTIONS``
# counts them (a rejected referral's count nowhere); nothing else in the referral's
# contribution changes when an event is added.
_REVENUE_PARTS = f"""
    SELECT (e.occurred_at AT TIME ZONE 'UTC')::date, r.program_id, r.advocate_id,
           COALESCE(r.channel, l.channel, 'none'), e.currency,
           0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, s.signed::bigint,
           (CASE WHEN o.kind IS NULL OR o.kind = 'new_business' THEN s.signed ELSE 0 END)::bigint,
           (CASE WHEN o.kind IN ('expansion', 'renewal') THEN s.signed ELSE 0 END)::bigint
    FROM {{events}} AS e
    JOIN referrals AS r ON r.id = e.referral_id AND r.status <> 'rejected'
    LEFT JOIN referral_links AS l ON l.id = r.link_id
    LEFT JOIN opportunities AS o ON o.id = e.opportunity_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN e.kind = '{RevenueKind.REFUND.value}' THEN -e.amount_minor
                    ELSE e.amount_minor END
    ) AS s(signed)"""  # noqa: S608 (constants only)


def add_revenue_ctes(events: str) -> str:
    """What the revenue events of ``events`` (a CTE of the same statement with the
    ``revenue_events`` columns: the rows it inserts) add to both rollups, as CTEs (``c``,
    ``fine``, ``coarse``): a charge writes its rollup rows in the statement that records it.
    The referral must be locked (its status is read). Only a CTE name is formatted in."""
    return _adding_ctes(_REVENUE_PARTS.format(events=events))


# What a change to one deal of a locked referral adds, as ``CONTRIBUTIONS`` counts it: the deal's
# own rows (opened, won) as given, before negated and after, and, when its kind changed, its
# charges on that referral moved between sourced and expansion revenue. $1 the referral,
# $2-$7 the deal's rows (day, currency, opportunities, pipeline, won, won amount), $8 the deal,
# $9 its kind before, $10 after.
_DEAL_PARTS = f"""
    SELECT day, program_id, advocate_id, channel, currency, {_SUMS}
    FROM (
        SELECT d.day, r.program_id, r.advocate_id,
               COALESCE(r.channel, l.channel, 'none') AS channel, d.currency,
               0::bigint AS leads, d.opportunities, d.pipeline_minor, d.won,
               d.won_minor, 0::bigint AS revenue_minor, 0::bigint AS sourced_revenue_minor,
               0::bigint AS expansion_revenue_minor
        FROM unnest($2::date[], $3::varchar[], $4::bigint[], $5::bigint[], $6::bigint[],
                    $7::bigint[]) AS d(day, currency, opportunities, pipeline_minor, won, won_minor)
        JOIN referrals AS r ON r.id = $1 AND r.status <> 'rejected'
        LEFT JOIN referral_links AS l ON l.id = r.link_id
        UNION ALL
        SELECT (e.occurred_at AT TIME ZONE 'UTC')::date, r.program_id, r.advocate_id,
               COALESCE(r.channel, l.channel, 'none'), e.currency, 0, 0, 0, 0, 0, 0,
               s.signed * (k.sourced_after - k.sourced_before),
               s.signed * (k.expansion_after - k.expansion_before)
        FROM revenue_events AS e
        JOIN referrals AS r ON r.id = e.referral_id AND r.status <> 'rejected'
        LEFT JOIN referral_links AS l ON l.id = r.link_id
        CROSS JOIN LATERAL (
            SELECT CASE WHEN e.kind = '{RevenueKind.REFUND.value}' THEN -e.amount_minor
                        ELSE e.amount_minor END
        ) AS s(signed)
        CROSS JOIN LATERAL (
            SELECT (CASE WHEN $9::varchar = 'new_business' THEN 1 ELSE 0 END),
                   (CASE WHEN $10::varchar = 'new_business' THEN 1 ELSE 0 END),
                   (CASE WHEN $9::varchar IN ('expansion', 'renewal') THEN 1 ELSE 0 END),
                   (CASE WHEN $10::varchar IN ('expansion', 'renewal') THEN 1 ELSE 0 END)
        ) AS k(sourced_before, sourced_after, expansion_before, expansion_after)
        WHERE e.opportunity_id = $8 AND e.referral_id = $1 AND $9::varchar <> $10::varchar
    ) AS parts
    GROUP BY day, program_id, advocate_id, channel, currency"""  # noqa: S608 (constants only)


def _deal_rows(deal: DealImage | None, referral_id: int, sign: int) -> list[tuple[Any, ...]]:
    """A deal's own rows in ``CONTRIBUTIONS`` (opened; won), signed, if it is the referral's."""
    if deal is None or deal.referral_id != referral_id:
        return []
    rows: list[tuple[Any, ...]] = [
        (
            deal.created_at.astimezone(UTC).date(),
            deal.currency,
            sign,
            sign * deal.amount_minor,
            0,
            0,
        )
    ]
    if deal.status == "won":
        day = deal.close_date or deal.updated_at.astimezone(UTC).date()
        rows.append((day, deal.currency, 0, 0, sign, sign * deal.amount_minor))
    return rows


def deal_change_args(
    referral_id: int, deal_id: int, before: DealImage | None, after: DealImage
) -> list[Any] | None:
    """The parameters of ``DEAL_CHANGE_CTES`` for a change to one deal; None when it adds
    nothing (a stage moved)."""
    rows = _deal_rows(before, referral_id, -1) + _deal_rows(after, referral_id, 1)
    kind_before = before.kind if before is not None else after.kind
    totals: dict[tuple[Any, ...], list[int]] = {}
    for day, currency, *values in rows:
        sums = totals.setdefault((day, currency), [0, 0, 0, 0])
        for i, value in enumerate(values):
            sums[i] += value
    parts = [(*k, *v) for k, v in sorted(totals.items()) if any(v)]
    if not parts and kind_before == after.kind:
        return None
    columns = [list(c) for c in zip(*parts, strict=True)] if parts else [[]] * 6
    return [referral_id, *columns, deal_id, kind_before, after.kind]


async def add_deal_change(
    session: AsyncSession,
    referral_id: int,
    deal_id: int,
    before: DealImage | None,
    after: DealImage,
) -> None:
    """Add what a change to one deal brings to both rollups, the deal's referral locked and
    the deal's own referral unchanged (or newly set): ``track`` without reading the
    referral's contribution twice. Nothing to add (a stage moved): no statement."""
    args = deal_change_args(referral_id, deal_id, before, after)
    if args is not None:
        await run_raw(session, _DEAL_CHANGE_SQL, args)


class DealImage(Protocol):
    """What the rollup counts of a deal (an ``Opportunity``, or its values before a change)."""

    @property
    def referral_id(self) -> int | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def amount_minor(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def close_date(self) -> date | None: ...
    @property
    def updated_at(self) -> datetime: ...


def _adding_ctes(contributions: str) -> str:
    """``contributions`` (rows of the fine key and the measures) added to both rollups, as
    CTEs ``c``, ``fine`` and ``coarse``."""
    return f"""
c ({", ".join(_FINE_KEY)}, {_COLUMNS}) AS (
    {contributions}
), fine AS (
    INSERT INTO referral_daily_rollups ({", ".join(_FINE_KEY)}, {_COLUMNS})
    SELECT * FROM c WHERE {_ANY_MEASURE}
    ORDER BY {", ".join(_FINE_KEY)}
    {_adding("referral_daily_rollups", _FINE_KEY)}
), coarse AS (
    INSERT INTO program_daily_rollups ({", ".join(_COARSE_KEY)}, {_COLUMNS})
    SELECT * FROM (
        SELECT {", ".join(_COARSE_KEY)}, {_SUMS} FROM c GROUP BY {", ".join(_COARSE_KEY)}
    ) AS sums
    WHERE {_ANY_MEASURE}
    ORDER BY {", ".join(_COARSE_KEY)}
    {_adding("program_daily_rollups", _COARSE_KEY)}
)"""  # noqa: S608


_ADD_CONTRIBUTIONS = text("WITH " + add_contributions_ctes(":ids") + " SELECT 1")
# ``add_deal_change`` as CTEs another statement can carry (``c``, ``fine``, ``coarse``; $1-$10
# from ``deal_change_args``).
DEAL_CHANGE_CTES = _adding_ctes(_DEAL_PARTS)
_DEAL_CHANGE_SQL = "WITH " + DEAL_CHANGE_CTES + " SELECT 1"


async def add_contributions(session: AsyncSession, referral_ids: Iterable[int]) -> None:
    """Add what these referrals contribute to both rollups: for referrals that contributed
    nothing before (new ones), in one statement."""
    ids = sorted(set(referral_ids))
    if ids:
        await session.execute(_ADD_CONTRIBUTIONS, {"ids": ids})


async def apply(session: AsyncSession, delta: dict[Key, tuple[int, ...]]) -> None:
    """Add ``delta`` to both rollups (per advocate, and per program), creating rows as needed."""
    fine: list[dict[str, Any]] = []
    coarse: dict[tuple[int, date, str, str], list[int]] = {}
    for (day, program_id, advocate_id, channel, currency), values in sorted(delta.items()):
        if not any(values):
            continue
        fine.append(
            {
                "day": day,
                "program_id": program_id,
                "advocate_id": advocate_id,
                "channel": channel,
                "currency": currency,
                **dict(zip(MEASURES, values, strict=True)),
            }
        )
        sums = coarse.setdefault((program_id, day, channel, currency), [0] * len(MEASURES))
        for i, value in enumerate(values):
            sums[i] += value
    if not fine:
        return
    await session.execute(_FINE_UPSERT, fine)
    # A credit moved between two advocates of one program nets to nothing per program.
    program_rows = [
        {
            "program_id": program_id,
            "day": day,
            "channel": channel,
            "currency": currency,
            **dict(zip(MEASURES, values, strict=True)),
        }
        for (program_id, day, channel, currency), values in sorted(coarse.items())
        if any(values)
    ]
    if program_rows:
        await session.execute(_COARSE_UPSERT, program_rows)


def _upsert(model: Any, key: tuple[str, ...]) -> Any:
    """Built once: ``INSERT … ON CONFLICT (key) DO UPDATE`` adding the measures."""
    stmt = insert(model)
    table = model.__table__
    return stmt.on_conflict_do_update(
        index_elements=list(key), set_={m: table.c[m] + stmt.excluded[m] for m in MEASURES}
    )


_FINE_UPSERT = _upsert(ReferralDailyRollup, _FINE_KEY)
_COARSE_UPSERT = _upsert(ProgramDailyRollup, _COARSE_KEY)


def difference(
    after: dict[Key, tuple[int, ...]], before: dict[Key, tuple[int, ...]]
) -> dict[Key, tuple[int, ...]]:
    zero = (0,) * len(MEASURES)
    return {
        key: tuple(a - b for a, b in zip(after.get(key, zero), before.get(key, zero), strict=True))
        for key in after.keys() | before.keys()
    }


@asynccontextmanager
async def track(
    session: AsyncSession, referral_ids: Iterable[int | None], *, locked: Iterable[int] = ()
) -> AsyncIterator[None]:
    """Keep the rollup right across a change to these referrals (or their opportunities and
    revenue): contribution after minus contribution before. ``locked``: referrals the caller
    holds under their row lock already (when that is all of them, no lock is taken)."""
    ids = sorted({i for i in referral_ids if i is not None})
    if ids and not set(ids) <= set(locked):
        # Serialise writers of the same referral so "before" is what this change starts from.
        await session.execute(
            text("SELECT id FROM referrals WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"),
            {"ids": ids},
        )
    before = await contributions(session, ids)
    yield
    await session.flush()
    after = await contributions(session, ids)
    await apply(session, difference(after, before))


async def rebuild(session: AsyncSession) -> int:
    """Recompute the whole rollup from raw events; returns the number of rows written."""
    # TRUNCATE (transactional in PostgreSQL) instead of DELETE: no dead tuples, no per-row
    # index maintenance; concurrent writers wait for the rebuild's commit on the table lock.
    await session.execute(text("TRUNCATE referral_daily_rollups, program_daily_rollups"))
    # Keep the contribution aggregate in memory rather than spilling to disk.
    await session.execute(text("SET LOCAL work_mem = '256MB'"))
    columns = ", ".join(("day", "program_id", "advocate_id", "channel", "currency", *MEASURES))
    result = await session.execute(
        text(
            f"INSERT INTO referral_daily_rollups ({columns}) "
            + CONTRIBUTIONS.format(where="TRUE")
            # Rows of one program's days land in neighbouring pages: a 90-day report reads
            # hundreds of pages, not one per row.
            + " ORDER BY program_id, day"
        )
    )
    measures = ", ".join(MEASURES)
    sums = ", ".join(f"SUM({m})::bigint" for m in MEASURES)
    await session.execute(
        text(
            "INSERT INTO program_daily_rollups "  # noqa: S608 - constant SQL
            f"(program_id, day, channel, currency, {measures}) "
            f"SELECT program_id, day, channel, currency, {sums} FROM referral_daily_rollups "
            "GROUP BY program_id, day, channel, currency"
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def snapshot(
    session: AsyncSession, *, per_program: bool = False
) -> dict[Any, tuple[int, ...]]:
    """Every non-zero row of one rollup (for checks and the rebuild comparison)."""
    keys = (
        ("program_id", "day", "channel", "currency")
        if per_program
        else ("day", "program_id", "advocate_id", "channel", "currency")
    )
    table = "program_daily_rollups" if per_program else "referral_daily_rollups"
    rows = await session.execute(
        text(f"SELECT {', '.join(keys + MEASURES)} FROM {table}")  # noqa: S608 - constant
    )
    out: dict[Any, tuple[int, ...]] = {}
    for row in rows:
        values = tuple(int(v) for v in row[len(keys) :])
        if any(values):
            out[tuple(row[: len(keys)])] = values
    return out
