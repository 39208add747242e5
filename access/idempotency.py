"""Idempotency keys: the first request with a key does the work; retries get its answer.

Concurrent identical requests serialise on the key's unique index: the loser of the race
waits for the winner's transaction and then reads the stored answer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.errors import DomainError, ErrorCode, ValidationFailed
from vouch.models import IdempotencyKey

MAX_KEY_LENGTH = 255


def request_fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


async def claim(
    session: AsyncSession, *, scope: str, key: str, payload: dict[str, Any]
) -> dict[str, Any] | None:
    """Claim ``key`` for this request. Returns the stored response if it was already done.

    Raises if the key was used before for a different request.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(
            f"idempotency key must be 1 to {MAX_KEY_LENGTH} characters", field="idempotencyKey"
        )
    fingerprint = request_fingerprint(payload)
    inserted = await session.scalar(
        insert(IdempotencyKey)
        .values(scope=scope, key=key, request_hash=fingerprint, response={})
        .on_conflict_do_nothing(index_elements=["scope", "key"])
        .returning(IdempotencyKey.id)
    )
    if inserted is not None:
        return None
    existing = await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
    )
    assert existing is not None  # the conflicting row is committed, so it is visible now
    if existing.request_hash != fingerprint:
        raise DomainError(
            "this idempotency key was already used for a different request",
            field="idempotencyKey",
            code=ErrorCode.IDEMPOTENCY_MISMATCH,
        )
    return existing.response


async def store_response(
    session: AsyncSession, *, scope: str, key: str, response: dict[str, Any]
) -> None:
    row = await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
    )
    if row is not None:
        row.response = response
        await session.flush()
