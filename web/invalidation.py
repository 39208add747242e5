"""Each worker listens for cache invalidations (PostgreSQL LISTEN/NOTIFY), so a revoked link, a
paused program, an erased advocate or a revoked API key stops working on every worker at once
instead of after the cache TTL, and a widget's kept answers go when its advocate changes them.
If the listener is down, the TTLs still bound staleness."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from vouch.access.api_keys import KEY_CACHE, KEY_INVALIDATION_CHANNEL
from vouch.attribution.landing import LandingResolver
from vouch.catalog.landing_cache import INVALIDATION_CHANNEL
from vouch.core.widget_cache import WIDGET_CHANNEL, forget_widget
from vouch.web.microsite.click_handoff import ClickHandoff

logger = logging.getLogger("vouch.invalidation")
RETRY_SECONDS = 2.0


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def listen_for_invalidations(
    url: str,
    resolver: LandingResolver,
    *,
    listening: asyncio.Event | None = None,
    handoff: ClickHandoff | None = None,
) -> None:
    """Run until cancelled; reconnects after outages (and then drops the whole cache, since
    notifications sent while disconnected were missed). ``listening`` is set once the
    listener is subscribed and the caches are reset (cleared while it reconnects). The same
    connection carries the workers' click hand-off (``handoff``)."""
    while True:
        connection: Any = None
        try:
            connection = await asyncpg.connect(_dsn(url), timeout=5)
            lost = asyncio.Event()

            def on_landing(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                resolver.invalidate(None if payload == "*" else payload)
                forget_widget()  # what widgets show changed with it (catalog.landing_cache)

            def on_key(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                KEY_CACHE.forget(payload)

            def on_widget(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                forget_widget(int(payload) if payload.isdigit() else None)

            if listening is not None:
                listening.clear()
            connection.add_termination_listener(lambda _conn, lost=lost: lost.set())
            await connection.add_listener(INVALIDATION_CHANNEL, on_landing)
            await connection.add_listener(KEY_INVALIDATION_CHANNEL, on_key)
            await connection.add_listener(WIDGET_CHANNEL, on_widget)
            if handoff is not None:
                await handoff.subscribe(connection)
            resolver.invalidate()
            KEY_CACHE.forget()
            forget_widget()
            if listening is not None:
                listening.set()
            await lost.wait()
        except asyncio.CancelledError:
            raise
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            logger.info(
                "cache invalidation listener waiting for the database: %s", type(exc).__name__
            )
        finally:
            if handoff is not None:
                handoff.unsubscribe()
            if connection is not None and not connection.is_closed():
                connection.terminate()
        await asyncio.sleep(RETRY_SECONDS)
