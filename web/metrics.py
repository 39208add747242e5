"""Prometheus metrics at ``/metrics``, served to loopback clients only (scrape from the host
or a sidecar; nothing unlocks it from elsewhere).

With ``vouch serve --workers N`` (N > 1) the CLI points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before the workers start, and a scrape reads every worker's values from it
(prometheus_client's multiprocess mode): counters add up instead of alternating between
workers. Business totals are read from the database at scrape time.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vouch.attribution.counts import business_counts
from vouch.core.clock import utcnow
from vouch.jobs.definitions import JOBS, schedules
from vouch.jobs.runs import job_statuses
from vouch.models import JobOutcome
from vouch.models.enums import ConversionKind, DeliveryStatus, RewardState

REQUESTS = Counter("vouch_http_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram(
    "vouch_http_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
# Clicks recorded and dropped are counted where it happens (attribution.clicks).
CLICKS_BUFFERED = Gauge(
    "vouch_clicks_buffered", "Clicks waiting in the workers' buffers", multiprocess_mode="livesum"
)
POOL_IN_USE = Gauge(
    "vouch_db_pool_checked_out", "Database connections in use", multiprocess_mode="livesum"
)
# Read from the database at scrape time: the latest scrape's value, whichever worker made it.
OUTBOX_DEPTH = Gauge(
    "vouch_outbox_pending", "Webhook deliveries waiting to be sent", multiprocess_mode="mostrecent"
)
REFERRALS = Gauge(
    "vouch_referrals", "Referrals by status", ["status"], multiprocess_mode="mostrecent"
)
OFFER_CLAIMS = Gauge(
    "vouch_offer_claims",
    "Offer claims: redemption codes issued (one per claim) and redeemed",
    ["state"],
    multiprocess_mode="mostrecent",
)
CONVERSIONS = Gauge(
    "vouch_conversions", "Conversions reported, by kind", ["kind"], multiprocess_mode="mostrecent"
)
REWARDS = Gauge("vouch_rewards", "Rewards by state", ["state"], multiprocess_mode="mostrecent")
DELIVERIES = Gauge(
    "vouch_webhook_deliveries",
    "Outbound webhook deliveries by outcome (pending, delivered, dead)",
    ["status"],
    multiprocess_mode="mostrecent",
)
DEAD_LETTERS = Gauge(
    "vouch_webhook_dead_letters",
    "Outbound webhook deliveries given up on (status dead)",
    multiprocess_mode="mostrecent",
)
INBOUND_REFUSALS = Counter(
    "vouch_inbound_refusals", "Inbound webhooks refused, by error code", ["reason"]
)
_KNOWN: dict[Gauge, tuple[str, ...]] = {
    REFERRALS: (
        "lead",
        "qualified",
        "opportunity",
        "won",
        "lost",
        "churned",
        "refunded",
        "rejected",
    ),
    OFFER_CLAIMS: ("issued", "redeemed"),
    CONVERSIONS: tuple(ConversionKind),
    REWARDS: tuple(RewardState),
    DELIVERIES: tuple(DeliveryStatus),
}

# Scheduled jobs, read from the shared history on each scrape (the same on every worker and
# host; definitions in vouch.jobs.runs). Alert on vouch_job_consecutive_failures > 0.
JOB_LAST_RUN = Gauge(
    "vouch_job_last_run_timestamp_seconds", "When the job's last attempt started", ["job"]
)
JOB_LAST_DURATION = Gauge(
    "vouch_job_last_duration_seconds", "How long the job's last finished attempt took", ["job"]
)
JOB_LAST_SUCCESS = Gauge(
    "vouch_job_last_success", "1 if the job's last attempt succeeded, 0 if it failed", ["job"]
)
JOB_FAILURES = Gauge(
    "vouch_job_consecutive_failures", "Failed attempts since the job's last success", ["job"]
)
JOB_NEXT_RUN = Gauge("vouch_job_next_run_timestamp_seconds", "When the job is next due", ["job"])

LOOPBACK = {"127.0.0.1", "::1"}


def _route_label(scope: Scope) -> str:
    """The template of the route that matched (Starlette's router leaves it in the scope), so
    the label set is the route table's, whatever paths outsiders send; ``unmatched`` for a
    404 and for what was answered before routing (a refusal at the edge, a shed request)."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    return "/r/{code}" if scope.get("path", "").startswith("/r/") else "unmatched"


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            requests, latency = _series(_route_label(scope), status)
            requests.inc()
            latency.observe(time.perf_counter() - start)


# (route, status) -> the request counter's and the latency histogram's labelled children:
# ``labels()`` validates, locks and builds its key on every call (~3 µs a request of the ~4
# the two metrics cost). Only the children prometheus_client itself keeps are held here.
_SERIES: dict[tuple[str, int], tuple[Any, Any]] = {}


def _series(route: str, status: int) -> tuple[Any, Any]:
    found = _SERIES.get((route, status))
    if found is None:
        found = _SERIES[(route, status)] = (
            REQUESTS.labels(route, str(status)),
            LATENCY.labels(route),
        )
    return found


async def metrics(request: Request) -> Response:
    client = request.client.host if request.client else ""
    if client not in LOOPBACK:
        return Response("metrics are served to loopback clients only\n", status_code=403)
    engine = getattr(request.app.state, "engine", None)
    if engine is not None:
        POOL_IN_USE.set(engine.pool.checkedout())
    clicks = getattr(request.app.state, "clicks", None)
    if clicks is not None:
        CLICKS_BUFFERED.set(len(clicks))
    session = request.app.state.sessions.get(request.scope.setdefault("state", {}))
    chosen = schedules(request.app.state.settings)
    table = [(job.name, job.description, chosen.get(job.name)) for job in JOBS]
    for status in await job_statuses(session, table, now=utcnow()):
        name = status.name
        if status.last_started_at is not None:
            JOB_LAST_RUN.labels(name).set(status.last_started_at.timestamp())
        if status.last_duration_seconds is not None:
            JOB_LAST_DURATION.labels(name).set(status.last_duration_seconds)
        if status.last_outcome in (JobOutcome.SUCCEEDED, JobOutcome.FAILED):
            JOB_LAST_SUCCESS.labels(name).set(int(status.last_outcome is JobOutcome.SUCCEEDED))
        JOB_FAILURES.labels(name).set(status.consecutive_failures)
        if status.next_run_at is not None:
            JOB_NEXT_RUN.labels(name).set(status.next_run_at.timestamp())
    counts = await business_counts(session)
    for gauge, values in (
        (REFERRALS, counts.referrals),
        (OFFER_CLAIMS, counts.offer_claims),
        (CONVERSIONS, counts.conversions),
        (REWARDS, counts.rewards),
        (DELIVERIES, counts.deliveries),
    ):
        for label in {*_KNOWN[gauge], *values}:
            gauge.labels(label).set(values.get(label, 0))
    OUTBOX_DEPTH.set(counts.deliveries.get("pending", 0))
    DEAD_LETTERS.set(counts.deliveries.get("dead", 0))
    if request.app.state.settings.prometheus_multiproc_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
