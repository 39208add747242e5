"""Business totals for ``/metrics``, read from the tables at scrape time (so every worker and
every scrape agree, whichever worker answers). Definitions are in docs/OPERATIONS.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.models import Conversion, OfferRedemption, Referral, Reward, WebhookDelivery


@dataclass(frozen=True, slots=True)
class BusinessCounts:
    referrals: dict[str, int]  # by status
    offer_claims: dict[str, int]  # issued (every claim), redeemed
    conversions: dict[str, int]  # by kind
    rewards: dict[str, int]  # by state
    deliveries: dict[str, int]  # by status: pending, delivered, dead (the dead letters)


def _grouped(family: str, column: Any, model: Any) -> Select[Any]:
    return select(literal(family), column, func.count()).select_from(model).group_by(column)


async def business_counts(session: AsyncSession) -> BusinessCounts:
    """Every total in one statement."""
    stmt: Any = union_all(
        _grouped("referrals", Referral.status, Referral),
        _grouped("conversions", Conversion.kind, Conversion),
        _grouped("rewards", Reward.state, Reward),
        _grouped("deliveries", WebhookDelivery.status, WebhookDelivery),
        select(literal("offer_claims"), literal("issued"), func.count()).select_from(
            OfferRedemption
        ),
        select(literal("offer_claims"), literal("redeemed"), func.count()).where(
            OfferRedemption.redeemed_at.is_not(None)
        ),
    )
    out: dict[str, dict[str, int]] = {
        name: {} for name in ("referrals", "offer_claims", "conversions", "rewards", "deliveries")
    }
    for family, key, count in (await session.execute(stmt)).all():
        out[family][str(key)] = int(count)
    return BusinessCounts(**out)
