"""The composition root: ``create_app()`` wires settings, engine, GraphQL and the microsite."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from vouch.api import speed
from vouch.api.schema import build_schema
from vouch.api.view import VouchGraphQL
from vouch.attribution.landing import LandingResolver
from vouch.core.codes import LinkCodec
from vouch.core.engine import create_engine, pool_capacity
from vouch.core.logging import configure_logging
from vouch.core.runtime import resolve_database_url
from vouch.core.security import WidgetTokens
from vouch.core.sessions import RequestSessions, session_factory
from vouch.core.settings import Environment, Settings, get_settings
from vouch.core.widget_cache import WidgetResponses
from vouch.jobs.background import background_loops
from vouch.jobs.click_buffer import ClickBuffer
from vouch.jobs.scheduler import run_scheduler
from vouch.web.admission import AdmissionMiddleware
from vouch.web.console.lab import LabConsole
from vouch.web.console.views import Console
from vouch.web.edge import EdgeMiddleware
from vouch.web.errors import EXCEPTION_HANDLERS
from vouch.web.health import healthz, readyz
from vouch.web.inbound.generic import inbound_webhook
from vouch.web.inbound.integrations import Integrations
from vouch.web.invalidation import listen_for_invalidations
from vouch.web.metrics import MetricsMiddleware, metrics
from vouch.web.microsite.click_handoff import ClickHandoff
from vouch.web.microsite.landing import LandingSite
from vouch.web.microsite.share import ShareSite
from vouch.web.microsite.widget import WidgetDemo
from vouch.web.middleware import RequestContextMiddleware
from vouch.web.pages import STATIC, Pages
from vouch.web.replica import ReplicaMonitor, ReplicaSessions
from vouch.web.rest.openapi import openapi_json
from vouch.web.rest.redemptions import RedemptionApi
from vouch.web.rest.reports import report_csv

logger = logging.getLogger("vouch.app")

# Young-generation GC threshold for the server. With 16 pages of referrals in flight, the
# default 700 ran a young collection on nearly every request, each scanning the live objects of
# all requests in flight: 0.25-0.29 ms of GC per page request. At 2,000: 0.13-0.16 ms, with
# pauses no longer than the default's (longest seen 3-4 ms against 4-6 ms). Measured with
# gc.callbacks (bench/RESULTS.md, fourth session).
GC_YOUNG_THRESHOLD = 2_000


@dataclass
class Overrides:
    """What tests inject: a session factory bound to their rolled-back transaction."""

    sessionmaker: async_sessionmaker[AsyncSession] | None = None
    # Where reports read (a read replica); defaults to the primary.
    report_sessionmaker: async_sessionmaker[AsyncSession] | None = None
    # api.speed's pieces to install (the bench and the differential test); None: the setting.
    graphql_speed: frozenset[str] | None = None


def create_app(settings: Settings | None = None, overrides: Overrides | None = None) -> Starlette:
    settings = settings or get_settings()
    overrides = overrides or Overrides()
    codec = LinkCodec(settings.resolved_hashid_salt(), settings.hashid_min_length)
    widget_tokens = WidgetTokens(settings.resolved_secret(), settings.widget_token_ttl_seconds)
    inbound_secret = settings.inbound_webhook_secret_or_none()
    engine_holder: dict[str, AsyncEngine] = {}
    app_state: dict[str, AsyncEngine] = {}

    def _factory() -> async_sessionmaker[AsyncSession]:
        if overrides.sessionmaker is not None:
            return overrides.sessionmaker
        if "engine" not in engine_holder:
            engine_holder["engine"] = create_engine(
                resolve_database_url(settings),
                pool_size=settings.db_pool_size,
                pool_timeout=settings.db_pool_timeout,
                statement_timeout_ms=settings.db_statement_timeout_ms,
                idle_in_transaction_timeout_ms=settings.db_idle_in_transaction_timeout_ms,
                pgbouncer=settings.db_pgbouncer,
            )
            app_state["engine"] = engine_holder["engine"]
        return session_factory(engine_holder["engine"])

    sessions = RequestSessions(_factory())
    report_sessions = sessions
    replica_monitor: ReplicaMonitor | None = None
    if overrides.report_sessionmaker is not None:
        report_sessions = RequestSessions(overrides.report_sessionmaker, name="replica")
    elif settings.database_replica_url and overrides.sessionmaker is None:
        engine_holder["replica"] = create_engine(
            settings.database_replica_url,
            pool_size=settings.db_pool_size,
            pool_timeout=settings.db_pool_timeout,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            idle_in_transaction_timeout_ms=settings.db_idle_in_transaction_timeout_ms,
            pgbouncer=settings.db_pgbouncer,
        )
        replica_monitor = ReplicaMonitor(
            engine_holder["replica"],
            interval=settings.replica_check_interval,
            max_lag=settings.replica_max_lag,
        )
        report_sessions = ReplicaSessions(
            session_factory(engine_holder["replica"]), primary=sessions, monitor=replica_monitor
        )
    clicks = ClickBuffer(
        sessions.factory, max_size=settings.click_buffer_max, interval=settings.click_flush_interval
    )

    handoff = ClickHandoff(clicks)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Start-up objects (modules, schema, templates: ~130k) never die; freezing them keeps
        # full garbage collections from scanning them, a ~50 ms pause that set the p99.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        flusher = asyncio.create_task(clicks.run(), name="vouch-click-flusher")
        background = [flusher]
        if overrides.sessionmaker is None:
            background.append(
                asyncio.create_task(
                    listen_for_invalidations(
                        settings.database_listen_url or resolve_database_url(settings),
                        resolver,
                        handoff=handoff,
                    ),
                    name="vouch-cache-invalidation",
                )
            )
        if overrides.sessionmaker is None:
            for name, start_loop in background_loops(sessions.factory, settings):
                background.append(asyncio.create_task(start_loop(), name=name))
        if replica_monitor is not None:
            await replica_monitor.check()  # reports know where to read from the first request
            background.append(asyncio.create_task(replica_monitor.run(), name="vouch-replica"))
        scheduler_stop = asyncio.Event()
        scheduler: list[asyncio.Task[None]] = []
        if settings.scheduler and overrides.sessionmaker is None:
            scheduler.append(
                asyncio.create_task(
                    run_scheduler(
                        resolve_database_url(settings),
                        sessions.factory,
                        settings,
                        stop=scheduler_stop,
                        connect_args={"statement_cache_size": 0} if settings.db_pgbouncer else None,
                    ),
                    name="vouch-scheduler",
                )
            )
            background += scheduler
        try:
            yield
        finally:
            scheduler_stop.set()  # a job in progress gets a moment to finish before cancel
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*scheduler, return_exceptions=True), timeout=5
                )
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await clicks.flush()  # nothing buffered is lost on a clean shutdown
            for engine in engine_holder.values():
                await engine.dispose()

    speed_pieces = (
        overrides.graphql_speed
        if overrides.graphql_speed is not None
        else speed.pieces(settings.graphql_fast_path)
    )
    graphql = VouchGraphQL(
        build_schema(production=settings.is_production, fast=speed_pieces),
        fast_post=speed.POST_VIEW in speed_pieces,
        settings=settings,
        sessions=sessions,
        codec=codec,
        widget_tokens=widget_tokens,
        report_sessions=report_sessions if report_sessions is not sessions else None,
        widget_cache=(
            WidgetResponses(settings.widget_cache_seconds)
            if settings.widget_cache_seconds > 0
            else None
        ),
    )
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/webhooks/inbound", inbound_webhook, methods=["POST"]),
        Route("/reports/{name}.csv", report_csv, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
    pages = Pages(settings.public_base_url)
    resolver = LandingResolver(codec)
    routes += LandingSite(
        settings=settings,
        pages=pages,
        resolver=resolver,
        clicks=clicks,
        sessions=sessions,
        handoff=handoff,
    ).routes()
    routes += ShareSite(pages=pages, sessions=sessions, tokens=widget_tokens).routes()
    routes += RedemptionApi(sessions).routes()
    routes += Integrations(settings, sessions).routes()
    routes += Console(
        settings=settings, pages=pages, sessions=sessions, report_sessions=report_sessions
    ).routes()
    routes += LabConsole(
        settings=settings, pages=pages, sessions=sessions, report_sessions=report_sessions
    ).routes()
    routes += WidgetDemo(pages=pages, tokens=widget_tokens).routes()
    routes.append(Mount("/static", StaticFiles(directory=STATIC), name="static"))
    middleware = [
        Middleware(MetricsMiddleware),
        Middleware(RequestContextMiddleware),
        Middleware(EdgeMiddleware, settings=settings),
        Middleware(
            AdmissionMiddleware,
            slots=settings.request_slots or pool_capacity(settings.db_pool_size),
            queue=settings.request_queue,
            timeout=settings.request_queue_timeout,
        ),
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            allow_credentials=False,
            max_age=600,
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.report_sessions = report_sessions
    app.state.replica_monitor = replica_monitor
    app.state.codec = codec
    app.state.widget_tokens = widget_tokens
    app.state.widget_cache = graphql.widget_cache
    app.state.inbound_secret = inbound_secret
    app.state.engine = app_state.get("engine")
    if settings.env is not Environment.TEST:
        configure_logging()
    if inbound_secret is None:
        logger.warning(
            "VOUCH_INBOUND_WEBHOOK_SECRET is not set: inbound webhooks are disabled "
            "(POST /webhooks/inbound answers 503)"
        )
    app.state.clicks = clicks
    app.state.landing_resolver = resolver
    return app
