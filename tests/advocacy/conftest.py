"""Shared helpers for advocacy tests: a fixed clock and a signal factory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models import Signal

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


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
