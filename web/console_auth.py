"""Console sign-in: an API key (read scope or better) is exchanged for a signed, HttpOnly,
SameSite=Strict session cookie scoped to ``/console``. Every form carries a CSRF token bound to
the session; the key's revocation ends the session on the next request."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from vouch.access.api_keys import authenticate, get_active_key
from vouch.core.security import constant_time_equals

COOKIE = "vouch_console"
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    key_id: int
    name: str
    scopes: frozenset[str]
    csrf: str

    @property
    def can_moderate(self) -> bool:
        return "admin" in self.scopes or "write" in self.scopes


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="vouch.console.v1")


async def sign_in(session: AsyncSession, plaintext: str) -> ConsoleUser | None:
    key = await authenticate(session, plaintext.strip())
    if key is None:
        return None
    return ConsoleUser(
        key_id=key.id, name=key.name, scopes=frozenset(key.scopes), csrf=secrets.token_urlsafe(24)
    )


def set_session_cookie(response: Response, user: ConsoleUser, *, secret: str, secure: bool) -> None:
    token = _serializer(secret).dumps({"k": user.key_id, "c": user.csrf})
    response.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_SECONDS,
        path="/console",
        httponly=True,
        secure=secure,
        samesite="strict",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/console")


async def current_user(request: Request, session: AsyncSession, secret: str) -> ConsoleUser | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(secret).loads(raw, max_age=SESSION_SECONDS)
    except (BadSignature, SignatureExpired):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("k"), int):
        return None
    key = await get_active_key(session, data["k"])
    if key is None:
        return None
    return ConsoleUser(
        key_id=key.id, name=key.name, scopes=frozenset(key.scopes), csrf=str(data.get("c", ""))
    )


def csrf_ok(user: ConsoleUser, submitted: str | None) -> bool:
    return bool(submitted) and constant_time_equals(user.csrf, submitted or "")
