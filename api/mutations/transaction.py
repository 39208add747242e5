"""The edge of a business action: run it, commit on success, roll back and report on failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from vouch.api.context import Context
from vouch.api.errors import InputError, user_errors
from vouch.core.errors import DomainError

T = TypeVar("T")


async def attempt(
    ctx: Context, work: Callable[[], Awaitable[T]]
) -> tuple[T, None] | tuple[None, list[InputError]]:
    """One transaction: ``work`` converts input and calls one domain function."""
    try:
        result = await work()
    except DomainError as exc:
        await ctx.session.rollback()
        return None, user_errors(exc)
    except BaseException:
        await ctx.session.rollback()
        raise
    await ctx.session.commit()
    return result, None
