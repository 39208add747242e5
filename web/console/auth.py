"""Console sign-in: an API key (read scope or better) is exchanged for a server-side session
(``access.console_sessions``) whose random token travels in an HttpOnly, SameSite=Strict cookie
scoped to ``/console``. Every form carries a CSRF token bound to the session. Logout deletes the
session; so do idle time (``VOUCH_CONSOLE_IDLE_TIMEOUT``), its absolute lifetime
(``VOUCH_CONSOLE_SESSION_TTL``) and the key's revocation, each on the next request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from vouch.access.api_keys import authenticate
from vouch.access.console_sessions import LiveSession, end_session, resume_session, start_session
from vouch.core.clock import utcnow
from vouch.core.security import constant_time_equals
from vouch.core.settings import Settings

COOKIE = "vouch_console"


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    key_id: int
    name: str
    scopes: frozenset[str]
    csrf: str
    token: str

    @property
    def can_moderate(self) -> bool:
        return "admin" in self.scopes or "write" in self.scopes

    @classmethod
    def of(cls, live: LiveSession) -> ConsoleUser:
        return cls(live.api_key_id, live.key_name, live.scopes, live.csrf, live.token)


async def sign_in(session: AsyncSession, plaintext: str, settings: Settings) -> ConsoleUser | None:
    key = await authenticate(session, plaintext.strip())
    if key is None:
        return None
    live = await start_session(
        session,
        key,
        now=utcnow(),
        lifetime=timedelta(seconds=settings.console_session_ttl_seconds),
        idle=timedelta(seconds=settings.console_idle_timeout_seconds),
    )
    return ConsoleUser.of(live)


def set_session_cookie(
    response: Response, user: ConsoleUser, *, settings: Settings, secure: bool
) -> None:
    response.set_cookie(
        COOKIE,
        user.token,
        max_age=settings.console_session_ttl_seconds,
        path="/console",
        httponly=True,
        secure=secure,
        samesite="strict",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/console")


async def current_user(
    request: Request, session: AsyncSession, settings: Settings
) -> ConsoleUser | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    live = await resume_session(
        session,
        raw,
        now=utcnow(),
        idle=timedelta(seconds=settings.console_idle_timeout_seconds),
    )
    return ConsoleUser.of(live) if live is not None else None


async def sign_out(session: AsyncSession, user: ConsoleUser) -> None:
    await end_session(session, user.token)


def csrf_ok(user: ConsoleUser, submitted: str | None) -> bool:
    return bool(submitted) and constant_time_equals(user.csrf, submitted or "")
