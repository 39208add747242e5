"""The apps bench/landing.py measures, each served by one uvicorn worker.

- ``vouch``: the real app (``create_app()``), settings from the environment.
- ``baseline``: a hand-written Starlette + asyncpg handler doing the same job the simple way:
  decode the code, insert the click (one INSERT .. SELECT that also checks the link), render
  the same offer template.
- ``hello``: a bare Starlette hello-world.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from vouch.core.codes import LinkCodec
from vouch.web.pages import PAGE_HEADERS, Pages


def vouch() -> Any:
    from vouch.web.app import create_app

    return create_app()


def hello() -> Starlette:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/hello", endpoint)])


def baseline() -> Starlette:
    dsn = os.environ["BENCH_ASYNCPG_DSN"]
    codec = LinkCodec(
        os.environ["VOUCH_HASHID_SALT"], int(os.environ.get("VOUCH_HASHID_MIN_LENGTH", "10"))
    )
    pages = Pages("http://127.0.0.1")
    template = pages.env.get_template("offer.html")
    t = pages.strings.translator("en")
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        state["pool"] = await asyncpg.create_pool(dsn, min_size=5, max_size=10)
        yield
        await state["pool"].close()

    async def offer(request: Request) -> Response:
        code = request.path_params["code"]
        decoded = codec.decode(code)
        if decoded is None:
            return HTMLResponse("not found", status_code=404)
        row = await state["pool"].fetchrow(
            "INSERT INTO clicks (link_id, program_id, occurred_at, channel, utm, ip_hash,"
            " user_agent, is_bot, visitor_id)"
            " SELECT l.id, l.program_id, $3, l.channel, '{}'::jsonb, $4, $5, false, $6"
            " FROM referral_links l WHERE l.id = $1 AND l.nonce = $2 AND l.status = 'active'"
            " RETURNING program_id",
            decoded.link_id,
            decoded.nonce,
            datetime.now(UTC),
            "0" * 32,
            request.headers.get("user-agent", "")[:512],
            "1" * 32,
        )
        if row is None:
            return HTMLResponse("not found", status_code=404)
        html = template.render(
            t=t,
            lang="en",
            base_url="http://127.0.0.1",
            landing=state["landing"](code),
            state="open",
            first_name="Grace",
            expires=None,
            values={},
            error=None,
            error_key=None,
            error_field=None,
            csrf="x" * 90,
        )
        return HTMLResponse(html, headers=PAGE_HEADERS)

    from vouch.attribution.landing import Landing

    def landing(code: str) -> Landing:
        return Landing(
            link_id=1,
            code=code,
            channel="direct",
            advocate_id=1,
            advocate_first_name="Grace",
            program_id=1,
            program_name="Acme Analytics",
            program_status="active",
            attribution_model="last_touch",
            attribution_window_days=30,
            require_tracking_consent=False,
            offer_title="20% off your first year",
            offer_terms="New customers only.",
            offer_expires_at=None,
        )

    state["landing"] = landing
    return Starlette(routes=[Route("/r/{code}", offer)], lifespan=lifespan)
