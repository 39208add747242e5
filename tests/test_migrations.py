"""Models and migrations agree; the migrations go down to base and up again."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from vouch.core.engine import create_engine
from vouch.core.migrations import alembic_config, head_revisions
from vouch.models import Base


def _not_a_partition(obj: object, name: str | None, kind: str, reflected: bool, _: object) -> bool:
    # The monthly partitions of clicks (and their indexes) are the database's, not the models'.
    return not (reflected and name is not None and name.startswith("clicks_"))


async def test_models_match_migrations(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(
                    sync, opts={"compare_type": True, "include_object": _not_a_partition}
                ),
                Base.metadata,
            )
        )
    assert diff == []


async def test_database_is_at_head(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        current = set(
            (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars()
        )
    assert current == head_revisions()


def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    url = make_url(database_url)
    scratch = f"{url.database}_updown"

    async def admin(sql: str) -> None:
        eng = create_engine(url.render_as_string(hide_password=False), pool_size=1)
        eng = eng.execution_options(isolation_level="AUTOCOMMIT")  # type: ignore[assignment]
        async with eng.connect() as conn:
            await conn.execute(text(sql))
        await eng.dispose()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{scratch}"'))
    try:
        cfg = alembic_config(url.set(database=scratch).render_as_string(hide_password=False))
        command.upgrade(cfg, "heads")
        command.downgrade(cfg, "base")

        async def tables() -> int:
            eng = create_engine(url.set(database=scratch).render_as_string(hide_password=False))
            async with eng.connect() as conn:
                n = await conn.scalar(
                    text(
                        # tables, not the partitions of one (clicks' months)
                        "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                        "ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                        "AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
                        "AND c.relname <> 'alembic_version'"
                    )
                )
            await eng.dispose()
            return int(n or 0)

        assert asyncio.run(tables()) == 0
        command.upgrade(cfg, "heads")
        assert asyncio.run(tables()) == len(Base.metadata.tables)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
