"""``vouch webhooks deliver`` (the outbound delivery worker) and ``vouch rollups rebuild``."""

from __future__ import annotations

import asyncio
import json
import time

import click
import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vouch.attribution import rollups, webhooks
from vouch.attribution.egress import EgressPolicy
from vouch.cli.runner import database_url, handle_errors, load_settings, run_with_session
from vouch.core.clock import utcnow
from vouch.core.engine import create_engine
from vouch.core.sessions import session_factory


async def deliver_once(
    factory: async_sessionmaker[AsyncSession], send: webhooks.Sender, *, limit: int = 100
) -> webhooks.WorkerRun:
    """One worker pass in one transaction: claim due deliveries, send, record, commit."""
    async with factory() as session:
        run = await webhooks.deliver_due(session, send, now=utcnow(), limit=limit)
        await session.commit()
        return run


@click.group("webhooks")
def webhooks_group() -> None:
    """Outbound webhooks."""


@webhooks_group.command("deliver")
@click.option("--once", is_flag=True, help="One pass, then exit.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.1, 300))
@click.option("--batch", default=100, show_default=True, type=click.IntRange(1, 1000))
@handle_errors
def deliver(once: bool, interval: float, batch: int) -> None:
    """Send due webhook deliveries (retries with backoff; dead-letters after 8 attempts).

    Several workers may run at once: deliveries are claimed with SKIP LOCKED.
    """
    settings = load_settings()
    url = database_url(settings)
    policy = EgressPolicy.allowing(settings.webhook_allow_private_hosts)

    async def loop() -> None:
        engine = create_engine(url, pool_size=2, pgbouncer=settings.db_pgbouncer)
        factory = session_factory(engine)
        try:
            async with httpx.AsyncClient() as client:
                send = webhooks.httpx_sender(client, policy)
                while True:
                    run = await deliver_once(factory, send, limit=batch)
                    if run.delivered or run.retried or run.dead:
                        click.echo(
                            f"delivered {run.delivered}, retrying {run.retried}, dead {run.dead}"
                        )
                    if once:
                        return
                    if run.delivered + run.retried + run.dead < batch:
                        await asyncio.sleep(interval)
        finally:
            await engine.dispose()

    try:
        asyncio.run(loop())
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        click.echo("stopped")


@click.group("rollups")
def rollups_group() -> None:
    """Reporting rollups."""


@rollups_group.command("rebuild")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def rebuild(as_json: bool) -> None:
    """Recompute the reporting rollup from raw events (one transaction)."""
    started = time.perf_counter()
    if not as_json:
        click.echo("rebuilding the reporting rollup from raw events ...", err=True)
    rows = run_with_session(load_settings(), rollups.rebuild)
    seconds = round(time.perf_counter() - started, 2)
    if as_json:
        click.echo(json.dumps({"rows": rows, "seconds": seconds}))
    else:
        click.echo(f"rebuilt {rows} rollup rows in {seconds:.1f}s")
