"""Time is UTC and timezone-aware everywhere; tests may freeze it."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
