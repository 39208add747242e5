"""Advocacy actions (a review written, a case study published, a reference given, a talk) and
the opportunities they touched, which is what advocacy-influenced revenue is reported from.

Recording an action earns its points (once) and any badges. An action sent with an external id
is idempotent by (advocate, external id).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy.gamification import award_for_action
from vouch.advocacy.signals import FUTURE_TOLERANCE, check_data, check_external_id
from vouch.core.choices import parse_choice
from vouch.core.errors import NotFound, ValidationFailed
from vouch.models import ActionOpportunity, AdvocacyAction, Advocate, Opportunity, Program
from vouch.models.enums import ActionKind

MAX_OPPORTUNITIES = 50


@dataclass(frozen=True, slots=True)
class RecordedAction:
    action: AdvocacyAction
    created: bool
    points: int


def parse_action_kind(value: str, *, field: str = "kind") -> ActionKind:
    return parse_choice(ActionKind, value, field=field, what="action kind")


def check_url(value: str | None, *, field: str = "url") -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > 2048 or not value.startswith(("https://", "http://")):
        raise ValidationFailed("url must be an http(s) URL of at most 2048 characters", field=field)
    return value


async def link_opportunities(
    session: AsyncSession, action_id: int, opportunity_ids: Sequence[int]
) -> None:
    if opportunity_ids:
        await session.execute(
            insert(ActionOpportunity)
            .values([{"action_id": action_id, "opportunity_id": o} for o in set(opportunity_ids)])
            .on_conflict_do_nothing()
        )


async def check_opportunities(
    session: AsyncSession, opportunity_ids: Sequence[int], *, field: str = "opportunityIds"
) -> list[int]:
    wanted = sorted(set(opportunity_ids))
    if len(wanted) > MAX_OPPORTUNITIES:
        raise ValidationFailed(f"at most {MAX_OPPORTUNITIES} opportunities", field=field)
    if wanted:
        found = set(await session.scalars(select(Opportunity.id).where(Opportunity.id.in_(wanted))))
        missing = [o for o in wanted if o not in found]
        if missing:
            raise NotFound("no such opportunity", field=field)
    return wanted


async def create_action(
    session: AsyncSession,
    *,
    advocate_id: int,
    program: Program | None,
    kind: ActionKind,
    occurred_at: datetime,
    ask_id: int | None = None,
    url: str | None = None,
    external_id: str | None = None,
    opportunity_ids: Sequence[int] = (),
    data: Mapping[str, Any] | None = None,
) -> RecordedAction:
    """Write an action (arguments already validated), link it, award its points."""
    values = {
        "advocate_id": advocate_id,
        "program_id": program.id if program else None,
        "ask_id": ask_id,
        "kind": kind.value,
        "occurred_at": occurred_at,
        "url": url,
        "external_id": external_id,
        "data": dict(data or {}),
    }
    stmt = insert(AdvocacyAction).values(**values)
    if external_id is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["advocate_id", "external_id"])
    new_id = await session.scalar(stmt.returning(AdvocacyAction.id))
    if new_id is None:
        existing = await session.scalar(
            select(AdvocacyAction).where(
                AdvocacyAction.advocate_id == advocate_id,
                AdvocacyAction.external_id == external_id,
            )
        )
        assert existing is not None
        return RecordedAction(existing, created=False, points=0)
    action = await session.get_one(AdvocacyAction, new_id)
    await link_opportunities(session, action.id, opportunity_ids)
    points = await award_for_action(session, action, program)
    return RecordedAction(action, created=True, points=points)


async def record_action(
    session: AsyncSession,
    *,
    advocate_id: int,
    program_id: int | None,
    kind: str,
    occurred_at: datetime,
    now: datetime,
    url: str | None = None,
    external_id: str | None = None,
    opportunity_ids: Sequence[int] = (),
    data: Mapping[str, Any] | None = None,
) -> RecordedAction:
    """Record an action that happened outside an ask (a talk, an organic review)."""
    parsed = parse_action_kind(kind)
    if occurred_at.tzinfo is None:
        raise ValidationFailed("occurredAt needs a timezone", field="occurredAt")
    if occurred_at > now + FUTURE_TOLERANCE:
        raise ValidationFailed("occurredAt is in the future", field="occurredAt")
    checked_url = check_url(url)
    checked_external = check_external_id(external_id)
    checked_data = check_data(data)
    advocate = await session.get(Advocate, advocate_id)
    if advocate is None or advocate.erased_at is not None:
        raise NotFound("no such advocate", field="advocateId")
    program = None
    if program_id is not None:
        program = await session.get(Program, program_id)
        if program is None:
            raise NotFound("no such program", field="programId")
    opportunities = await check_opportunities(session, opportunity_ids)
    return await create_action(
        session,
        advocate_id=advocate_id,
        program=program,
        kind=parsed,
        occurred_at=occurred_at,
        url=checked_url,
        external_id=checked_external,
        opportunity_ids=opportunities,
        data=checked_data,
    )


async def opportunities_for_actions(
    session: AsyncSession, action_ids: Sequence[int]
) -> dict[int, list[int]]:
    result: dict[int, list[int]] = {pk: [] for pk in action_ids}
    if action_ids:
        rows = await session.execute(
            select(ActionOpportunity.action_id, ActionOpportunity.opportunity_id)
            .where(ActionOpportunity.action_id.in_(set(action_ids)))
            .order_by(ActionOpportunity.action_id, ActionOpportunity.opportunity_id)
        )
        for action_id, opportunity_id in rows:
            result[action_id].append(opportunity_id)
    return result
