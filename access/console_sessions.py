"""Console sessions, kept server-side: the cookie is a random token, the row is the session.

A session ends at logout (the row is deleted), after ``idle`` without a request, at its
absolute expiry, or when its API key is revoked (the row must join a live key). A copied cookie
is therefore worth nothing once any of these happened. ``last_seen_at`` is written at most once
per ``TOUCH_GRANULARITY`` so that browsing the console does not write on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.models import ApiKey, ConsoleSession

TOUCH_GRANULARITY = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class LiveSession:
    token: str
    api_key_id: int
    key_name: str
    scopes: frozenset[str]
    csrf: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_session(
    session: AsyncSession,
    key: ApiKey,
    *,
    now: datetime,
    lifetime: timedelta,
    idle: timedelta,
) -> LiveSession:
    """A new session for a signed-in key; ended sessions of every key are pruned."""
    await session.execute(
        delete(ConsoleSession).where(
            or_(ConsoleSession.expires_at <= now, ConsoleSession.last_seen_at <= now - idle)
        )
    )
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    session.add(
        ConsoleSession(
            token_hash=_hash(token),
            api_key_id=key.id,
            csrf=csrf,
            last_seen_at=now,
            expires_at=now + lifetime,
        )
    )
    await session.flush()
    return LiveSession(token, key.id, key.name, frozenset(key.scopes), csrf)


async def resume_session(
    session: AsyncSession, token: str, *, now: datetime, idle: timedelta
) -> LiveSession | None:
    """The live session this cookie token names, its idle clock restarted; None when it ended."""
    if not token or len(token) > 100:
        return None
    token_hash = _hash(token)
    row = (
        await session.execute(
            select(ConsoleSession, ApiKey)
            .join(ApiKey, ApiKey.id == ConsoleSession.api_key_id)
            .where(
                ConsoleSession.token_hash == token_hash,
                ConsoleSession.expires_at > now,
                ConsoleSession.last_seen_at > now - idle,
                ApiKey.revoked_at.is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    console_session, key = row
    if now - console_session.last_seen_at >= TOUCH_GRANULARITY:
        await session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.token_hash == token_hash)
            .values(last_seen_at=now)
        )
    return LiveSession(token, key.id, key.name, frozenset(key.scopes), console_session.csrf)


async def end_session(session: AsyncSession, token: str) -> bool:
    """Log out: the session is deleted (True if there was one)."""
    result = await session.execute(
        delete(ConsoleSession).where(ConsoleSession.token_hash == _hash(token[:100]))
    )
    return bool(getattr(result, "rowcount", 0))
