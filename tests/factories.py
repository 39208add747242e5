"""Plain async factories with keyword defaults. Each flushes and returns the row."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.codes import LinkCodec
from vouch.core.emails import normalize_email
from vouch.models import Advocate, ApiKey, Program, ReferralLink, RewardRule
from vouch.models.enums import RewardSide, RewardTrigger

_seq = itertools.count(1)


async def make_program(session: AsyncSession, **overrides: Any) -> Program:
    n = next(_seq)
    values: dict[str, Any] = {"slug": f"program-{n}", "name": f"Program {n}", "currency": "USD"}
    values.update(overrides)
    program = Program(**values)
    session.add(program)
    await session.flush()
    return program


async def make_advocate(session: AsyncSession, **overrides: Any) -> Advocate:
    n = next(_seq)
    values: dict[str, Any] = {
        "external_id": f"ext-{n}",
        "email": f"advocate{n}@example.com",
        "first_name": f"Ada{n}",
        "last_name": "Lovelace",
        "account_id": f"acct-{n}",
    }
    values.update(overrides)
    values.setdefault(
        "email_normalized", normalize_email(values["email"]) if values["email"] else None
    )
    advocate = Advocate(**values)
    session.add(advocate)
    await session.flush()
    return advocate


async def make_link(
    session: AsyncSession,
    codec: LinkCodec,
    *,
    advocate: Advocate,
    program: Program,
    **overrides: Any,
) -> ReferralLink:
    values: dict[str, Any] = {
        "advocate_id": advocate.id,
        "program_id": program.id,
        "channel": "direct",
        "nonce": codec.new_nonce(),
    }
    values.update(overrides)
    link = ReferralLink(**values)
    session.add(link)
    await session.flush()
    link.code = codec.encode(link.id, link.nonce)
    await session.flush()
    return link


async def make_reward_rule(
    session: AsyncSession, *, program: Program, **overrides: Any
) -> RewardRule:
    n = next(_seq)
    values: dict[str, Any] = {
        "program_id": program.id,
        "name": f"rule {n}",
        "side": RewardSide.REFERRER,
        "trigger": RewardTrigger.WON,
        "amount_minor": 5000,
        "currency": "USD",
    }
    values.update(overrides)
    rule = RewardRule(**values)
    session.add(rule)
    await session.flush()
    return rule


async def make_api_key(session: AsyncSession, *, scopes: list[str], name: str = "test") -> str:
    """Create a key and return its plaintext."""
    from vouch.access.api_keys import create_api_key, parse_scopes

    created = await create_api_key(session, name=name, scopes=parse_scopes(scopes))
    return created.plaintext


__all__ = [
    "ApiKey",
    "make_advocate",
    "make_api_key",
    "make_link",
    "make_program",
    "make_reward_rule",
]
