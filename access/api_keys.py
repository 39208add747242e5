"""API keys: created once (plaintext shown once), stored as a hash, scoped, revocable."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utcnow
from core.errors import NotFound, ValidationFailed
from core.security import generate_api_key, hash_api_key
from models import ApiKey
from models.enums import Scope

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
    return key


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    return list(await session.scalars(select(ApiKey).order_by(ApiKey.id)))


async def get_active_key(session: AsyncSession, key_id: int) -> ApiKey | None:
    """The key with this id unless it was revoked."""
    return await session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
    )
