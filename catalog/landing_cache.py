"""Telling every worker that a landing page changed: the link cache's invalidation channel."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.widget_cache import forget_on_commit

INVALIDATION_CHANNEL = "vouch_landing"


async def announce_landing_change(session: AsyncSession, code: str | None = None) -> None:
    """Tell every worker's resolver to forget ``code`` (or everything) once this transaction
    commits: PostgreSQL delivers NOTIFY on commit and drops it on rollback."""
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": INVALIDATION_CHANNEL, "payload": code or "*"},
    )
    # What widgets show changes with it (their links, the program): every worker drops its
    # kept widget answers too (web.invalidation does it for the others).
    forget_on_commit(session)
