"""``vouch``: serve, migrate, apikey, demo."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import signal
import socket
import sys
import tempfile

import click
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.access.api_keys import create_api_key, list_api_keys, parse_scopes, revoke_api_key
from vouch.cli.asks import asks
from vouch.cli.rewards import rewards
from vouch.cli.runner import database_url, handle_errors, load_settings, run_with_session
from vouch.cli.tiers import tiers
from vouch.core.embedded import start_watchdog
from vouch.core.engine import create_engine
from vouch.core.migrations import alembic_config
from vouch.core.settings import ConfigError, get_settings
from vouch.jobs.definitions import schedules


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Vouch: customer advocacy and referral programs, on PostgreSQL.

    With no DATABASE_URL, Vouch runs its own PostgreSQL in VOUCH_DATA_DIR (default ./.vouch).
    """


def _check_database(url: str) -> None:
    async def probe() -> None:
        engine = create_engine(url, pool_size=1, pgbouncer=get_settings().db_pgbouncer)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    asyncio.run(probe())


def _migrate(url: str, revision: str = "heads") -> None:
    from alembic import command

    _check_database(url)
    command.upgrade(alembic_config(url), revision)


@main.command()
@click.option("--revision", default="heads", show_default=True, help="Target revision.")
@handle_errors
def migrate(revision: str) -> None:
    """Upgrade the database schema to the latest migration."""
    url = database_url(load_settings())
    _migrate(url, revision)
    click.echo(f"database is at {revision}")


@main.command()
@click.option("--revision", default="base", show_default=True, help="Target revision.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def downgrade(revision: str, yes: bool) -> None:
    """Downgrade the schema (``base`` drops every Vouch table)."""
    from alembic import command

    if not yes:
        click.confirm(f"Downgrade the database to {revision}? Data may be lost.", abort=True)
    url = database_url(load_settings())
    _check_database(url)
    command.downgrade(alembic_config(url), revision)
    click.echo(f"database is at {revision}")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def serve_app(host: str, port: int, workers: int, *, migrate_first: bool = True) -> None:
    import uvicorn

    settings = load_settings()
    if not _port_free(host, port):
        raise ConfigError(f"port {port} on {host} is already in use; pick another with --port")
    url = database_url(settings)
    if settings.embedded:
        start_watchdog(settings.data_dir)  # revives a killed embedded server
    if migrate_first:
        _migrate(url)
    schedules(settings)  # a wrong VOUCH_JOB_SCHEDULES stops start-up with one line
    settings.resolved_secret()  # fail fast in production, create once in development
    settings.resolved_hashid_salt()
    settings.inbound_webhook_secret_or_none()  # a weak one stops start-up; unset: disabled
    if "public_base_url" not in settings.model_fields_set:
        # Unconfigured: share links point at where this server actually listens.
        shown = "localhost" if host in ("0.0.0.0", "::") else host  # noqa: S104 - compared only
        os.environ["VOUCH_PUBLIC_BASE_URL"] = f"http://{shown}:{port}"
        get_settings.cache_clear()
    if workers > 1 and settings.prometheus_multiproc_dir is None:
        # One directory the workers write their metrics to, fresh for this server, so a
        # scrape adds up every worker (web/metrics.py); removed when the server stops.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        metrics_dir = tempfile.mkdtemp(prefix="metrics-", dir=settings.data_dir)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        atexit.register(shutil.rmtree, metrics_dir, ignore_errors=True)
        get_settings.cache_clear()
    click.echo(f"Vouch on http://{host}:{port}  (GraphQL: http://{host}:{port}/graphql)")
    # uvicorn shuts down gracefully on SIGTERM and then re-raises it; with Python's default
    # handler that would kill the process before the embedded PostgreSQL is stopped (atexit).
    # Exit normally instead, exactly as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "vouch.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        # X-Forwarded-For is believed only from VOUCH_TRUSTED_PROXIES, in web.edge; uvicorn
        # would otherwise trust it from 127.0.0.1 (any same-host proxy passing it through).
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--no-migrate", is_flag=True, help="Do not run migrations before serving.")
@handle_errors
def serve(host: str, port: int, workers: int, no_migrate: bool) -> None:
    """Serve the GraphQL API and the referral microsite."""
    serve_app(host, port, workers, migrate_first=not no_migrate)


@main.group()
def apikey() -> None:
    """Create, list and revoke API keys."""


@apikey.command("create")
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="read, write or admin (repeatable; admin implies write implies read).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def apikey_create(name: str, scopes: tuple[str, ...], as_json: bool) -> None:
    """Create a key. It is printed once; only its hash is stored."""
    parsed = parse_scopes(list(scopes))
    settings = load_settings()

    async def work(session: AsyncSession) -> tuple[int, str]:
        created = await create_api_key(session, name=name, scopes=parsed)
        return created.key.id, created.plaintext

    key_id, plaintext = run_with_session(settings, work)
    if as_json:
        click.echo(json.dumps({"id": key_id, "name": name, "scopes": parsed, "key": plaintext}))
    else:
        click.echo(f"API key {key_id} '{name}' ({', '.join(parsed)}); shown once, store it now:")
        click.echo(plaintext)


@apikey.command("list")
@handle_errors
def apikey_list() -> None:
    """List keys (never their secrets)."""

    async def work(session: AsyncSession) -> list[str]:
        return [
            f"{k.id}\t{k.name}\t{','.join(k.scopes)}\tvk_{k.prefix}_…\t"
            f"{'revoked' if k.revoked_at else 'active'}\tlast used {k.last_used_at or 'never'}"
            for k in await list_api_keys(session)
        ]

    for line in run_with_session(load_settings(), work, commit=False):
        click.echo(line)


@apikey.command("revoke")
@click.argument("key_id", type=int)
@handle_errors
def apikey_revoke(key_id: int) -> None:
    """Revoke a key by id; it stops working at once."""

    async def work(session: AsyncSession) -> None:
        await revoke_api_key(session, key_id)

    run_with_session(load_settings(), work)
    click.echo(f"API key {key_id} revoked")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--serve", "then_serve", is_flag=True, help="Serve Vouch after seeding.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--force", is_flag=True, help="Seed even with VOUCH_ENV=production (a production database)."
)
@handle_errors
def demo(as_json: bool, then_serve: bool, host: str, port: int, force: bool) -> None:
    """Seed a realistic demo (idempotent) and print the GraphQL URL, an admin key and a link."""
    from vouch.cli.demo_output import seed_demo

    settings = load_settings()
    if settings.is_production and not force:
        raise ConfigError(
            "refusing to seed demo data (fake advocates and an admin API key) into a production "
            "database (VOUCH_ENV=production); pass --force if you really mean it"
        )
    if then_serve and not _port_free(host, port):
        raise ConfigError(f"port {port} on {host} is already in use; pick another with --port")
    url = database_url(settings)
    _migrate(url)
    if not as_json:
        click.echo(
            "seeding the demo: programs, advocates and signals, links and clicks, journeys, "
            "scores, tiers, rollups and asks ...",
            err=True,
        )
    result = seed_demo(settings, url, base_url=f"http://{host}:{port}" if then_serve else None)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"Demo data: {result['programs']} programs, {result['advocates']} advocates")
        click.echo(f"GraphQL explorer: {result['graphql_url']}")
        click.echo(f"Admin API key (shown once): {result['api_key']}")
        click.echo(f"A share link: {result['share_link']}")
        click.echo(f"RevOps console (sign in with the key): {result['console_url']}")
        click.echo(f"Advocate widget demo (token valid 1 h): {result['widget_demo']}")
    sys.stdout.flush()
    if then_serve:
        serve_app(host, port, 1, migrate_first=False)


from vouch.cli.attribution import rollups_group, webhooks_group  # noqa: E402 - registered last
from vouch.cli.erase import erase  # noqa: E402
from vouch.cli.imports import import_group  # noqa: E402
from vouch.cli.jobs import jobs_group, worker  # noqa: E402

main.add_command(webhooks_group)
main.add_command(rollups_group)
main.add_command(erase)
main.add_command(import_group)
main.add_command(tiers)
main.add_command(asks)
main.add_command(worker)
main.add_command(jobs_group)
main.add_command(rewards)


if __name__ == "__main__":  # pragma: no cover
    main()
