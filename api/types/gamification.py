"""GraphQL types for points, badges, levels and the leaderboard, with loaders for points and
badges per advocate."""

from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from vouch.advocacy.gamification import LeaderRow, Level, Standing, badge_info
from vouch.api.ids import encode_id
from vouch.models import AdvocateBadge


@strawberry.type(name="Badge", description="A milestone an advocate reached.")
class BadgeType:
    code: str = strawberry.field(description="Stable code, e.g. first_review, connector.")
    name: str = strawberry.field(description="Display name.")
    description: str = strawberry.field(description="What earned it.")
    awarded_at: datetime = strawberry.field(description="When it was earned.")

    @classmethod
    def from_model(cls, m: AdvocateBadge) -> Self:
        info = badge_info(m.badge)
        return cls(
            code=m.badge, name=info.name, description=info.description, awarded_at=m.awarded_at
        )


@strawberry.type(name="Level", description="Where an advocate's points put them.")
class LevelType:
    number: int = strawberry.field(description="1 for the first level.")
    name: str = strawberry.field(description="Level name.")
    min_points: int = strawberry.field(description="Points this level starts at.")
    next_name: str | None = strawberry.field(description="The next level, if any.")
    next_at: int | None = strawberry.field(description="Points the next level starts at.")

    @classmethod
    def from_domain(cls, lv: Level) -> Self:
        return cls(
            number=lv.number,
            name=lv.name,
            min_points=lv.min_points,
            next_name=lv.next_name,
            next_at=lv.next_at,
        )


@strawberry.type(description="An advocate's points, level and badges.")
class AdvocateStanding:
    advocate_id: strawberry.ID = strawberry.field(description="The advocate.")
    points: int = strawberry.field(description="Points earned (in the program, if given).")
    level: LevelType = strawberry.field(description="The level those points reach.")
    badges: list[BadgeType] = strawberry.field(description="Badges earned, oldest first.")

    @classmethod
    def from_domain(cls, s: Standing) -> Self:
        return cls(
            advocate_id=strawberry.ID(encode_id("Advocate", s.advocate_id)),
            points=s.points,
            level=LevelType.from_domain(s.level),
            badges=[BadgeType.from_model(b) for b in s.badges],
        )


@strawberry.type(description="One place on a leaderboard.")
class LeaderboardEntry:
    rank: int = strawberry.field(description="1 is top; equal points share a rank.")
    advocate_id: strawberry.ID | None = strawberry.field(
        description="The advocate; null for others' entries when read with a widget token."
    )
    display_name: str = strawberry.field(description="First name and last initial.")
    points: int = strawberry.field(description="Points earned in the period.")
    is_you: bool = strawberry.field(description="This entry is the widget token's advocate.")

    @classmethod
    def from_domain(cls, r: LeaderRow, *, viewer: int | None, widget: bool) -> Self:
        mine = viewer == r.advocate_id
        return cls(
            rank=r.rank,
            advocate_id=(
                strawberry.ID(encode_id("Advocate", r.advocate_id)) if mine or not widget else None
            ),
            display_name=r.display_name,
            points=r.points,
            is_you=mine,
        )
