"""Issue 14, item 2: the server's connections end a transaction left idle (a stuck request)
and cap statement time, so a pooled connection cannot be held open indefinitely."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from vouch.core.engine import create_engine, is_database_unavailable
from vouch.web.app import create_app


async def test_an_idle_transaction_is_ended_by_the_server(database_url):
    engine = create_engine(database_url, pool_size=1, idle_in_transaction_timeout_ms=300)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))  # begins the transaction
            await asyncio.sleep(1.0)
            with pytest.raises(DBAPIError) as raised:
                await conn.execute(text("SELECT 1"))
            assert is_database_unavailable(raised.value)
        # The pool replaced the dead connection: the next request is served.
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_the_apps_connections_carry_both_timeouts(settings, database_url):
    app = create_app(
        settings.model_copy(
            update={
                "database_url": database_url,
                "db_statement_timeout_ms": 1234,
                "db_idle_in_transaction_timeout_ms": 5678,
            }
        )
    )
    session = app.state.sessions.get({})
    try:
        row = (
            await session.execute(
                text(
                    "SELECT current_setting('statement_timeout'), "
                    "current_setting('idle_in_transaction_session_timeout')"
                )
            )
        ).one()
        assert tuple(row) == ("1234ms", "5678ms")
    finally:
        await session.close()
        await app.state.engine.dispose()
