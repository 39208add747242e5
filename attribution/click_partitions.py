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


async def ensure_partitions(
    session: AsyncSession, *, now: datetime, ahead: int, since: date | None = None
) -> Upkeep:
    """Have a partition for this month and the ``ahead`` months after it (and every month
    from ``since``'s, for a bulk load of past clicks). Rows the default partition holds for a
    new month move into it. Flushes, never commits."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    existing = set(await monthly_partitions(session))
    this_month = month_start(now.astimezone(UTC).date())
    first = min(month_start(since), this_month) if since is not None else this_month
    months = (first.year - this_month.year) * 12 + first.month - this_month.month
    created: list[str] = []
    moved = 0
    for n in range(months, ahead + 1):
        month = add_months(this_month, n)
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


@dataclass(frozen=True, slots=True)
class Retention:
    dropped: tuple[str, ...]
    summarised: int  # clicks now held only as monthly totals


async def drop_expired(session: AsyncSession, *, now: datetime, keep_months: int) -> Retention:
    """Drop the months of clicks older than ``keep_months`` full months before this one, once
    their counts are held in ``click_monthly_totals`` (per link and channel: what every click
    count reads after the drop). The totals are written and checked against the month's rows in
    the same transaction as the drop, so a month is never dropped without them. Clicks the
    default partition holds from before the horizon are summarised and deleted the same way.
    Flushes, never commits."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    horizon = add_months(month_start(now.astimezone(UTC).date()), -keep_months)
    dropped: list[str] = []
    summarised = 0
    for month in await monthly_partitions(session):
        if month >= horizon:
            break
        name = partition_name(month)
        summarised += await _summarise(session, name, "true")
        await session.execute(text(f"ALTER TABLE {PARENT} DETACH PARTITION {name}"))
        await session.execute(text(f"DROP TABLE {name}"))
        dropped.append(name)
    before = f"occurred_at < '{_instant(horizon).isoformat()}'"
    count = await _summarise(session, DEFAULT_PARTITION, before)
    if count:
        await session.execute(text(f"DELETE FROM {DEFAULT_PARTITION} WHERE {before}"))  # noqa: S608
    return Retention(tuple(dropped), summarised + count)


async def _summarise(session: AsyncSession, table: str, where: str) -> int:
    """Add the clicks of ``table`` matching ``where`` to the monthly totals; their count.
    Checked: the totals grew by exactly that many clicks, else nothing is dropped."""
    rows = await session.scalar(text(f"SELECT count(*) FROM {table} WHERE {where}"))  # noqa: S608
    if not rows:
        return 0
    held = text("SELECT coalesce(sum(human + bots), 0) FROM click_monthly_totals")
    before = int(await session.scalar(held) or 0)
    await session.execute(
        text(
            "INSERT INTO click_monthly_totals "  # noqa: S608 - table and filter are ours
            "(link_id, month, channel, program_id, human, bots, last_at) "
            "SELECT link_id, date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date, "
            "coalesce(channel, ''), min(program_id), count(*) FILTER (WHERE NOT is_bot), "
            f"count(*) FILTER (WHERE is_bot), max(occurred_at) FROM {table} WHERE {where} "
            "GROUP BY 1, 2, 3 "
            "ON CONFLICT (link_id, month, channel) DO UPDATE SET "
            "human = click_monthly_totals.human + excluded.human, "
            "bots = click_monthly_totals.bots + excluded.bots, "
            "last_at = greatest(click_monthly_totals.last_at, excluded.last_at)"
        )
    )
    added = int(await session.scalar(held) or 0) - before
    if added != int(rows):  # never drop clicks the totals do not hold
        raise RuntimeError(f"click totals took {added} of the {rows} clicks of {table}")
    return int(rows)
