"""API keys: created once (plaintext shown once), stored as a hash, scoped, revocable."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.clock import utcnow
from vouch.core.errors import NotFound, ValidationFailed
from vouch.core.security import generate_api_key, hash_api_key
from vouch.models import ApiKey
from vouch.models.enums import Scope

# last_used_at is written at most this often per key, to keep the hot path free of writes.
LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    plaintext: str


def parse_scopes(values: list[str]) -> list[Scope]:
    scopes: list[Scope] = []
    for value in values:
        try:
            scopes.append(Scope(value.strip().lower()))
        except ValueError:
            allowed = ", ".join(s.value for s in Scope)
            raise ValidationFailed(
                f"unknown scope '{value[:32]}'; use one of: {allowed}", field="scope"
            ) from None
    if not scopes:
        raise ValidationFailed("at least one scope is required", field="scope")
    return sorted(set(scopes), key=list(Scope).index)


async def create_api_key(session: AsyncSession, *, name: str, scopes: list[Scope]) -> CreatedKey:
    """Create a key; the plaintext is returned once and never stored."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationFailed("name must be 1 to 100 characters", field="name")
    new = generate_api_key()
    key = ApiKey(
        name=name, prefix=new.prefix, key_hash=new.hashed, scopes=[s.value for s in scopes]
    )
    session.add(key)
    await session.flush()
    return CreatedKey(key=key, plaintext=new.plaintext)


# Built once: on the hot path, building the statement would cost more than running it.
_LIVE_KEY = select(ApiKey).where(
    ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None)
)


async def authenticate(session: AsyncSession, plaintext: str) -> ApiKey | None:
    """The live key for this plaintext, touching ``last_used_at`` at most once a minute."""
    if len(plaintext) > 200:
        return None
    key = await session.scalar(_LIVE_KEY, {"key_hash": hash_api_key(plaintext)})
    if key is None:
        return None
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
        await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        key.last_used_at = now
    return key


async def revoke_api_key(session: AsyncSession, key_id: int) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound("no such API key", field="id")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
        KEY_CACHE.forget(key.key_hash)
        # Other processes drop it when this commits (see web.invalidation).
        await session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": KEY_INVALIDATION_CHANNEL, "payload": key.key_hash},
        )
    return key


KEY_INVALIDATION_CHANNEL = "vouch_api_keys"


@dataclass(frozen=True, slots=True)
class KnownKey:
    id: int
    name: str
    scopes: tuple[str, ...]


class KeyCache:
    """Live keys seen in the last few seconds, so most requests authenticate without a query.

    A revocation removes the key here at once in the revoking process and, through NOTIFY, in
    every other worker; the short TTL bounds staleness if a notification is ever missed."""

    def __init__(self, ttl: float = 10.0, size: int = 1024) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[float, KnownKey]] = {}

    def get(self, key_hash: str) -> KnownKey | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if time.monotonic() - entry[0] > self.ttl:
            self._entries.pop(key_hash, None)
            return None
        return entry[1]

    def put(self, key_hash: str, key: KnownKey) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic(), key)

    def forget(self, key_hash: str | None = None) -> None:
        if key_hash is None:
            self._entries.clear()
        else:
            self._entries.pop(key_hash, None)


KEY_CACHE = KeyCache()


async def authenticate_cached(session: AsyncSession, plaintext: str) -> KnownKey | None:
    """``authenticate`` behind the process-wide ``KEY_CACHE`` (no query on a hit)."""
    if len(plaintext) > 200:
        return None
    key_hash = hash_api_key(plaintext)
    known = KEY_CACHE.get(key_hash)
    if known is not None:
        return known
    key = await authenticate(session, plaintext)
    if key is None:
        return None
    known = KnownKey(id=key.id, name=key.name, scopes=tuple(key.scopes))
    KEY_CACHE.put(key_hash, known)
    return known


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    return list(await session.scalars(select(ApiKey).order_by(ApiKey.id)))


async def get_active_key(session: AsyncSession, key_id: int) -> ApiKey | None:
    """The key with this id unless it was revoked."""
    return await session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
    )
