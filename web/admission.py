"""Admission: a bounded line in front of the database-bound handlers of one worker.

Without it every request starts at once. Under a burst, forty requests parse, validate and
resolve concurrently on one event loop; the dozen that hold a pooled connection sit "idle in
transaction" waiting for their turn on the CPU; and the rest give up after the pool's timeout
with a 503, while PostgreSQL is idle (issue 16).

Here a request waits *before* it starts, in arrival order, for one of ``slots`` places
(default: the pool's size plus its overflow, so a request that has a place gets a connection at
once). At most ``queue`` requests wait (``VOUCH_REQUEST_QUEUE``), each at most ``timeout``
seconds (``VOUCH_REQUEST_QUEUE_TIMEOUT``). Past either bound the request is shed at once with a
503 and ``Retry-After``, before any work is done, so nothing is half-written. Load a worker can
serve within the timeout is queued, never refused.

Landing pages (``GET /r/…``) wait in a line of their own, so that slow API requests cannot keep
them waiting: most are served from the link cache in well under a millisecond, and a burst of
cache misses queues for places instead of piling onto the pool. Not queued at all: health
probes, ``/metrics`` and static files.
"""

from __future__ import annotations

import asyncio
import json

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

SHED_RETRY_AFTER_SECONDS = 1
_UNQUEUED_PREFIXES = ("/static/", "/healthz", "/readyz", "/metrics")
_LANDING_PREFIXES = ("/r/",)

SHED = Counter(
    "vouch_requests_shed_total",
    "Requests answered 503 by admission control, by reason (queue full, waited too long)",
    ["reason"],
)


def line_for(scope: Scope) -> str | None:
    """Which line this request waits in: ``landing`` (link pages), ``api`` (everything else
    that may need the database), or none."""
    path: str = scope["path"]
    if path.startswith(_UNQUEUED_PREFIXES):
        return None
    if scope["method"] in ("GET", "HEAD") and path.startswith(_LANDING_PREFIXES):
        return "landing"
    return "api"


class _Line:
    """Places and a bounded queue in front of them (one semaphore per event loop: an app object
    outlives the loop it was built on in tests)."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.waiting = 0
        self._places: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def places(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._places is None or self._loop is not loop:
            self._places, self._loop, self.waiting = asyncio.Semaphore(self.slots), loop, 0
        return self._places


class AdmissionMiddleware:
    """Two lines, each with ``slots`` places: landing pages, and the rest. Landing pages have
    their own, so slow API requests cannot keep cached pages waiting, and a burst of cold
    landings waits for places instead of piling onto the pool."""

    def __init__(self, app: ASGIApp, *, slots: int, queue: int, timeout: float) -> None:
        if slots < 1 or queue < 0 or timeout <= 0:
            raise ValueError("admission needs slots >= 1, queue >= 0 and timeout > 0")
        self.app = app
        self.queue = queue
        self.timeout = timeout
        self.lines = {"landing": _Line(slots), "api": _Line(slots)}

    @property
    def waiting(self) -> int:
        return sum(line.waiting for line in self.lines.values())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = line_for(scope) if scope["type"] == "http" else None
        if name is None:
            await self.app(scope, receive, send)
            return
        line = self.lines[name]
        places = line.places()
        if places.locked():  # every place is taken, or others are already waiting
            if line.waiting >= self.queue:
                await _shed(send, "queue_full")
                return
            line.waiting += 1
            try:
                await asyncio.wait_for(places.acquire(), self.timeout)
            except TimeoutError:
                await _shed(send, "timeout")
                return
            finally:
                line.waiting -= 1
        else:
            await places.acquire()  # a free place: returns at once
        try:
            await self.app(scope, receive, send)
        finally:
            places.release()


async def _shed(send: Send, reason: str) -> None:
    SHED.labels(reason).inc()
    body = json.dumps(
        {"error": "overloaded", "message": "Vouch is busy; retry in a moment"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(SHED_RETRY_AFTER_SECONDS).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
