"""A program's advocacy settings (``Program.settings``): scoring, tiers, moments, points and
levels. Each part is validated by the module that uses it before anything is stored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy import gamification, moments, scoring, tiers
from vouch.core.errors import NotFound, ValidationFailed
from vouch.models import Program

PARTS = ("scoring", "tiers", "moments", "points", "levels")


def _validate(part: str, value: Any) -> None:
    if part == "scoring":
        scoring.parse_scoring(value)
    elif part == "tiers":
        tiers.parse_tiers(value)
    elif part == "moments":
        moments.parse_moments(value)
    elif part == "points":
        gamification.parse_points(value)
    else:
        gamification.parse_levels(value)


async def configure_advocacy(
    session: AsyncSession, program_id: int, changes: Mapping[str, Any]
) -> Program:
    """Replace parts of the program's advocacy settings. A part set to null (or empty) goes
    back to the defaults; parts not named stay as they are."""
    unknown = sorted(set(changes) - set(PARTS))
    if unknown:
        raise ValidationFailed(
            f"unknown setting(s): {', '.join(unknown)}; use {', '.join(PARTS)}", field="settings"
        )
    if not changes:
        raise ValidationFailed("name at least one setting to change", field="settings")
    for part, value in changes.items():
        if value:
            _validate(part, value)
    program = await session.get(Program, program_id)
    if program is None:
        raise NotFound("no such program", field="programId")
    settings = dict(program.settings or {})
    for part, value in changes.items():
        if value:
            settings[part] = value
        else:
            settings.pop(part, None)
    program.settings = settings
    await session.flush()
    return program


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    scoring: dict[str, Any]
    tiers: dict[str, Any]
    moments: dict[str, Any]
    points: dict[str, int]
    levels: list[dict[str, Any]]


def effective_settings(program: Program) -> EffectiveSettings:
    """The settings in force: the program's own over the defaults."""
    raw = program.settings or {}
    return EffectiveSettings(
        scoring=scoring.parse_scoring(raw.get("scoring")).as_dict(),
        tiers=tiers.parse_tiers(raw.get("tiers")).as_dict(),
        moments=moments.parse_moments(raw.get("moments")).as_dict(),
        points=gamification.parse_points(raw.get("points")),
        levels=[
            {"name": name, "min_points": low}
            for low, name in gamification.parse_levels(raw.get("levels"))
        ],
    )
