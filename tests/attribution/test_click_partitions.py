"""Clicks are partitioned by month: the migration moves existing rows both ways, the upkeep job
creates months ahead (moving what the default partition holds), and time-filtered reads touch
only the months they name."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.attribution.factories import make_click
from tests.factories import make_advocate, make_link, make_program
from vouch.attribution import click_partitions
from vouch.core.engine import create_engine
from vouch.core.migrations import alembic_config
from vouch.core.sessions import session_factory

BEFORE = "0005_sec_app_console_sessions"
AFTER = "0006_clicks_partitioned"


async def a_fresh_link(session, codec):
    program = await make_program(session)
    advocate = await make_advocate(session)
    return await make_link(session, codec, advocate=advocate, program=program)


async def a_link(db_url: str, codec) -> int:
    """A program, advocate and link, written with the models (unchanged by the migration)."""
    eng = create_engine(db_url, pool_size=1)
    async with session_factory(eng)() as session:
        link = await a_fresh_link(session, codec)
        await session.commit()
        link_id = link.id
    await eng.dispose()
    return int(link_id)


async def where_is(session, click_id: int) -> str:
    return str(
        await session.scalar(
            text("SELECT tableoid::regclass::text FROM clicks WHERE id = :i"), {"i": click_id}
        )
    )


def test_the_migration_moves_existing_clicks_into_months_and_back(database_url: str, codec) -> None:
    url = make_url(database_url)
    scratch = f"{url.database}_parts"
    scratch_url = url.set(database=scratch).render_as_string(hide_password=False)

    async def run(db_url: str, *sql: str, autocommit: bool = False) -> list[tuple[object, ...]]:
        eng = create_engine(db_url, pool_size=1)
        if autocommit:
            eng = eng.execution_options(isolation_level="AUTOCOMMIT")  # type: ignore[assignment]
        rows: list[tuple[object, ...]] = []
        async with eng.connect() as conn:
            for statement in sql:
                result = await conn.execute(text(statement))
                if result.returns_rows:
                    rows = [tuple(r) for r in result]
            await conn.commit()
        await eng.dispose()
        return rows

    admin = url.render_as_string(hide_password=False)
    asyncio.run(run(admin, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)', autocommit=True))
    asyncio.run(run(admin, f'CREATE DATABASE "{scratch}"', autocommit=True))
    try:
        cfg = alembic_config(scratch_url)
        command.upgrade(cfg, BEFORE)
        link_id = asyncio.run(a_link(scratch_url, codec))
        asyncio.run(
            run(
                scratch_url,
                "INSERT INTO clicks (id, link_id, program_id, occurred_at, is_bot, channel) "
                f"SELECT 7, id, program_id, '2025-03-31 23:59:59+00'::timestamptz, false, 'sms' "
                f"FROM referral_links WHERE id = {link_id} UNION ALL "
                f"SELECT 8, id, program_id, '2025-04-01 00:00:00+00'::timestamptz, true, null "
                f"FROM referral_links WHERE id = {link_id}",
            )
        )
        command.upgrade(cfg, AFTER)
        placed = asyncio.run(
            run(scratch_url, "SELECT id, tableoid::regclass::text, channel FROM clicks ORDER BY id")
        )
        assert placed == [(7, "clicks_2025_03", "sms"), (8, "clicks_2025_04", None)]
        fresh = asyncio.run(
            run(
                scratch_url,
                "INSERT INTO clicks (link_id, program_id, occurred_at, is_bot) "
                f"SELECT id, program_id, now(), false FROM referral_links WHERE id = {link_id} "
                "RETURNING id",
            )
        )
        assert fresh[0][0] == 9  # the id sequence continues past the moved rows
        command.downgrade(cfg, BEFORE)
        back = asyncio.run(
            run(scratch_url, "SELECT id, tableoid::regclass::text FROM clicks ORDER BY id")
        )
        assert back == [(7, "clicks"), (8, "clicks"), (9, "clicks")]
        command.upgrade(cfg, "heads")
    finally:
        asyncio.run(
            run(admin, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)', autocommit=True)
        )


async def test_upkeep_creates_months_ahead_and_moves_what_the_default_holds(session, codec):
    link = await a_fresh_link(session, codec)
    now = datetime(2031, 5, 15, 12, tzinfo=UTC)  # no partition exists for these months yet
    early = await make_click(session, link=link, occurred_at=datetime(2031, 5, 20, tzinfo=UTC))
    assert await where_is(session, early.id) == "clicks_default"

    upkeep = await click_partitions.ensure_partitions(session, now=now, ahead=2)
    assert upkeep.created == ("clicks_2031_05", "clicks_2031_06", "clicks_2031_07")
    assert upkeep.moved_from_default == 1
    assert await where_is(session, early.id) == "clicks_2031_05"
    later = await make_click(session, link=link, occurred_at=datetime(2031, 7, 1, tzinfo=UTC))
    assert await where_is(session, later.id) == "clicks_2031_07"

    again = await click_partitions.ensure_partitions(session, now=now, ahead=2)
    assert again == click_partitions.Upkeep(created=(), moved_from_default=0)
    months = await click_partitions.monthly_partitions(session)
    assert {m.isoformat() for m in months} >= {"2031-05-01", "2031-06-01", "2031-07-01"}


async def test_a_time_filtered_count_reads_only_the_months_it_names(session, codec):
    await click_partitions.ensure_partitions(
        session, now=datetime(2031, 5, 15, tzinfo=UTC), ahead=2
    )
    plan = "\n".join(
        await session.scalars(
            text(
                "EXPLAIN SELECT count(*) FROM clicks WHERE program_id = 1 "
                "AND occurred_at >= '2031-06-01 00:00+00' AND occurred_at < '2031-07-01 00:00+00'"
            )
        )
    )
    assert "clicks_2031_06" in plan
    assert "clicks_2031_05" not in plan
    assert "clicks_2031_07" not in plan
    assert "clicks_default" not in plan


async def test_retention_drops_old_months_and_every_click_count_stays(session, codec):
    from datetime import date

    from vouch.attribution import links, reports, share_events
    from vouch.models import Program

    link = await a_fresh_link(session, codec)
    program = await session.get(Program, link.program_id)
    await click_partitions.ensure_partitions(
        session, now=datetime(2031, 1, 15, tzinfo=UTC), ahead=4
    )
    for day, bot, channel in ((3, False, "sms"), (9, False, None), (20, True, "sms")):
        await make_click(
            session,
            link=link,
            occurred_at=datetime(2031, 1, day, tzinfo=UTC),
            is_bot=bot,
            channel=channel,
        )
    await make_click(session, link=link, occurred_at=datetime(2031, 4, 2, tzinfo=UTC))

    async def counts():
        january = reports.ReportFilter(
            program_id=program.id, since=date(2031, 1, 1), until=date(2031, 2, 1)
        )
        everything = reports.ReportFilter(program_id=program.id)
        return (
            await links.link_stats(session, [link.id]),
            await links.click_summaries_by_advocates(session, [link.advocate_id]),
            (await reports.funnel(session, january))[0].count,
            (await reports.funnel(session, everything))[0].count,
            (
                await share_events.share_stats(
                    session, advocate_id=link.advocate_id, program=program
                )
            ).clicks,
        )

    before = await counts()
    assert before[0][link.id].clicks.total == 4
    assert before[2:] == (2, 3, 3)

    kept = await click_partitions.drop_expired(
        session, now=datetime(2031, 5, 15, tzinfo=UTC), keep_months=3
    )
    assert "clicks_2031_01" in kept.dropped
    assert "clicks_2031_04" not in kept.dropped
    assert kept.summarised == 3
    months = await click_partitions.monthly_partitions(session)
    assert date(2031, 1, 1) not in months
    assert await counts() == before  # the same numbers on every surface
    # what is left of January: counts per link and channel, nothing personal
    rows = (
        await session.execute(
            text("SELECT month, channel, human, bots FROM click_monthly_totals ORDER BY channel")
        )
    ).all()
    assert [tuple(r) for r in rows] == [
        (date(2031, 1, 1), "", 1, 0),
        (date(2031, 1, 1), "sms", 1, 1),
    ]
    again = await click_partitions.drop_expired(
        session, now=datetime(2031, 5, 15, tzinfo=UTC), keep_months=3
    )
    assert again == click_partitions.Retention(dropped=(), summarised=0)


async def test_upkeep_can_create_past_months_for_a_bulk_load(session):
    upkeep = await click_partitions.ensure_partitions(
        session, now=datetime(2032, 3, 10, tzinfo=UTC), ahead=0, since=datetime(2031, 12, 5).date()
    )
    assert upkeep.created == (
        "clicks_2031_12",
        "clicks_2032_01",
        "clicks_2032_02",
        "clicks_2032_03",
    )
