"""Admission control (web/admission.py): requests wait in line for a place instead of failing
at the pool's timeout; past the line's bounds they are shed at once with 503 + Retry-After."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from vouch.web.admission import AdmissionMiddleware, line_for


def app_with(gate: asyncio.Event, *, slots: int, queue: int, timeout: float) -> AdmissionMiddleware:
    async def work(request: Request) -> PlainTextResponse:
        await gate.wait()
        return PlainTextResponse("done")

    async def landing(request: Request) -> PlainTextResponse:
        return PlainTextResponse("landing")

    app = Starlette(routes=[Route("/graphql", work, methods=["POST"]), Route("/r/{code}", landing)])
    return AdmissionMiddleware(app, slots=slots, queue=queue, timeout=timeout)


def client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")  # type: ignore[arg-type]


async def test_a_burst_larger_than_the_places_is_queued_not_refused():
    gate = asyncio.Event()
    app = app_with(gate, slots=2, queue=100, timeout=5)
    async with client(app) as c:
        requests = [asyncio.create_task(c.post("/graphql")) for _ in range(40)]
        await asyncio.sleep(0.1)
        assert app.waiting == 38  # two working, the rest in line
        gate.set()
        answers = await asyncio.gather(*requests)
    assert [a.status_code for a in answers] == [200] * 40
    assert app.waiting == 0


async def test_past_the_queue_bound_requests_are_shed_at_once_with_retry_after():
    gate = asyncio.Event()
    app = app_with(gate, slots=1, queue=2, timeout=5)
    async with client(app) as c:
        requests = [asyncio.create_task(c.post("/graphql")) for _ in range(3)]
        await asyncio.sleep(0.1)
        shed = await asyncio.wait_for(c.post("/graphql"), 1)
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "1"
        assert shed.json()["error"] == "overloaded"
        gate.set()
        assert [a.status_code for a in await asyncio.gather(*requests)] == [200] * 3


async def test_a_request_that_waits_longer_than_the_timeout_is_shed():
    gate = asyncio.Event()
    app = app_with(gate, slots=1, queue=10, timeout=0.2)
    async with client(app) as c:
        working = asyncio.create_task(c.post("/graphql"))
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        started = loop.time()
        late = await c.post("/graphql")
        assert late.status_code == 503
        assert 0.15 < loop.time() - started < 1.0
        assert app.waiting == 0
        gate.set()
        assert (await working).status_code == 200
        assert (await c.post("/graphql")).status_code == 200  # the place was given back


async def test_landing_pages_do_not_wait_behind_api_requests():
    gate = asyncio.Event()
    app = app_with(gate, slots=1, queue=0, timeout=5)
    async with client(app) as c:
        working = asyncio.create_task(c.post("/graphql"))
        await asyncio.sleep(0.05)
        assert (await asyncio.wait_for(c.get("/r/abc"), 1)).status_code == 200
        gate.set()
        await working


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/r/abc", "landing"),
        ("HEAD", "/r/abc", "landing"),
        ("POST", "/r/abc/claim", "api"),
        ("GET", "/healthz", None),
        ("GET", "/static/widget.js", None),
        ("GET", "/metrics", None),
        ("POST", "/graphql", "api"),
        ("GET", "/graphql", "api"),
        ("POST", "/api/conversions", "api"),
        ("GET", "/console", "api"),
    ],
)
def test_which_line_a_request_waits_in(method, path, expected):
    assert line_for({"type": "http", "method": method, "path": path}) == expected
