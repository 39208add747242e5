"""Monthly partitions of ``clicks``: created ahead by the scheduled job ``clicks_partitions``.

``clicks`` is range-partitioned on ``occurred_at`` by calendar month (UTC), one table per month
named ``clicks_YYYY_MM``, plus ``clicks_default`` for a click no month holds (a clock far off,
or a month the job has not created yet: the job then moves those rows into the new month). A
query that filters on ``occurred_at`` reads only the months it names (partition pruning).

Upkeep is one transaction under an advisory lock, so two workers running it at once (or the job
and ``vouch jobs run``) create each month once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

PARENT = "clicks"
DEFAULT_PARTITION = "clicks_default"
_NAME = re.compile(r"^clicks_(\d{4})_(\d{2})$")
_LOCK_KEY = 0x766F7563_6B706172  # "vouckpar": one upkeep at a time across processes
_COLUMNS = (
    "id, link_id, program_id, occurred_at, channel, utm, ip_hash, user_agent, is_bot, "
    "bot_reason, visitor_id, referrer_host"
)


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{PARENT}_{month:%Y_%m}"


def _instant(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Upkeep:
    created: tuple[str, ...]
    moved_from_default: int


async def monthly_partitions(session: AsyncSession) -> list[date]:
    """The months that have a partition, oldest first."""
    rows = await session.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'clicks'::regclass"
        )
    )
    months = []
    for name in rows:
        match = _NAME.match(name)
        if match:
            months.append(date(int(match[1]), int(match[2]), 1))
    return sorted(months)


async def ensure_partitions(session: AsyncSession, *, now: datetime, ahead: int) -> Upkeep:
    """Have a partition for this month and the ``ahead`` months after it. Rows the default
    partition holds for a new month move into it. Flushes, never commits."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    existing = set(await monthly_partitions(session))
    first = month_start(now.astimezone(UTC).date())
    created: list[str] = []
    moved = 0
    for n in range(ahead + 1):
        month = add_months(first, n)
        if month in existing:
            continue
        moved += await _create_month(session, month)
        created.append(partition_name(month))
    return Upkeep(tuple(created), moved)


async def _create_month(session: AsyncSession, month: date) -> int:
    name = partition_name(month)
    bounds = {"start": _instant(month), "end": _instant(add_months(month, 1))}
    waiting = await session.scalar(
        text(
            f"SELECT count(*) FROM {DEFAULT_PARTITION} "  # noqa: S608 - constant names
            "WHERE occurred_at >= :start AND occurred_at < :end"
        ),
        bounds,
    )
    start, end = (bounds["start"].isoformat(), bounds["end"].isoformat())
    if not waiting:
        await session.execute(
            text(
                f"CREATE TABLE {name} PARTITION OF {PARENT} "
                f"FOR VALUES FROM ('{start}') TO ('{end}')"
            )
        )
        return 0
    # Attaching a month the default partition has rows for is refused: build the month as a
    # plain table, move the rows, then attach it (the default is checked to hold none left).
    await session.execute(text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS)"))
    await session.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "  # noqa: S608 - constant names
            f"WHERE occurred_at >= :start AND occurred_at < :end RETURNING {_COLUMNS}) "
            f"INSERT INTO {name} ({_COLUMNS}) SELECT {_COLUMNS} FROM moved"
        ),
        bounds,
    )
    await session.execute(
        text(
            f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM ('{start}') TO ('{end}')"
        )
    )
    return int(waiting)
