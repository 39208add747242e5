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

Not queued: what needs no database in the normal case, so that it answers even while every
place is taken (health probes, ``/metrics``, static files, the widget script, and ``GET /r/…``
landing pages, which are served from the link cache).
"""

from __future__ import annotations

import asyncio
import json

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

SHED_RETRY_AFTER_SECONDS = 1
_UNQUEUED_PREFIXES = ("/static/", "/healthz", "/readyz", "/metrics", "/widget.js")
_UNQUEUED_GET_PREFIXES = ("/r/",)

SHED = Counter(
    "vouch_requests_shed_total",
    "Requests answered 503 by admission control, by reason (queue full, waited too long)",
    ["reason"],
)


def queued(scope: Scope) -> bool:
    """Whether this request waits for a place (it may need a database connection)."""
    path: str = scope["path"]
    if path.startswith(_UNQUEUED_PREFIXES):
        return False
    return not (scope["method"] in ("GET", "HEAD") and path.startswith(_UNQUEUED_GET_PREFIXES))


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, *, slots: int, queue: int, timeout: float) -> None:
        if slots < 1 or queue < 0 or timeout <= 0:
            raise ValueError("admission needs slots >= 1, queue >= 0 and timeout > 0")
        self.app = app
        self.slots = slots
        self.queue = queue
        self.timeout = timeout
        self.waiting = 0
        self._places: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        # One per event loop: an app object outlives the loop it was built on in tests.
        loop = asyncio.get_running_loop()
        if self._places is None or self._loop is not loop:
            self._places, self._loop, self.waiting = asyncio.Semaphore(self.slots), loop, 0
        return self._places

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not queued(scope):
            await self.app(scope, receive, send)
            return
        places = self._semaphore()
        if places.locked():  # every place is taken, or others are already waiting
            if self.waiting >= self.queue:
                await _shed(send, "queue_full")
                return
            self.waiting += 1
            try:
                await asyncio.wait_for(places.acquire(), self.timeout)
            except TimeoutError:
                await _shed(send, "timeout")
                return
            finally:
                self.waiting -= 1
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
