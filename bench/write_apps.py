"""Baselines for bench/writes.py: hand-written Starlette + asyncpg handlers doing the same
database work as Vouch's claim and conversion, without Vouch's layers."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from vouch.core.codes import LinkCodec


def baseline() -> Starlette:
    dsn = os.environ["BENCH_ASYNCPG_DSN"]
    codec = LinkCodec(os.environ["VOUCH_HASHID_SALT"], 10)
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        state["pool"] = await asyncpg.create_pool(dsn, min_size=5, max_size=10)
        yield
        await state["pool"].close()

    async def claim(request: Request) -> Response:
        decoded = codec.decode(request.path_params["code"])
        form = await request.form()
        email = str(form.get("email", "")).strip().lower()
        if decoded is None or "@" not in email or form.get("consent") != "yes":
            return Response("bad request", status_code=400)
        now = datetime.now(UTC)
        async with state["pool"].acquire() as conn, conn.transaction():
            link = await conn.fetchrow(
                "SELECT id, program_id, advocate_id FROM referral_links"
                " WHERE id = $1 AND nonce = $2 AND status = 'active'",
                decoded.link_id,
                decoded.nonce,
            )
            if link is None:
                return Response("not found", status_code=404)
            referral_id = await conn.fetchval(
                "INSERT INTO referrals (program_id, advocate_id, link_id, person_key, email,"
                " status, source, flags, moderation, consent, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $4, 'lead', 'landing', '{}', 'clear', true, $5, $5)"
                " ON CONFLICT (program_id, person_key) DO NOTHING RETURNING id",
                link["program_id"],
                link["advocate_id"],
                link["id"],
                email,
                now,
            )
            if referral_id is not None:
                await conn.execute(
                    "INSERT INTO referral_events (referral_id, to_status, at, source, detail)"
                    " VALUES ($1, 'lead', $2, 'landing', '{}')",
                    referral_id,
                    now,
                )
                await conn.execute(
                    "INSERT INTO attribution_decisions (referral_id, advocate_id, link_id, rule,"
                    " rules_version, window_days, evidence, actor, reason, is_current,"
                    " decided_at) VALUES ($1, $2, $3, 'last_touch', 1, 30, 'form', 'landing',"
                    " '', true, $4)",
                    referral_id,
                    link["advocate_id"],
                    link["id"],
                    now,
                )
                await conn.execute(
                    "INSERT INTO offer_redemptions (referral_id, program_id, code, issued_at,"
                    " expires_at) VALUES ($1, $2, $3, $4, $5)",
                    referral_id,
                    link["program_id"],
                    secrets.token_hex(8).upper(),
                    now,
                    now + timedelta(days=90),
                )
        return RedirectResponse("/claimed", status_code=303)

    async def conversion(request: Request) -> Response:
        body = json.loads(await request.body())
        key = request.headers["idempotency-key"]
        async with state["pool"].acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                "INSERT INTO idempotency_keys (scope, key, request_hash, response, created_at)"
                " VALUES ('bench', $1, $2, '{}', now()) ON CONFLICT DO NOTHING RETURNING id",
                key,
                "x" * 64,
            )
            referral_id = await conn.fetchval(
                "SELECT r.id FROM referrals r JOIN offer_redemptions o ON o.referral_id = r.id"
                " WHERE o.code = $1 FOR UPDATE OF r",
                body["code"],
            )
            if fresh is not None and referral_id is not None:
                await conn.execute(
                    "INSERT INTO conversions (referral_id, kind, external_ref, amount_minor,"
                    " currency, occurred_at, created_at) VALUES ($1, 'purchase', $2, $3, 'USD',"
                    " now(), now()) ON CONFLICT DO NOTHING",
                    referral_id,
                    body["ref"],
                    body["amount"],
                )
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/r/{code}/claim", claim, methods=["POST"]),
            Route("/conversions", conversion, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
