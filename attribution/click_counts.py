"""Click counts: the raw clicks plus what retention kept of dropped months.

Every click count (the funnel, link and advocate counters, the share page) reads through here,
so a month dropped by ``VOUCH_CLICK_RETENTION_MONTHS`` (attribution.click_partitions) keeps
counting everywhere alike. A kept month's clicks are placed at the month's first instant (UTC):
a report period counts them when it contains that instant (docs/REPORTS.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Subquery,
    cast,
    func,
    literal,
    select,
    union_all,
)

from vouch.models import Click, ClickMonthlyTotal

Kept = ClickMonthlyTotal


def per_link(of_links: Callable[[Any], ColumnElement[bool]]) -> Subquery:
    """Per link of those ``of_links(link_id_column)`` selects: ``total`` clicks, ``bots`` among
    them, ``last_at`` (the latest click)."""
    raw = (
        select(
            Click.link_id.label("link_id"),
            func.count().label("total"),
            func.count().filter(Click.is_bot).label("bots"),
            func.max(Click.occurred_at).label("last_at"),
        )
        .where(of_links(Click.link_id))
        .group_by(Click.link_id)
    )
    kept = (
        select(
            Kept.link_id,
            cast(func.sum(Kept.human + Kept.bots), BigInteger),
            cast(func.sum(Kept.bots), BigInteger),
            func.max(Kept.last_at),
        )
        .where(of_links(Kept.link_id))
        .group_by(Kept.link_id)
    )
    both = union_all(raw, kept).subquery()
    return (
        select(
            both.c.link_id,
            cast(func.sum(both.c.total), BigInteger).label("total"),
            cast(func.sum(both.c.bots), BigInteger).label("bots"),
            func.max(both.c.last_at).label("last_at"),
        )
        .group_by(both.c.link_id)
        .subquery()
    )


def human_clicks(
    *,
    program_id: int | None = None,
    link_ids: Any = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Any:
    """A scalar select: human (not bot) clicks of a program and/or of the links ``link_ids``
    (a select of link ids) in [since, until)."""
    raw = select(func.count().label("n")).select_from(Click).where(Click.is_bot.is_(False))
    kept = select(func.coalesce(func.sum(Kept.human), 0).label("n"))
    if program_id is not None:
        raw = raw.where(Click.program_id == program_id)
        kept = kept.where(Kept.program_id == program_id)
    if link_ids is not None:
        raw = raw.where(Click.link_id.in_(link_ids))
        kept = kept.where(Kept.link_id.in_(link_ids))
    # timezone('UTC', month::timestamp): the month's first instant, as a timestamptz
    month_start = func.timezone(literal("UTC"), cast(Kept.month, DateTime()))
    if since is not None:
        raw = raw.where(Click.occurred_at >= since)
        kept = kept.where(month_start >= since)
    if until is not None:
        raw = raw.where(Click.occurred_at < until)
        kept = kept.where(month_start < until)
    both = union_all(raw, kept).subquery()
    return select(cast(func.sum(both.c.n), BigInteger)).scalar_subquery()
