"""Async alembic environment. The URL comes from the caller (``vouch migrate``, the test
harness) through ``config.attributes["url"]``, or from Vouch's settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from vouch.core.engine import async_url, pgbouncer_connect_args
from vouch.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url")
    if url:
        return str(url)
    from vouch.core.runtime import resolve_database_url

    return resolve_database_url()


def run_migrations_offline() -> None:
    context.configure(
        url=async_url(_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _do_run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    # One connection, one transaction: no statement cache is needed, and without one the
    # migrations run through PgBouncer in transaction mode as well as directly.
    engine = create_async_engine(
        async_url(_url()), poolclass=pool.NullPool, connect_args=pgbouncer_connect_args()
    )
    async with engine.connect() as connection:
        await connection.run_sync(_do_run)
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _do_run(connection)
        return
    asyncio.run(_run_async())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
