"""Test harness: real PostgreSQL, schema built once from the migrations, each test inside a
rolled-back outer transaction (the app's own commits become savepoints)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from vouch.core.codes import LinkCodec
from vouch.core.embedded import start_embedded
from vouch.core.engine import async_url, create_engine
from vouch.core.migrations import alembic_config
from vouch.core.sessions import SerialSession
from vouch.core.settings import Settings
from vouch.models import Base
from vouch.web.app import Overrides, create_app

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
TEST_SALT = "test-hashid-salt"
# A Standard Webhooks secret: whsec_ + base64 of 32 bytes (the test vector's shape).
INBOUND_SECRET = "whsec_dGVzdC1pbmJvdW5kLXNlY3JldC0wMTIzNDU2Nzg5YWI="


# Whole folders and files whose tests take seconds each (servers started in subprocesses,
# real browsers, faults injected and waited out, a wheel built and installed). `./dev test
# --quick` leaves them out; CI runs everything.
SLOW_PATHS = (
    "tests/faults/",
    "tests/browser/",
    "tests/packaging/",
    "tests/cli/test_embedded.py",
    "tests/jobs/",  # schedulers run for seconds, `vouch worker` in a subprocess
    "tests/hostile/test_openapi_schemathesis.py",
    "tests/api/test_relay_compiler.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        where = Path(str(item.path)).resolve().relative_to(ROOT).as_posix()
        if where.startswith(SLOW_PATHS):
            item.add_marker(pytest.mark.slow)


def _server_url() -> str:
    explicit = os.environ.get("VOUCH_TEST_DATABASE_URL")
    if explicit:
        return explicit
    return start_embedded(ROOT / ".vouch" / "test", database="postgres")


def _test_db_prefix() -> str:
    # One database per checkout and pytest process, so parallel checkouts sharing a server, and
    # two pytest runs in one checkout, never drop each other's database.
    return "vouch_test_" + hashlib.sha256(str(ROOT).encode()).hexdigest()[:8] + "_"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _admin(server: Any, sql: str) -> list[str]:
    admin = create_engine(server.render_as_string(hide_password=False), pool_size=1)
    try:
        async with admin.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            result = await conn.execute(text(sql))
            return [str(row[0]) for row in result] if result.returns_rows else []
    finally:
        await admin.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server = make_url(async_url(_server_url()))
    prefix = _test_db_prefix()
    name = f"{prefix}{os.getpid()}"

    async def recreate() -> None:
        # Databases left by runs of this checkout that were killed (their process is gone).
        names = await _admin(
            server,
            f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%'",
        )
        for stale in names:
            pid = stale.removeprefix(prefix)
            if stale == name or (pid.isdigit() and not _pid_alive(int(pid))):
                await _admin(server, f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')
        await _admin(server, f'CREATE DATABASE "{name}"')

    asyncio.run(recreate())
    url = server.set(database=name).render_as_string(hide_password=False)
    from alembic import command

    command.upgrade(alembic_config(url), "heads")
    yield url
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=5)
    yield eng
    await eng.dispose()


@pytest.fixture
async def conn(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        trans = await connection.begin()
        try:
            yield connection
        finally:
            await trans.rollback()


@pytest.fixture
def sessionmaker(conn: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        bind=conn,
        class_=SerialSession,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    )


@pytest.fixture
async def session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as s:
        yield s


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    values: dict[str, Any] = {
        "VOUCH_ENV": "test",
        "VOUCH_SECRET_KEY": TEST_SECRET,
        "VOUCH_HASHID_SALT": TEST_SALT,
        "VOUCH_DATA_DIR": str(tmp_path_factory.mktemp("vouch-data")),
        "VOUCH_PUBLIC_BASE_URL": "http://testserver",
        "VOUCH_INBOUND_WEBHOOK_SECRET": INBOUND_SECRET,
        "DATABASE_URL": "postgresql://unused-in-tests/x",
    }
    return Settings(**values)


@pytest.fixture(scope="session")
def codec(settings: Settings) -> LinkCodec:
    return LinkCodec(settings.resolved_hashid_salt(), settings.hashid_min_length)


@pytest.fixture
def app(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> Any:
    return create_app(settings, Overrides(sessionmaker=sessionmaker))


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


class QueryCounter:
    def __init__(self) -> None:
        self.count = 0
        self.statements: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
            return
        self.count += 1
        self.statements.append(statement)

    def reset(self) -> None:
        self.count = 0
        self.statements.clear()


@pytest.fixture
def count_queries(conn: AsyncConnection) -> Iterator[QueryCounter]:
    """Counts SQL statements run on the test connection (savepoints excluded)."""
    counter = QueryCounter()
    event.listen(conn.sync_connection, "before_cursor_execute", counter)
    yield counter
    event.remove(conn.sync_connection, "before_cursor_execute", counter)


@pytest.fixture
async def committing_engine(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """For tests that need real commits across connections (concurrency): the tables are
    truncated afterwards so other tests still start empty."""
    yield engine
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
