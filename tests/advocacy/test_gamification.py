"""Points ledger, badges, levels and the leaderboard."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tests.advocacy.conftest import NOW, days_ago
from tests.factories import make_advocate, make_program
from vouch.advocacy.actions import record_action
from vouch.advocacy.gamification import (
    Period,
    leaderboard,
    level_for,
    parse_levels,
    parse_points,
    period_bounds,
    standing,
)
from vouch.core.errors import ValidationFailed
from vouch.models import AdvocateBadge


async def act(session, advocate, program, kind, at=NOW, ref=None):
    return await record_action(
        session,
        advocate_id=advocate.id,
        program_id=program.id,
        kind=kind,
        occurred_at=at,
        now=NOW,
        external_id=ref,
    )


async def test_points_per_program_config_and_badges(session):
    program = await make_program(session, settings={"points": {"review": 80}})
    person = await make_advocate(session)
    first = await act(session, person, program, "review")
    assert first.points == 80
    for i in range(4):
        await act(session, person, program, "referral", ref=f"ref-{i}")
    badges = (
        await session.scalars(
            select(AdvocateBadge.badge)
            .where(AdvocateBadge.advocate_id == person.id)
            .order_by(AdvocateBadge.badge)
        )
    ).all()
    assert badges == ["connector", "first_action", "first_review", "five_actions"]
    mine = await standing(session, person.id, program=program)
    assert (
        mine.points,
        mine.level.number,
        mine.level.name,
        mine.level.next_name,
        mine.level.next_at,
    ) == (
        380,
        2,
        "Contributor",
        "Advocate",
        500,
    )


async def test_thousand_points_badge(session):
    program = await make_program(session, settings={"points": {"case_study": 1000}})
    person = await make_advocate(session)
    await act(session, person, program, "case_study")
    badges = set((await session.scalars(select(AdvocateBadge.badge))).all())
    assert badges == {"first_action", "first_case_study", "points_1000"}


def test_levels():
    assert [level_for(p).name for p in (0, 99, 100, 499, 500, 1500, 99_999)] == [
        "Member",
        "Member",
        "Contributor",
        "Contributor",
        "Advocate",
        "Champion",
        "Legend",
    ]
    custom = parse_levels([{"name": "Rookie", "min_points": 0}, {"name": "Pro", "min_points": 10}])
    top = level_for(12, custom)
    assert (top.number, top.name, top.next_name, top.next_at) == (2, "Pro", None, None)


@pytest.mark.parametrize(
    ("fn", "raw", "field"),
    [
        (parse_points, {"review": -1}, "points.review"),
        (parse_points, {"hug": 5}, "points.hug"),
        (parse_levels, [{"name": "A", "min_points": 5}], "levels.0.min_points"),
        (
            parse_levels,
            [{"name": "A", "min_points": 0}, {"name": "B", "min_points": 0}],
            "levels.1.min_points",
        ),
        (parse_levels, [{"name": "A"}], "levels.0"),
    ],
)
def test_bad_gamification_settings(fn, raw, field):
    with pytest.raises(ValidationFailed) as exc:
        fn(raw)
    assert exc.value.field == field


def test_period_bounds():
    at = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)  # a Wednesday
    assert period_bounds(Period.WEEK, at) == (
        datetime(2026, 11, 16, tzinfo=UTC),
        datetime(2026, 11, 23, tzinfo=UTC),
    )
    assert period_bounds(Period.MONTH, at) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert period_bounds(Period.QUARTER, at) == (
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds(Period.YEAR, at) == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds(Period.ALL_TIME, at) == (None, None)


async def test_leaderboard_per_program_and_period_with_shared_ranks(session):
    program = await make_program(session)
    elsewhere = await make_program(session)
    ada, bob, cy, dee = [await make_advocate(session) for _ in range(4)]
    await act(session, ada, program, "case_study")  # 250 now
    await act(session, bob, program, "testimonial", ref="t1")  # 100 + 100 + 50 = 250
    await act(session, bob, program, "testimonial", ref="t2")
    await act(session, bob, program, "review")
    await act(session, cy, program, "review", at=days_ago(40))  # last month only
    await act(session, dee, elsewhere, "talk")  # another program
    month = await leaderboard(session, program.id, period=Period.MONTH, at=NOW)
    assert [(r.rank, r.advocate_id, r.points) for r in month] == [
        (1, ada.id, 250),
        (1, bob.id, 250),
    ]
    ever = await leaderboard(session, program.id, period=Period.ALL_TIME, at=NOW)
    assert [(r.rank, r.advocate_id, r.points) for r in ever] == [
        (1, ada.id, 250),
        (1, bob.id, 250),
        (3, cy.id, 50),
    ]
    with pytest.raises(ValidationFailed):
        await leaderboard(session, program.id, period=Period.MONTH, at=NOW, limit=500)
