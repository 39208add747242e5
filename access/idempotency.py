"""Idempotency keys: the first request with a key does the work; retries get its answer.

A key belongs to one credential (``owner``: ``api_key:<id>``, ``inbound``) and one operation
(``scope``). A retry with the same key, operation and input replays the first answer; the same
key with other input, or on another operation, is refused with IDEMPOTENCY_MISMATCH (as Stripe
does). The fingerprint covers only what the caller sent: values the server defaults (the time
of a conversion, the close date of a won deal) are left out, so a retry sent a minute later is
still the same request.

Concurrent identical requests serialise on the key's unique index: the loser of the race
waits for the winner's transaction and then reads the stored answer.

Keys stored before owners existed (migration 0005_money_a_rewards) have the owner
``legacy:<operation>``: a retry sent across that upgrade still gets its first answer, since
before it a key was unique per operation whoever sent it. Their old fingerprints covered server
defaults, so they are not compared. Legacy keys age out with the others (the prune job); until
then a first use looks for one, and once none is left no process looks again.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.errors import DomainError, ErrorCode, ValidationFailed
from vouch.core.raw_select import run_raw
from vouch.models import IdempotencyKey

MAX_KEY_LENGTH = 255
MAX_OWNER_LENGTH = 64


def request_fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _mismatch(message: str) -> DomainError:
    return DomainError(message, field="idempotencyKey", code=ErrorCode.IDEMPOTENCY_MISMATCH)


async def claim(
    session: AsyncSession,
    *,
    scope: str,
    key: str,
    payload: dict[str, Any],
    owner: str = "",
) -> dict[str, Any] | None:
    """Claim ``key`` of ``owner`` for the operation ``scope``. Returns the stored first answer
    if the request was already done.

    Raises if the key was used before for a different request or another operation.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(
            f"idempotency key must be 1 to {MAX_KEY_LENGTH} characters", field="idempotencyKey"
        )
    owner = owner[:MAX_OWNER_LENGTH]
    fingerprint = request_fingerprint(payload)
    rows = await run_raw(session, _CLAIM, [owner, scope, key, fingerprint])
    if rows:
        inserted = rows[0][0]
        legacy = await _legacy_answer(session, scope=scope, key=key)
        if legacy is not None:  # the first answer, given before the upgrade: adopt it
            await session.execute(
                update(IdempotencyKey).where(IdempotencyKey.id == inserted).values(response=legacy)
            )
        return legacy
    existing = await session.scalar(
        select(IdempotencyKey)
        .where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
        .execution_options(populate_existing=True)
    )
    assert existing is not None  # the conflicting row is committed, so it is visible now
    if existing.scope != scope:
        raise _mismatch(
            f"this idempotency key was already used for another operation ({existing.scope})"
        )
    if existing.request_hash != fingerprint:
        raise _mismatch("this idempotency key was already used for a different request")
    return existing.response


LEGACY_PREFIX = "legacy:"
LEGACY_RECHECK_SECONDS = 600.0


class _LegacyKeys:
    """Whether legacy keys may still exist (asked again at most every ten minutes while they
    do; never again once they are gone, since nothing creates them any more)."""

    gone = False
    checked_at = float("-inf")


async def _legacy_answer(session: AsyncSession, *, scope: str, key: str) -> dict[str, Any] | None:
    if _LegacyKeys.gone:
        return None
    if time.monotonic() - _LegacyKeys.checked_at > LEGACY_RECHECK_SECONDS:
        any_left = await session.scalar(
            select(exists().where(IdempotencyKey.owner.startswith(LEGACY_PREFIX)))
        )
        _LegacyKeys.checked_at = time.monotonic()
        if not any_left:
            _LegacyKeys.gone = True
            return None
    response = await session.scalar(
        select(IdempotencyKey.response).where(
            IdempotencyKey.owner == f"{LEGACY_PREFIX}{scope}"[:MAX_OWNER_LENGTH],
            IdempotencyKey.key == key,
        )
    )
    return dict(response) if response else None


async def store_response(
    session: AsyncSession,
    *,
    scope: str,
    key: str,
    response: dict[str, Any],
    owner: str = "",
) -> None:
    """Keep the first answer to ``key`` for its retries (one statement)."""
    await run_raw(
        session,
        _STORE,
        [owner[:MAX_OWNER_LENGTH], key, scope, json.dumps(response, separators=(",", ":"))],
    )


def store_sql(*, response: str, owner: str, key: str, scope: str, source: str | None = None) -> str:
    """The UPDATE that keeps a key's first answer, as SQL text: the arguments are placeholders
    or expressions (``response`` a JSONB one). With ``source`` (a CTE of the same statement,
    whose columns ``response`` may name), it is meant to be a CTE itself and stores the answer
    only if ``source`` has a row: a write can keep its own answer in the statement that makes
    it. Only placeholders and constants are formatted in."""
    rows = f" FROM {source}" if source else ""
    return (
        f"UPDATE idempotency_keys SET response = {response}{rows}"  # noqa: S608
        f" WHERE idempotency_keys.owner = {owner} AND idempotency_keys.key = {key}"
        f" AND idempotency_keys.scope = {scope}"
    )


def answer_cte(*, source: str, id_name: str, owner: str, key: str, scope: str) -> str:
    """``answered AS (…)``: a write's first answer, ``{id_name: <source's id>, "created":
    true}``, kept under its key in the statement that makes the write (nothing when ``source``
    wrote no row, or the key placeholders are NULL)."""
    response = f"jsonb_build_object('{id_name}', {source}.id, 'created', true)"
    stored = store_sql(response=response, owner=owner, key=key, scope=scope, source=source)
    return f"answered AS ({stored})"


# Prebuilt (every keyed write runs both): the first use of a key, and its stored answer.
_CLAIM = """
INSERT INTO idempotency_keys (owner, scope, key, request_hash, response)
VALUES ($1, $2, $3, $4, '{}') ON CONFLICT (owner, key) DO NOTHING RETURNING id"""
_STORE = store_sql(response="$4::jsonb", owner="$1", key="$2", scope="$3")
