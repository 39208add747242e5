"""Referral links: one per advocate x program x channel, addressed by a hashid code.

Creating a link is idempotent on its natural key: concurrent identical calls serialise on the
unique index and all return the same row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, bindparam, cast, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution import click_counts
from vouch.attribution.definitions import is_customer, is_referral
from vouch.catalog.landing_cache import announce_landing_change
from vouch.core.batching import SnapshotsBy, any_ids, ids_params
from vouch.core.clock import utcnow
from vouch.core.codes import LinkCodec
from vouch.core.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    Forbidden,
    NotFound,
    ValidationFailed,
)
from vouch.core.paging import Page, paginate
from vouch.core.raw_select import RawSelect
from vouch.core.snapshot import snapshot_class
from vouch.models import Advocate, Program, Referral, ReferralLink
from vouch.models.enums import LinkStatus, ProgramStatus
from vouch.models.snapshots import AdvocateSnapshot, ReferralLinkSnapshot

CHANNEL_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
DEFAULT_CHANNEL = "direct"


@dataclass(frozen=True, slots=True)
class ClickSummary:
    """Clicks on one link (or all of an advocate's links); bots are counted apart."""

    total: int = 0
    bots: int = 0
    last_clicked_at: datetime | None = None

    @property
    def humans(self) -> int:
        return self.total - self.bots


@dataclass(frozen=True, slots=True)
class LinkStats:
    clicks: ClickSummary
    referrals: int
    conversions: int


EMPTY_STATS = LinkStats(clicks=ClickSummary(), referrals=0, conversions=0)


@dataclass(frozen=True, slots=True)
class LinkFilter:
    program_id: int | None = None
    advocate_id: int | None = None
    channel: str | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class CreatedLink:
    link: ReferralLink
    created: bool


def check_channel(channel: str) -> str:
    value = channel.strip().lower()
    if not CHANNEL_PATTERN.match(value):
        raise ValidationFailed(
            "channel must be 1 to 32 characters: lower-case letters, digits, '-' or '_'",
            field="channel",
        )
    return value


async def get_link(session: AsyncSession, link_id: int) -> ReferralLink:
    link = await session.get(ReferralLink, link_id)
    if link is None:
        raise NotFound("no such referral link", field="id")
    return link


async def get_link_by_code(session: AsyncSession, codec: LinkCodec, code: str) -> ReferralLink:
    """The link a code names; malformed, non-canonical and unknown codes are all 'not found'."""
    decoded = codec.decode(code.strip())
    link = None
    if decoded is not None:
        link = await session.scalar(
            select(ReferralLink).where(
                ReferralLink.id == decoded.link_id, ReferralLink.nonce == decoded.nonce
            )
        )
    if link is None:
        raise NotFound("no referral link has this code", field="code")
    return link


_LINKS_BY_IDS = select(ReferralLink).where(any_ids(ReferralLink.id))
_LINK_ROW = snapshot_class(ReferralLink)
_LINKS_BY_ADVOCATES = SnapshotsBy(ReferralLink, "advocate_id")


def _stats_columns(
    of_links: Callable[[Any], ColumnElement[bool]],
) -> tuple[list[Any], Callable[[Select[Any]], Select[Any]]]:
    """The five link-stats columns (clicks, bot clicks, last click, referrals, won) for the
    links ``of_links(link_id_column)`` selects, and a function that outer-joins their
    aggregates to a statement that has ``referral_links``; read them with ``_stats``."""
    clicks = click_counts.per_link(of_links)
    referrals = (
        select(
            Referral.link_id.label("link_id"),
            func.count().label("referrals"),
            func.count().filter(is_customer()).label("won"),
        )
        .where(of_links(Referral.link_id), is_referral())
        .group_by(Referral.link_id)
        .subquery()
    )
    columns = [
        func.coalesce(clicks.c.total, 0),
        func.coalesce(clicks.c.bots, 0),
        clicks.c.last_at,
        func.coalesce(referrals.c.referrals, 0),
        func.coalesce(referrals.c.won, 0),
    ]

    def join(statement: Select[Any]) -> Select[Any]:
        return statement.outerjoin(clicks, clicks.c.link_id == ReferralLink.id).outerjoin(
            referrals, referrals.c.link_id == ReferralLink.id
        )

    return columns, join


def _stats(values: Sequence[Any]) -> LinkStats:
    total, bots, last_at, referred, won = values
    return LinkStats(
        clicks=ClickSummary(total=int(total), bots=int(bots), last_clicked_at=last_at),
        referrals=int(referred),
        conversions=int(won),
    )


def _link_stats_statement() -> Select[Any]:
    columns, join = _stats_columns(any_ids)
    return join(select(ReferralLink.id, *columns)).where(any_ids(ReferralLink.id))


def advocate_links_statement(*extra: Any) -> Select[Any]:
    """An advocate with each of its links and the links' stats: one row per link (one row with
    empty link columns for an advocate without links), then the ``extra`` columns (which may
    use the ``advocate_id`` parameter); read it with ``advocate_with_links``."""
    own_links = (
        select(ReferralLink.id)
        .where(ReferralLink.advocate_id == bindparam("advocate_id"))
        .scalar_subquery()
    )
    columns, join = _stats_columns(lambda link_id: link_id.in_(own_links))
    return (
        join(
            select(*Advocate.__table__.columns, *ReferralLink.__table__.columns, *columns, *extra)
            .select_from(Advocate)
            .outerjoin(ReferralLink, ReferralLink.advocate_id == Advocate.id)
        )
        .where(Advocate.id == bindparam("advocate_id"))
        .order_by(ReferralLink.id)
    )


_LINK_STATS = RawSelect(_link_stats_statement())
_ADVOCATE_ROW = snapshot_class(Advocate)
_ADVOCATE_LINKS = RawSelect(advocate_links_statement())
_ADVOCATE_PART = slice(0, len(_ADVOCATE_ROW._fields))
_LINK_PART = slice(_ADVOCATE_PART.stop, _ADVOCATE_PART.stop + len(_LINK_ROW._fields))
_STATS_PART = slice(_LINK_PART.stop, _LINK_PART.stop + 5)


@dataclass(frozen=True, slots=True)
class AdvocateLinks:
    """An advocate (read-only snapshot), its links oldest first, each link's stats, and the
    values of the statement's extra columns."""

    advocate: AdvocateSnapshot
    links: list[ReferralLinkSnapshot]
    stats: dict[int, LinkStats]
    extra: tuple[Any, ...] = ()


async def advocate_with_links(
    session: AsyncSession, advocate_id: int, statement: RawSelect = _ADVOCATE_LINKS
) -> AdvocateLinks:
    """What the advocate's widget shows on every load, in one statement (not three);
    ``statement`` is ``advocate_links_statement(...)`` with extra columns, if any. Only live
    links: a revoked link's share URL no longer resolves, so it is not offered."""
    rows = await statement.fetch(session, {"advocate_id": advocate_id})
    if not rows:
        raise NotFound("no such advocate", field="id")
    links: list[ReferralLinkSnapshot] = []
    stats: dict[int, LinkStats] = {}
    for row in rows:
        if row[_LINK_PART.start] is None:  # an advocate without links
            continue
        link = _LINK_ROW._make(row[_LINK_PART])
        if link.status == LinkStatus.REVOKED:
            continue
        links.append(link)
        stats[link.id] = _stats(row[_STATS_PART])
    first = rows[0]
    return AdvocateLinks(
        _ADVOCATE_ROW._make(first[_ADVOCATE_PART]), links, stats, tuple(first[_STATS_PART.stop :])
    )


_ADVOCATES_LINKS = select(ReferralLink.id).where(any_ids(ReferralLink.advocate_id))
_ADVOCATES_CLICKS = click_counts.per_link(lambda link_id: link_id.in_(_ADVOCATES_LINKS))
_CLICKS_BY_ADVOCATES = (
    select(
        ReferralLink.advocate_id,
        cast(func.sum(_ADVOCATES_CLICKS.c.total), BigInteger),
        cast(func.sum(_ADVOCATES_CLICKS.c.bots), BigInteger),
        func.max(_ADVOCATES_CLICKS.c.last_at),
    )
    .join(_ADVOCATES_CLICKS, _ADVOCATES_CLICKS.c.link_id == ReferralLink.id)
    .where(any_ids(ReferralLink.advocate_id))
    .group_by(ReferralLink.advocate_id)
)


async def links_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, ReferralLink]:
    rows = await session.scalars(_LINKS_BY_IDS, ids_params(ids))
    return {link.id: link for link in rows}


async def links_by_advocates(
    session: AsyncSession, advocate_ids: Sequence[int]
) -> dict[int, list[ReferralLinkSnapshot]]:
    """Every link of each advocate, oldest first, in one statement, as read-only snapshots
    (the widget reads them on every load)."""
    return await _LINKS_BY_ADVOCATES.fetch(session, advocate_ids)


async def link_stats(session: AsyncSession, link_ids: Sequence[int]) -> dict[int, LinkStats]:
    """Click counts, referral counts and won-referral counts per link, in one statement."""
    result: dict[int, LinkStats] = {}
    for row in await _LINK_STATS.fetch(session, ids_params(link_ids)):
        result[row[0]] = _stats(row[1:])
    return result


async def click_summaries_by_advocates(
    session: AsyncSession, advocate_ids: Sequence[int]
) -> dict[int, ClickSummary]:
    """Clicks over all of each advocate's links, in one statement."""
    rows = (await session.execute(_CLICKS_BY_ADVOCATES, ids_params(advocate_ids))).all()
    return {
        advocate_id: ClickSummary(total=int(total), bots=int(bots), last_clicked_at=last_at)
        for advocate_id, total, bots, last_at in rows
    }


async def list_links(
    session: AsyncSession,
    flt: LinkFilter,
    *,
    first: int,
    after: int | None,
    before: int | None = None,
    from_end: bool = False,
    newest_first: bool = False,
) -> Page[ReferralLink]:
    stmt = select(ReferralLink)
    if flt.program_id is not None:
        stmt = stmt.where(ReferralLink.program_id == flt.program_id)
    if flt.advocate_id is not None:
        stmt = stmt.where(ReferralLink.advocate_id == flt.advocate_id)
    if flt.channel is not None:
        stmt = stmt.where(ReferralLink.channel == flt.channel)
    if flt.status is not None:
        stmt = stmt.where(ReferralLink.status == flt.status)
    return await paginate(
        session,
        stmt,
        key=ReferralLink.id,
        first=first,
        after=after,
        before=before,
        from_end=from_end,
        descending=newest_first,
    )


async def create_link(
    session: AsyncSession,
    codec: LinkCodec,
    *,
    advocate_id: int,
    program_id: int,
    channel: str = DEFAULT_CHANNEL,
    self_service_cap: int | None = None,
) -> CreatedLink:
    """The advocate's link for this program and channel, created on first call.

    ``self_service_cap`` set means the advocate asks for it (a widget token), not an operator:
    the program must be active, the advocate must have referral consent and already be
    enrolled in the program (hold an active link in it, made by an operator), and may hold at
    most ``self_service_cap`` links in it, revoked ones included (so a revoked link is never
    traded for a fresh one). An existing link of that channel is returned as before. The
    advocate's row is locked, so concurrent calls cannot overshoot the cap."""
    channel = check_channel(channel)
    if self_service_cap is None:
        advocate = await session.get(Advocate, advocate_id)
    else:
        advocate = await session.scalar(
            select(Advocate).where(Advocate.id == advocate_id).with_for_update()
        )
    if advocate is None:
        raise NotFound("no such advocate", field="advocateId")
    if advocate.erased_at is not None:
        raise Conflict("this advocate has been erased", field="advocateId")
    program = await session.get(Program, program_id)
    if program is None:
        raise NotFound("no such program", field="programId")
    if program.status == ProgramStatus.ARCHIVED:
        raise Conflict("this program is archived", field="programId")
    if self_service_cap is not None:
        await _check_self_service(session, advocate, program, channel, self_service_cap)

    nonce = codec.new_nonce()
    inserted = await session.scalar(
        insert(ReferralLink)
        .values(
            advocate_id=advocate_id,
            program_id=program_id,
            channel=channel,
            nonce=nonce,
            status=LinkStatus.ACTIVE,
        )
        .on_conflict_do_nothing(index_elements=["advocate_id", "program_id", "channel"])
        .returning(ReferralLink.id)
    )
    if inserted is not None:
        # The code needs the id; both are written in this transaction, so no reader ever
        # sees a committed link without a code.
        await session.execute(
            update(ReferralLink)
            .where(ReferralLink.id == inserted)
            .values(code=codec.encode(inserted, nonce))
        )
    link = await session.scalar(
        select(ReferralLink)
        .where(
            ReferralLink.advocate_id == advocate_id,
            ReferralLink.program_id == program_id,
            ReferralLink.channel == channel,
        )
        .execution_options(populate_existing=True)
    )
    assert link is not None  # inserted now, or committed by whoever won the race
    if inserted is None and link.status == LinkStatus.REVOKED:
        raise Conflict(
            "this advocate's link for this program and channel was revoked; use another channel",
            field="channel",
        )
    return CreatedLink(link=link, created=inserted is not None)


async def _check_self_service(
    session: AsyncSession, advocate: Advocate, program: Program, channel: str, cap: int
) -> None:
    """What an advocate's own request for a link must meet (see ``create_link``)."""
    if program.status != ProgramStatus.ACTIVE:
        raise DomainError(
            f"this program is {program.status}; links can be created only in an active program",
            field="programId",
            code=ErrorCode.INACTIVE,
        )
    if not advocate.consent_referral:
        raise Forbidden("the advocate has not consented to referrals", field="advocateId")
    rows = (
        await session.execute(
            select(ReferralLink.channel, ReferralLink.status).where(
                ReferralLink.advocate_id == advocate.id, ReferralLink.program_id == program.id
            )
        )
    ).all()
    if not any(status == LinkStatus.ACTIVE for _, status in rows):
        raise Forbidden("the advocate is not enrolled in this program", field="programId")
    if channel not in {c for c, _ in rows} and len(rows) >= cap:
        raise DomainError(
            f"the advocate already has {len(rows)} links in this program (at most {cap})",
            field="channel",
            code=ErrorCode.CAPPED,
        )


async def revoke_link(session: AsyncSession, link_id: int) -> ReferralLink:
    """Stop a link from resolving; clicks and referrals it brought are kept. Idempotent."""
    link = await get_link(session, link_id)
    if link.status != LinkStatus.REVOKED:
        link.status = LinkStatus.REVOKED
        link.revoked_at = utcnow()
        await session.flush()
        await announce_landing_change(session, link.code)
    return link
