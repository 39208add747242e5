"""Run async work from click commands, turning expected failures into one clear line."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import click
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.engine import create_engine
from vouch.core.errors import DomainError
from vouch.core.runtime import resolve_database_url
from vouch.core.sessions import session_factory
from vouch.core.settings import ConfigError, Settings, get_settings

P = ParamSpec("P")
T = TypeVar("T")


def fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def describe_db_error(exc: BaseException, url_hint: str) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (
        f"cannot use the database at {url_hint}: {text[:200]}. Check DATABASE_URL "
        "(or unset it to use the embedded PostgreSQL)."
    )


def redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable DATABASE_URL>"


def handle_errors(fn: Callable[P, T]) -> Callable[P, T]:
    """Expected failures become one line on stderr and a non-zero exit; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            fail(str(exc))
        except DomainError as exc:
            fail(exc.message)
        except (OSError, OperationalError, DBAPIError) as exc:
            settings = get_settings()
            hint = redact(settings.database_url) if settings.database_url else "embedded server"
            fail(describe_db_error(exc, hint))
        except ValueError as exc:  # pydantic settings validation and similar
            fail(str(exc).splitlines()[0])
        raise AssertionError("unreachable")

    return wrapper


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValueError as exc:
        first = [line for line in str(exc).splitlines() if line.strip()]
        detail = " ".join(first[1:3]) if len(first) > 1 else str(exc)
        raise ConfigError(f"invalid configuration: {detail}") from exc


def database_url(settings: Settings) -> str:
    """Resolve (starting the embedded server if needed) and export for child processes."""
    url = resolve_database_url(settings)
    os.environ["DATABASE_URL"] = url  # uvicorn workers and alembic inherit the same server
    return url


def run_with_session(
    settings: Settings, work: Callable[[AsyncSession], Awaitable[T]], *, commit: bool = True
) -> T:
    url = database_url(settings)

    async def main() -> T:
        engine = create_engine(url, pool_size=2, pgbouncer=settings.db_pgbouncer)
        try:
            async with session_factory(engine)() as session:
                result = await work(session)
                if commit:
                    await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(main())
