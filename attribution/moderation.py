"""The moderation queue: flagged referrals wait here; a person approves or rejects them.

While a referral waits its rewards stay pending (``rewards.approve_reward`` refuses them).
Approving clears the way (and auto-approves rewards where the program says so); rejecting moves
the referral to ``rejected`` and voids its unfulfilled rewards. Both leave an audit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution import lifecycle, rewards, webhooks
from vouch.core.errors import Conflict, ValidationFailed
from vouch.core.paging import Page, paginate
from vouch.models import Program, Referral, ReferralEvent, Reward
from vouch.models.enums import ModerationState, RewardState


async def flag_referral(
    session: AsyncSession, referral: Referral, flags: list[str], *, now: datetime
) -> Referral:
    """Store fraud flags on a referral and queue it for moderation (no-op without flags)."""
    if not flags:
        return referral
    referral.flags = sorted(set(referral.flags or []) | set(flags))
    if referral.moderation in (ModerationState.CLEAR, ModerationState.APPROVED):
        referral.moderation = ModerationState.PENDING
    referral.updated_at = now
    await session.flush()
    return referral


async def moderation_queue(
    session: AsyncSession,
    *,
    program_id: int | None,
    first: int,
    after: int | None,
    before: int | None = None,
    from_end: bool = False,
) -> Page[Referral]:
    """Referrals waiting for a decision, oldest first."""
    stmt = select(Referral).where(Referral.moderation == ModerationState.PENDING)
    if program_id is not None:
        stmt = stmt.where(Referral.program_id == program_id)
    return await paginate(
        session, stmt, key=Referral.id, first=first, after=after, before=before, from_end=from_end
    )


@dataclass(frozen=True, slots=True)
class ModerationResult:
    referral: Referral
    changed: bool


async def moderate_referral(
    session: AsyncSession,
    referral_id: int,
    *,
    approve: bool,
    reason: str,
    actor: str,
    now: datetime,
) -> ModerationResult:
    """Approve or reject a flagged referral, with a reason. Repeating a decision is a no-op."""
    reason = reason.strip()
    if not reason or len(reason) > 1000:
        raise ValidationFailed("a reason of 1 to 1000 characters is required", field="reason")
    referral = await lifecycle.lock_referral(session, referral_id)
    target = ModerationState.APPROVED if approve else ModerationState.REJECTED
    if referral.moderation == target:
        return ModerationResult(referral=referral, changed=False)
    if referral.moderation != ModerationState.PENDING:
        raise Conflict(
            f"this referral is not awaiting moderation (it is {referral.moderation})",
            field="referralId",
        )
    referral.moderation = target
    referral.moderation_reason = reason
    referral.updated_at = now
    session.add(
        ReferralEvent(
            referral_id=referral.id,
            from_status=referral.status,
            to_status=referral.status,
            at=now,
            source=lifecycle.MODERATION_SOURCE,
            actor=actor,
            detail={"moderation": target.value, "reason": reason, "flags": list(referral.flags)},
        )
    )
    await session.flush()
    await webhooks.enqueue(
        session,
        "referral.moderated",
        lifecycle.referral_payload(referral) | {"reason": reason},
        now=now,
    )
    if approve:
        program = await session.get(Program, referral.program_id)
        if program is not None and program.settings.get("auto_approve_rewards"):
            # Rewards still in their holding period wait for ``rewards.release_due_rewards``.
            pending = await session.scalars(
                select(Reward.id)
                .where(
                    Reward.referral_id == referral.id,
                    Reward.state == RewardState.PENDING,
                    or_(Reward.held_until.is_(None), Reward.held_until <= now),
                )
                .order_by(Reward.id)
            )
            for reward_id in list(pending):
                await rewards.approve_reward(
                    session, reward_id, actor=actor, reason="referral approved", now=now
                )
    else:
        await lifecycle.transition(
            session,
            referral.id,
            "rejected",
            source=lifecycle.MODERATION_SOURCE,
            actor=actor,
            now=now,
            detail={"reason": reason},
        )
    return ModerationResult(referral=referral, changed=True)
