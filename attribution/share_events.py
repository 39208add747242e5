"""The advocate's share flow: which link they share, live counts, and what they did with it.

Share events feed the referral discussion initiation, share rate and personalised outreach
KPIs, so they are recorded as facts (kind, channel, time), never as counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution import click_counts
from vouch.attribution.definitions import is_referral
from vouch.core.errors import NotFound, ValidationFailed
from vouch.models import Advocate, Program, Referral, ReferralLink, Reward, ShareEvent
from vouch.models.enums import LinkStatus, ProgramStatus, RewardSide, RewardState, ShareEventKind

SHARE_CHANNELS = ("email", "linkedin", "x", "whatsapp", "sms")
# Events the share page's script may report. page_opened and qr_shown carry no channel.
_CHANNEL_EVENTS = frozenset({ShareEventKind.CHANNEL_CHOSEN, ShareEventKind.MESSAGE_EDITED})


@dataclass(frozen=True, slots=True)
class ShareTarget:
    """The advocate and the link their share page shows."""

    advocate: Advocate
    link: ReferralLink | None
    program: Program | None


@dataclass(frozen=True, slots=True)
class ShareStats:
    clicks: int
    friends_joined: int
    rewards_earned: int
    rewards_amount_minor: int
    currency: str


async def share_target(
    session: AsyncSession, advocate_id: int, *, program_slug: str | None = None
) -> ShareTarget:
    """The advocate's link to share: the ``direct`` link of the chosen (or first) active
    program, else their first active link there. ``link`` is ``None`` if they have none."""
    advocate = await session.get(Advocate, advocate_id)
    if advocate is None or advocate.erased_at is not None:
        raise NotFound("no such advocate", field="token")
    stmt = (
        select(ReferralLink, Program)
        .join(Program, Program.id == ReferralLink.program_id)
        .where(
            ReferralLink.advocate_id == advocate_id,
            ReferralLink.status == LinkStatus.ACTIVE,
            ReferralLink.code.is_not(None),
            Program.status == ProgramStatus.ACTIVE,
        )
        .order_by(Program.id, (ReferralLink.channel != "direct"), ReferralLink.id)
        .limit(1)
    )
    if program_slug:
        stmt = stmt.where(Program.slug == program_slug)
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        return ShareTarget(advocate=advocate, link=None, program=None)
    return ShareTarget(advocate=advocate, link=row[0], program=row[1])


async def share_stats(session: AsyncSession, *, advocate_id: int, program: Program) -> ShareStats:
    """Live counts for the share page: human clicks, friends who joined, rewards earned."""
    clicks = await session.scalar(
        select(
            click_counts.human_clicks(
                program_id=program.id,
                link_ids=select(ReferralLink.id).where(ReferralLink.advocate_id == advocate_id),
            )
        )
    )
    friends = await session.scalar(
        select(func.count(Referral.id)).where(
            Referral.advocate_id == advocate_id, Referral.program_id == program.id, is_referral()
        )
    )
    rewards = (
        await session.execute(
            select(func.count(Reward.id), func.coalesce(func.sum(Reward.amount_minor), 0)).where(
                Reward.advocate_id == advocate_id,
                Reward.program_id == program.id,
                Reward.side == RewardSide.REFERRER,
                Reward.state.in_([RewardState.APPROVED, RewardState.FULFILLED]),
                Reward.currency == program.currency,
            )
        )
    ).one()
    return ShareStats(
        clicks=int(clicks or 0),
        friends_joined=int(friends or 0),
        rewards_earned=int(rewards[0]),
        rewards_amount_minor=int(rewards[1]),
        currency=program.currency,
    )


def validate_share_event(kind: object, channel: object) -> tuple[ShareEventKind, str | None]:
    """The event kind and channel as reported by the share page's script."""
    if not isinstance(kind, str):
        raise ValidationFailed("kind is required", field="kind")
    try:
        event_kind = ShareEventKind(kind)
    except ValueError:
        raise ValidationFailed("unknown share event kind", field="kind") from None
    if event_kind in _CHANNEL_EVENTS:
        if not isinstance(channel, str) or channel not in SHARE_CHANNELS:
            raise ValidationFailed("unknown share channel", field="channel")
        return event_kind, channel
    if channel is not None:
        raise ValidationFailed(f"{event_kind.value} takes no channel", field="channel")
    return event_kind, None


async def record_share_event(
    session: AsyncSession,
    *,
    target: ShareTarget,
    kind: ShareEventKind,
    channel: str | None,
    now: datetime,
) -> ShareEvent:
    """Append one share event for the advocate's shared link. Flushes, never commits."""
    if target.link is None or target.program is None:
        raise NotFound("this advocate has no link to share", field="token")
    event = ShareEvent(
        advocate_id=target.advocate.id,
        program_id=target.program.id,
        link_id=target.link.id,
        kind=kind,
        channel=channel,
        at=now,
    )
    session.add(event)
    await session.flush()
    return event
