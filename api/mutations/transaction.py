"""The edge of a business action: run it, commit on success, roll back and report on failure.

Every mutation resolver is wrapped in ``@transaction(failed)``: its body converts the input,
calls one domain function and builds the payload. The wrapper commits when the body returns,
and when the body raises a ``DomainError`` (bad input, a conflict, a missing object) rolls back
and answers ``failed(exc)``, the payload carrying ``user_errors(exc)`` — expected failures are
data (``api.errors``), mapped here and nowhere else. Anything else (a refused credential, a
bug) is rolled back and raised. A widget token's committed mutation drops that advocate's kept
widget answers everywhere (``core.widget_cache``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from vouch.api.context import Context, WidgetPrincipal
from vouch.core.errors import DomainError
from vouch.core.widget_cache import announce_widget_change

P = ParamSpec("P")
R = TypeVar("R")


def transaction(
    failed: Callable[[DomainError], R],
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """One transaction per call of the decorated resolver; ``failed`` builds the payload that
    reports a domain error (the resolver's ``info`` argument gives the session).

    Put it under ``@strawberry.mutation``: ``functools.wraps`` keeps the resolver's signature
    and annotations, which strawberry reads to build the field."""

    def decorate(resolver: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(resolver)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            context = _context(args, kwargs)
            session = context.session
            try:
                payload = await resolver(*args, **kwargs)
                if isinstance(context.principal, WidgetPrincipal):
                    # The widget shows what its advocate just did, on every worker.
                    await announce_widget_change(session, context.principal.advocate_id)
            except DomainError as exc:
                await session.rollback()
                return failed(exc)
            except BaseException:
                await session.rollback()
                raise
            await session.commit()
            return payload

        return run

    return decorate


def _context(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Context:
    """The request context from the resolver's ``info`` (strawberry passes it by keyword)."""
    info = kwargs.get("info")
    if info is None:
        info = next(a for a in args if isinstance(getattr(a, "context", None), Context))
    context: Context = info.context
    return context
