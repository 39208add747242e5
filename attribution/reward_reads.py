"""Reading rewards: filtered pages, totals, one reward, their history lines, and the batched
reads the API's loaders use. Split from ``attribution.rewards`` (earning and state changes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.batching import NESTED_LIST_MAX, SnapshotsBy
from vouch.core.errors import NotFound, ValidationFailed
from vouch.core.paging import Page, paginate
from vouch.models import Reward, RewardEntry
from vouch.models.enums import RewardState
from vouch.models.snapshots import RewardSnapshot


@dataclass(frozen=True, slots=True)
class RewardFilter:
    state: str | None = None
    advocate_id: int | None = None
    program_id: int | None = None
    referral_id: int | None = None


def _filtered(stmt: Any, f: RewardFilter) -> Any:
    if f.state is not None:
        if f.state not in {s.value for s in RewardState}:
            raise ValidationFailed(
                "state must be pending, approved, fulfilled or voided", field="filter.state"
            )
        stmt = stmt.where(Reward.state == f.state)
    if f.advocate_id is not None:
        stmt = stmt.where(Reward.advocate_id == f.advocate_id)
    if f.program_id is not None:
        stmt = stmt.where(Reward.program_id == f.program_id)
    if f.referral_id is not None:
        stmt = stmt.where(Reward.referral_id == f.referral_id)
    return stmt


async def get_reward(session: AsyncSession, reward_id: int) -> Reward:
    reward = await session.get(Reward, reward_id)
    if reward is None:
        raise NotFound("no such reward", field="id")
    return reward


async def list_rewards(
    session: AsyncSession,
    f: RewardFilter,
    *,
    first: int,
    after: int | None,
    before: int | None = None,
    from_end: bool = False,
) -> Page[Reward]:
    """Rewards, newest first."""
    return await paginate(
        session,
        _filtered(select(Reward), f),
        key=Reward.id,
        first=first,
        after=after,
        before=before,
        from_end=from_end,
        descending=True,
    )


@dataclass(frozen=True, slots=True)
class RewardTotal:
    state: str
    currency: str
    count: int
    amount_minor: int
    points: int


async def reward_totals(session: AsyncSession, f: RewardFilter) -> list[RewardTotal]:
    """Sums per state and currency over the filtered rewards (amounts never mix currencies)."""
    stmt = _filtered(
        select(
            Reward.state,
            Reward.currency,
            func.count(),
            func.coalesce(func.sum(Reward.amount_minor), 0),
            func.coalesce(func.sum(Reward.points), 0),
        ).group_by(Reward.state, Reward.currency),
        f,
    ).order_by(Reward.state, Reward.currency)
    return [
        RewardTotal(state=s, currency=c, count=int(n), amount_minor=int(a), points=int(p))
        for s, c, n, a, p in (await session.execute(stmt)).all()
    ]


async def entries_by_reward(session: AsyncSession, ids: list[int]) -> dict[int, list[RewardEntry]]:
    rows = await session.scalars(
        select(RewardEntry).where(RewardEntry.reward_id.in_(ids)).order_by(RewardEntry.id)
    )
    out: dict[int, list[RewardEntry]] = {i: [] for i in ids}
    for row in rows:
        out[row.reward_id].append(row)
    return out


_REWARDS_BY_ADVOCATES = SnapshotsBy(Reward, "advocate_id", newest=NESTED_LIST_MAX)
_REWARDS_BY_REFERRALS = SnapshotsBy(Reward, "referral_id")


async def rewards_by_advocates(
    session: AsyncSession, ids: list[int]
) -> dict[int, list[RewardSnapshot]]:
    """Each advocate's ``NESTED_LIST_MAX`` most recent rewards, oldest first, as read-only
    snapshots (the widget shows them)."""
    return await _REWARDS_BY_ADVOCATES.fetch(session, ids)


async def rewards_by_referrals(
    session: AsyncSession, ids: list[int]
) -> dict[int, list[RewardSnapshot]]:
    """Both sides' rewards of each referral, oldest first, as read-only snapshots (a page of
    referrals with their rewards nested reads them all at once)."""
    return await _REWARDS_BY_REFERRALS.fetch(session, ids)
