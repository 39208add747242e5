"""What an advocate's widget shows on every load, in one statement (it was five): the advocate,
its links with their stats, how many people it referred, its points, its rewards and its open
asks (from which the next ask is picked)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy.ask_reads import IS_OPEN
from vouch.advocacy.experiments import ReferralPrompt, prompt_holdout_json, prompt_withheld_by
from vouch.attribution.definitions import is_referral
from vouch.attribution.links import AdvocateLinks, advocate_links_statement, advocate_with_links
from vouch.core.batching import NESTED_LIST_MAX
from vouch.core.raw_select import RawSelect
from vouch.core.snapshot import snapshots_from_json
from vouch.models import Ask, PointsEntry, Referral, Reward
from vouch.models.snapshots import AskSnapshot, RewardSnapshot

ADVOCATE: Any = bindparam("advocate_id")


def _rows_as_json(model: Any, *where: ColumnElement[bool], newest: int | None = None) -> Any:
    """The model's whole rows matching ``where`` (the ``newest`` most recent ones, if given),
    oldest first, as one JSON array."""
    table = model.__table__
    if newest is not None:
        recent = select(table).where(*where).order_by(table.c.id.desc()).limit(newest).subquery()
        rows = func.json_agg(aggregate_order_by(recent.table_valued(), recent.c.id))
        return select(func.coalesce(rows, literal_column("'[]'::json"))).scalar_subquery()
    rows = func.json_agg(aggregate_order_by(table.table_valued(), table.c.id))
    return select(func.coalesce(rows, literal_column("'[]'::json"))).where(*where).scalar_subquery()


# The extra columns are bound to the parameter, not correlated with the outer row: each is
# evaluated once, not once per link row. They give what the loaders give (tested).
_WIDGET = RawSelect(
    advocate_links_statement(
        select(func.count())
        .where(Referral.advocate_id == ADVOCATE, is_referral())
        .scalar_subquery(),
        select(func.coalesce(func.sum(PointsEntry.points), 0))
        .where(PointsEntry.advocate_id == ADVOCATE)
        .scalar_subquery(),
        _rows_as_json(Reward, Reward.advocate_id == ADVOCATE, newest=NESTED_LIST_MAX),
        _rows_as_json(Ask, Ask.advocate_id == ADVOCATE, IS_OPEN),
        prompt_holdout_json(ADVOCATE),
    )
)


@dataclass(frozen=True, slots=True)
class WidgetView:
    found: AdvocateLinks
    referral_count: int
    points: int
    rewards: list[RewardSnapshot]  # oldest first
    open_asks: list[AskSnapshot]  # ``advocacy.ask_policy.pick_next`` picks the next
    referral_prompt: ReferralPrompt  # shown, or withheld by an experiment's holdout


async def widget_view(session: AsyncSession, advocate_id: int) -> WidgetView:
    found = await advocate_with_links(session, advocate_id, _WIDGET)
    referral_count, points, rewards, open_asks, holdout = found.extra
    withheld_by = json.loads(holdout) if isinstance(holdout, str) else holdout
    return WidgetView(
        found,
        int(referral_count),
        int(points),
        snapshots_from_json(Reward, rewards),
        snapshots_from_json(Ask, open_asks),
        prompt_withheld_by(*(withheld_by or (None, None))),
    )
