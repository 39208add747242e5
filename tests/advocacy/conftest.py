"""Shared helpers for advocacy tests: a fixed clock and a signal factory."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vouch.models import Signal

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
_opp_seq = itertools.count(1)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


async def make_signal(
    session: AsyncSession,
    advocate_id: int,
    kind: str,
    value: float | None = None,
    *,
    at: datetime | None = None,
    **overrides: Any,
) -> Signal:
    signal = Signal(
        advocate_id=advocate_id,
        kind=kind,
        value=value,
        occurred_at=at or NOW,
        source=overrides.pop("source", "test"),
        **overrides,
    )
    session.add(signal)
    await session.flush()
    return signal


async def make_opportunity(session: AsyncSession, **overrides: Any) -> Any:
    from vouch.models import Opportunity

    values: dict[str, Any] = {
        "crm_id": f"opp-{next(_opp_seq)}",
        "stage": "discovery",
        "amount_minor": 1_000_000,
        "currency": "USD",
        "status": "open",
        "name": "Big deal",
    }
    values.update(overrides)
    opp = Opportunity(**values)
    session.add(opp)
    await session.flush()
    return opp


async def make_scored(
    session: AsyncSession, advocate_id: int, program_id: int, tier: int | None, score: float = 50.0
) -> None:
    """Give an advocate a stored score and tier in a program (what a recompute would write)."""
    from vouch.models import Advocate, AdvocateScore

    session.add(
        AdvocateScore(
            advocate_id=advocate_id,
            program_id=program_id,
            score=score,
            tier=tier,
            contributions=[],
            computed_at=NOW,
        )
    )
    advocate = await session.get(Advocate, advocate_id)
    assert advocate is not None
    advocate.tier = tier
    advocate.score = score
    await session.flush()
