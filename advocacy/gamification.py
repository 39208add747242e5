"""Gamification: a points ledger per advocacy action, badges for milestones, levels, and a
leaderboard per program and period.

Points are a ledger (``PointsEntry``), never a counter: an action earns its points once
(unique on advocate, reason, ref), so a retried award is a no-op. Points per action kind and
the level ladder are configurable per program in ``settings["points"]`` / ``["levels"]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution.rewards import POINTS_BADGE_AT, POINTS_BADGE_CODE
from vouch.core.batching import any_ids, ids_params
from vouch.core.errors import ValidationFailed
from vouch.core.raw_select import RawSelect
from vouch.models import AdvocacyAction, Advocate, AdvocateBadge, PointsEntry, Program
from vouch.models.enums import ActionKind

DEFAULT_POINTS: dict[str, int] = {
    ActionKind.REVIEW: 50,
    ActionKind.TESTIMONIAL: 100,
    ActionKind.CASE_STUDY: 250,
    ActionKind.QUOTE: 60,
    ActionKind.REFERENCE: 150,
    ActionKind.TALK: 200,
    ActionKind.REFERRAL: 75,
    ActionKind.SOCIAL_SHARE: 10,
    ActionKind.COMMUNITY: 20,
    ActionKind.SURVEY: 10,
}

# (minimum points, name), ascending. Level numbers count from 1.
DEFAULT_LEVELS: tuple[tuple[int, str], ...] = (
    (0, "Member"),
    (100, "Contributor"),
    (500, "Advocate"),
    (1500, "Champion"),
    (5000, "Legend"),
)


@dataclass(frozen=True, slots=True)
class BadgeRule:
    code: str
    name: str
    description: str
    kind: str | None  # count actions of this kind; None counts all actions
    at_least: int


BADGES: tuple[BadgeRule, ...] = (
    BadgeRule("first_action", "First step", "Took a first advocacy action.", None, 1),
    BadgeRule("five_actions", "Regular", "Took five advocacy actions.", None, 5),
    BadgeRule("twenty_five_actions", "Stalwart", "Took 25 advocacy actions.", None, 25),
    BadgeRule("first_review", "Reviewer", "Wrote a first review.", ActionKind.REVIEW, 1),
    BadgeRule(
        "first_case_study", "Storyteller", "Took part in a case study.", ActionKind.CASE_STUDY, 1
    ),
    BadgeRule("first_reference", "Reference", "Gave a reference call.", ActionKind.REFERENCE, 1),
    BadgeRule("connector", "Connector", "Made three referrals.", ActionKind.REFERRAL, 3),
    BadgeRule("speaker", "Speaker", "Gave a talk.", ActionKind.TALK, 1),
)
BADGE_BY_CODE = {b.code: b for b in BADGES}
# Held while the points balance reaches the threshold: a voided points reward can take it away.
POINTS_BADGE = BadgeRule(
    POINTS_BADGE_CODE, "Thousand club", "Earned 1,000 points.", None, POINTS_BADGE_AT
)


def parse_points(raw: Mapping[str, Any] | None) -> dict[str, int]:
    """``settings["points"]``: points per action kind over the defaults (0 to 10,000)."""
    points = dict(DEFAULT_POINTS)
    if not raw:
        return points
    if not isinstance(raw, Mapping):
        raise ValidationFailed("points must be an object", field="points")
    for key, value in raw.items():
        if key not in DEFAULT_POINTS:
            raise ValidationFailed(
                f"unknown action kind '{key}'; known: {', '.join(DEFAULT_POINTS)}",
                field=f"points.{key}",
            )
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
            raise ValidationFailed("must be a whole number from 0 to 10000", field=f"points.{key}")
        points[key] = value
    return points


def parse_levels(raw: object) -> tuple[tuple[int, str], ...]:
    """``settings["levels"]``: a list of {"name", "min_points"}, the first at 0, ascending."""
    if not raw:
        return DEFAULT_LEVELS
    if not isinstance(raw, list) or not 1 <= len(raw) <= 20:
        raise ValidationFailed("levels must be a list of 1 to 20 levels", field="levels")
    out: list[tuple[int, str]] = []
    for index, item in enumerate(raw):
        where = f"levels.{index}"
        if not isinstance(item, Mapping) or set(item) != {"name", "min_points"}:
            raise ValidationFailed('each level is {"name": ..., "min_points": ...}', field=where)
        name, low = item["name"], item["min_points"]
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 40:
            raise ValidationFailed("a level name is 1 to 40 characters", field=f"{where}.name")
        if isinstance(low, bool) or not isinstance(low, int) or low < 0:
            raise ValidationFailed(
                "min_points must be a whole number >= 0", field=f"{where}.min_points"
            )
        if out and low <= out[-1][0]:
            raise ValidationFailed("min_points must increase", field=f"{where}.min_points")
        out.append((low, name.strip()))
    if out[0][0] != 0:
        raise ValidationFailed("the first level starts at 0 points", field="levels.0.min_points")
    return tuple(out)


def points_for(program: Program | None, kind: str) -> int:
    table = parse_points((program.settings or {}).get("points") if program else None)
    return table.get(kind, 0)


@dataclass(frozen=True, slots=True)
class Level:
    number: int
    name: str
    min_points: int
    next_name: str | None
    next_at: int | None


def level_for(points: int, levels: Sequence[tuple[int, str]] = DEFAULT_LEVELS) -> Level:
    index = 0
    for i, (low, _) in enumerate(levels):
        if points >= low:
            index = i
    low, name = levels[index]
    nxt = levels[index + 1] if index + 1 < len(levels) else None
    return Level(
        number=index + 1,
        name=name,
        min_points=low,
        next_name=nxt[1] if nxt else None,
        next_at=nxt[0] if nxt else None,
    )


async def award_for_action(
    session: AsyncSession, action: AdvocacyAction, program: Program | None
) -> int:
    """Points for one action (once), then any badges now earned. Returns the points added."""
    points = points_for(program, action.kind)
    added = 0
    if points:
        inserted = await session.scalar(
            insert(PointsEntry)
            .values(
                advocate_id=action.advocate_id,
                program_id=action.program_id,
                points=points,
                reason=f"action:{action.kind}"[:32],
                ref=str(action.id),
                at=action.occurred_at,
            )
            .on_conflict_do_nothing(index_elements=["advocate_id", "reason", "ref"])
            .returning(PointsEntry.id)
        )
        added = points if inserted is not None else 0
    await award_badges(session, action.advocate_id, now=action.occurred_at)
    return added


async def award_badges(session: AsyncSession, advocate_id: int, *, now: datetime) -> list[str]:
    """Award every milestone badge the advocate has reached; returns the new ones."""
    by_kind = {
        row[0]: int(row[1])
        for row in await session.execute(
            select(AdvocacyAction.kind, func.count())
            .where(AdvocacyAction.advocate_id == advocate_id)
            .group_by(AdvocacyAction.kind)
        )
    }
    total_points = int(
        await session.scalar(
            select(func.coalesce(func.sum(PointsEntry.points), 0)).where(
                PointsEntry.advocate_id == advocate_id
            )
        )
        or 0
    )
    total = sum(by_kind.values())
    earned = [
        rule.code
        for rule in BADGES
        if (total if rule.kind is None else by_kind.get(rule.kind, 0)) >= rule.at_least
    ]
    if total_points >= POINTS_BADGE.at_least:
        earned.append(POINTS_BADGE.code)
    if not earned:
        return []
    new = await session.scalars(
        insert(AdvocateBadge)
        .values([{"advocate_id": advocate_id, "badge": code, "awarded_at": now} for code in earned])
        .on_conflict_do_nothing(index_elements=["advocate_id", "badge"])
        .returning(AdvocateBadge.badge)
    )
    return list(new)


def badge_info(code: str) -> BadgeRule:
    if code == POINTS_BADGE.code:
        return POINTS_BADGE
    return BADGE_BY_CODE.get(code, BadgeRule(code, code, "", None, 0))


@dataclass(frozen=True, slots=True)
class Standing:
    advocate_id: int
    points: int
    level: Level
    badges: list[AdvocateBadge]


async def standing(
    session: AsyncSession, advocate_id: int, *, program: Program | None = None
) -> Standing:
    """Points (in one program, or overall), level and badges of one advocate."""
    stmt = select(func.coalesce(func.sum(PointsEntry.points), 0)).where(
        PointsEntry.advocate_id == advocate_id
    )
    if program is not None:
        stmt = stmt.where(PointsEntry.program_id == program.id)
    points = int(await session.scalar(stmt) or 0)
    badges = list(
        await session.scalars(
            select(AdvocateBadge)
            .where(AdvocateBadge.advocate_id == advocate_id)
            .order_by(AdvocateBadge.awarded_at, AdvocateBadge.badge)
        )
    )
    levels = parse_levels((program.settings or {}).get("levels") if program else None)
    return Standing(advocate_id, points, level_for(points, levels), badges)


class Period(StrEnum):
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    ALL_TIME = "all_time"


def period_bounds(period: Period, at: datetime) -> tuple[datetime | None, datetime | None]:
    """The calendar period (UTC) containing ``at``: [start, end)."""
    at = at.astimezone(UTC)
    if period is Period.ALL_TIME:
        return None, None
    if period is Period.WEEK:
        start = datetime(at.year, at.month, at.day, tzinfo=UTC) - timedelta(days=at.weekday())
        return start, start + timedelta(days=7)
    if period is Period.MONTH:
        start = datetime(at.year, at.month, 1, tzinfo=UTC)
        end_month = at.month % 12 + 1
        return start, datetime(at.year + (at.month == 12), end_month, 1, tzinfo=UTC)
    if period is Period.QUARTER:
        first = 3 * ((at.month - 1) // 3) + 1
        start = datetime(at.year, first, 1, tzinfo=UTC)
        end_month = first + 3
        end = (
            datetime(at.year + 1, 1, 1, tzinfo=UTC)
            if end_month > 12
            else datetime(at.year, end_month, 1, tzinfo=UTC)
        )
        return start, end
    return datetime(at.year, 1, 1, tzinfo=UTC), datetime(at.year + 1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LeaderRow:
    rank: int
    advocate_id: int
    points: int
    display_name: str


async def leaderboard(
    session: AsyncSession, program_id: int, *, period: Period, at: datetime, limit: int = 10
) -> list[LeaderRow]:
    """Top advocates by points earned in the program during the period; equal points share a
    rank (1, 1, 3), ties listed by advocate id."""
    if not 1 <= limit <= 100:
        raise ValidationFailed("limit must be between 1 and 100", field="limit")
    start, end = period_bounds(period, at)
    total = func.sum(PointsEntry.points)
    stmt = (
        select(
            PointsEntry.advocate_id,
            total.label("points"),
            func.rank().over(order_by=total.desc()).label("rank"),
            Advocate.first_name,
            Advocate.last_name,
        )
        .join(Advocate, Advocate.id == PointsEntry.advocate_id)
        .where(PointsEntry.program_id == program_id, Advocate.erased_at.is_(None))
        .group_by(PointsEntry.advocate_id, Advocate.first_name, Advocate.last_name)
        .having(total > 0)
    )
    if start is not None and end is not None:
        stmt = stmt.where(PointsEntry.at >= start, PointsEntry.at < end)
    rows = await session.execute(stmt.order_by(total.desc(), PointsEntry.advocate_id).limit(limit))
    return [
        LeaderRow(
            rank=int(r.rank),
            advocate_id=r.advocate_id,
            points=int(r.points),
            display_name=display_name(r.first_name, r.last_name),
        )
        for r in rows
    ]


def display_name(first: str | None, last: str | None) -> str:
    """What a leaderboard shows of a person: first name and last initial, never the email."""
    first = (first or "").strip()
    initial = (last or "").strip()[:1]
    if first and initial:
        return f"{first} {initial}."
    return first or (f"{initial}." if initial else "Anonymous advocate")


_POINTS_BY_ADVOCATES = RawSelect(
    select(PointsEntry.advocate_id, func.sum(PointsEntry.points))
    .where(any_ids(PointsEntry.advocate_id))
    .group_by(PointsEntry.advocate_id)
)


async def points_for_advocates(
    session: AsyncSession, advocate_ids: Sequence[int]
) -> dict[int, int]:
    """Total points per advocate in one statement (for dataloaders)."""
    result = dict.fromkeys(advocate_ids, 0)
    if advocate_ids:
        for advocate_id, points in await _POINTS_BY_ADVOCATES.fetch(
            session, ids_params(set(advocate_ids))
        ):
            result[advocate_id] = int(points)
    return result


async def badges_for_advocates(
    session: AsyncSession, advocate_ids: Sequence[int]
) -> dict[int, list[AdvocateBadge]]:
    result: dict[int, list[AdvocateBadge]] = {pk: [] for pk in advocate_ids}
    if advocate_ids:
        rows = await session.scalars(
            select(AdvocateBadge)
            .where(AdvocateBadge.advocate_id.in_(set(advocate_ids)))
            .order_by(AdvocateBadge.awarded_at, AdvocateBadge.badge)
        )
        for badge in rows:
            result[badge.advocate_id].append(badge)
    return result
