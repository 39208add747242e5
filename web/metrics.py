"""Prometheus metrics. ``/metrics`` needs an admin API key or a loopback client."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vouch.attribution.webhooks import pending_count
from vouch.core.clock import utcnow
from vouch.jobs.definitions import JOBS, schedules
from vouch.jobs.runs import job_statuses
from vouch.models import JobOutcome

REQUESTS = Counter("vouch_http_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram(
    "vouch_http_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
# Clicks recorded and dropped are counted where it happens (attribution.clicks).
CLICKS_BUFFERED = Gauge("vouch_clicks_buffered", "Clicks waiting in this worker's buffer")
OUTBOX_DEPTH = Gauge("vouch_outbox_pending", "Webhook deliveries waiting to be sent")
POOL_IN_USE = Gauge("vouch_db_pool_checked_out", "Database connections in use in this worker")

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
    path: str = scope.get("path", "")
    if path.startswith("/r/"):
        return "/r/{code}"
    if path.startswith("/static/"):
        return "/static"
    return path if path.count("/") <= 2 and len(path) <= 40 else "other"


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
            route = _route_label(scope)
            REQUESTS.labels(route, str(status)).inc()
            LATENCY.labels(route).observe(time.perf_counter() - start)


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
    OUTBOX_DEPTH.set(await pending_count(session))
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
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
