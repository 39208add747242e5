"""Fulfilling rewards, pluggable by kind: credit and status complete at once, points go to the
advocate's ledger, discount codes are generated, cash, gift cards and donations are requested
from an external system that reports back with its reference. Split from
``attribution.rewards`` (earning and state changes), whose ``_move`` it uses."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution import webhooks
from vouch.attribution.rewards import _locked_reward, _move, reward_payload, sync_points_badge
from vouch.core.errors import Conflict, InvalidTransition, ValidationFailed
from vouch.models import PointsEntry, Reward, RewardEntry
from vouch.models.enums import RewardKind, RewardState


@dataclass(frozen=True, slots=True)
class Fulfilment:
    """``completed`` False means the fulfilment was requested from an external system, which
    reports back through ``fulfil_reward(..., fulfilment_ref=...)``."""

    completed: bool
    ref: str | None


class Fulfiller(Protocol):
    async def __call__(self, session: AsyncSession, reward: Reward, *, now: datetime) -> Fulfilment:
        """Deliver the reward or request its delivery."""


async def _fulfil_credit(session: AsyncSession, reward: Reward, *, now: datetime) -> Fulfilment:
    # Account credit: the fulfilled reward row *is* the credit; the balance is a sum.
    return Fulfilment(completed=True, ref=f"credit:{reward.id}")


async def _fulfil_points(session: AsyncSession, reward: Reward, *, now: datetime) -> Fulfilment:
    if reward.advocate_id is None:
        raise Conflict("points can only be given to an advocate", field="rewardId")
    await session.execute(
        insert(PointsEntry)
        .values(
            advocate_id=reward.advocate_id,
            program_id=reward.program_id,
            points=reward.points,
            reason="referral_reward",
            ref=f"reward:{reward.id}",
            at=now,
        )
        .on_conflict_do_nothing(index_elements=["advocate_id", "reason", "ref"])
    )
    await sync_points_badge(session, reward.advocate_id, now=now)
    return Fulfilment(completed=True, ref=f"points:reward:{reward.id}")


async def _fulfil_code(session: AsyncSession, reward: Reward, *, now: datetime) -> Fulfilment:
    return Fulfilment(completed=True, ref="code:" + secrets.token_urlsafe(9).upper())


async def _fulfil_external(session: AsyncSession, reward: Reward, *, now: datetime) -> Fulfilment:
    """Cash, gift cards and donations are paid by another system, asked by webhook."""
    await webhooks.enqueue(session, "reward.fulfilment_requested", reward_payload(reward), now=now)
    return Fulfilment(completed=False, ref=None)


async def _fulfil_status(session: AsyncSession, reward: Reward, *, now: datetime) -> Fulfilment:
    return Fulfilment(completed=True, ref=f"status:{reward.id}")


FULFILLERS: dict[str, Fulfiller] = {
    RewardKind.CREDIT: _fulfil_credit,
    RewardKind.POINTS: _fulfil_points,
    RewardKind.DISCOUNT_CODE: _fulfil_code,
    RewardKind.CASH: _fulfil_external,
    RewardKind.GIFT_CARD: _fulfil_external,
    RewardKind.DONATION: _fulfil_external,
    RewardKind.STATUS: _fulfil_status,
}


async def fulfil_reward(
    session: AsyncSession,
    reward_id: int,
    *,
    actor: str,
    now: datetime,
    fulfilment_ref: str | None = None,
) -> tuple[Reward, bool]:
    """Fulfil an approved reward through its kind's fulfiller.

    With ``fulfilment_ref`` this is the external system reporting that it paid: the reward is
    marked fulfilled with that reference. Returns the reward and whether it is now fulfilled
    (False when the fulfilment was only requested).
    """
    if fulfilment_ref is not None:
        fulfilment_ref = fulfilment_ref.strip()
        if not fulfilment_ref or len(fulfilment_ref) > 200:
            raise ValidationFailed(
                "fulfilment reference must be 1 to 200 characters", field="fulfilmentRef"
            )
    reward = await _locked_reward(session, reward_id)
    if reward.state == RewardState.FULFILLED:
        # The same report replays; another payout of a paid reward is never silently dropped.
        recorded = await session.scalar(
            select(RewardEntry.fulfilment_ref).where(
                RewardEntry.reward_id == reward.id, RewardEntry.state == RewardState.FULFILLED
            )
        )
        if fulfilment_ref is not None and fulfilment_ref != recorded:
            raise Conflict(
                f"this reward was already fulfilled with reference '{recorded}'",
                field="fulfilmentRef",
            )
        return reward, True
    if reward.state != RewardState.APPROVED:
        raise InvalidTransition(
            f"only approved rewards can be fulfilled; this one is {reward.state}",
            field="rewardId",
        )
    if fulfilment_ref is None:
        outcome = await FULFILLERS[reward.kind](session, reward, now=now)
        if not outcome.completed:
            return reward, False
        fulfilment_ref = outcome.ref
    await _move(
        session,
        reward,
        RewardState.FULFILLED,
        actor=actor,
        reason=None,
        now=now,
        fulfilment_ref=fulfilment_ref,
    )
    return reward, True
