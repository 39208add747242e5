"""Baselines for bench/writes.py: hand-written Starlette + asyncpg handlers doing the same
database work as Vouch's claim and conversion (full parity, issue 16), without Vouch's layers.

Each handler writes the rows Vouch writes and reads what Vouch must read to decide, in the same
transactions, with the same locks, in as few round trips as a careful engineer would use:

claim: every step Vouch's handler takes, hand-written (issue 16: "write the hand-written
    versions of every step Vouch takes"): the code decoded and its link read and checked (nonce,
    status, erased advocate, draft program; kept per code, as Vouch's resolver keeps landings),
    the CSRF double-submit check (HMAC), the address validated and normalised with
    email_validator, the client's IP hashed under the day's key, the claimed-code token and the
    claims cookie signed (HMAC). Then the rate-limit hit on its own in autocommit and one
    transaction of Vouch's own statements, the same SQL text (``claims._CONTEXT``,
    ``claims._CREATE``, ``fraud._COUNTS``, ``lifecycle._ANNOUNCE``, ``rewards._EARN``), so the
    ratio measures what Vouch's layers cost around them: program, erased-person check, signup
    rules, link and advocate · referral (one per person), redemption code, attribution
    decision · fraud counts · flags, first lifecycle event, rollup contribution (both
    rollups), outbox ``referral.created`` with its deliveries · the friend's reward, its
    history line, outbox ``reward.created``

conversion (one transaction): Vouch's own statements, the same SQL text
    (``idempotency._CLAIM``, ``redemptions._LOCK_BY_CODE``, ``redemptions._INSERT``,
    ``lifecycle._MOVE``, ``rewards._LOCK_ADVOCATE``, ``rewards._STANDING``, ``rewards._EARN``):
    idempotency key · referral locked by redemption code with its program and qualified and
    won rules · conversion (once per reference) with its outbox ``conversion.recorded`` and
    the key's stored answer · status won with its lifecycle event and outbox
    ``referral.status_changed`` · advocate lock · ladder ordinal and cap count · the
    advocate's reward with its history line and outbox ``reward.created``

revenue (one transaction): Vouch's own statements, the same SQL text (``idempotency._CLAIM``,
    ``revenue._DEALS``, ``revenue._LOCK_REFERRAL``, ``revenue._INSERT``): idempotency key · the
    deal by CRM id (two rows at most: an id two CRMs share is refused) · the referral locked
    with its program's currency and settings and its revenue rules · the event (once per
    billing id) with what it adds to both rollups, its outbox ``revenue.recorded`` and the
    key's stored answer (whether the billing id was seen before is asked only when a date
    check refuses the charge, as in Vouch; the program shares no revenue, so no reward)

opportunity upsert (one transaction; every statement Vouch runs for a keyed deal push linked
    to a referral, in its order, the same SQL text: ``opportunities._LINK_AND_CURRENCY``,
    ``_LOCK_WITH_RULES``, ``_LOCK_DEAL``, ``_INSERT_DEAL``, ``_DEAL_CHANGED``,
    ``_DEAL_UPDATED``): idempotency key · the deal's current link and currency · the referral
    locked with its program's settings and the rules its move may earn (the rollup and the
    move take no lock of their own, the move reads no rules) · a new deal inserted with its
    history line, then what it adds to both rollups with its outbox ``opportunity.updated``
    and the key's answer; an existing deal locked (its close date read with it), then its
    update, its stage/amount history line, what the change adds to both rollups (the deal's
    own rows before and after), its outbox event and the key's answer in one statement · the
    referral moved (lead → opportunity, → won; ``lifecycle._MOVE``: status, lifecycle event,
    outbox ``referral.status_changed``) · (won) whether it was won before, the advocate lock,
    ladder ordinal and cap count (``rewards._STANDING``), the advocate's reward with its
    history line and outbox ``reward.created`` (``rewards._EARN``)

The SQL that is one definition in Vouch (the rollup contribution, the outbox insert) is the
same text here, so the two cannot drift; everything else is written out below.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg
from email_validator import EmailNotValidError, validate_email
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from vouch.access.idempotency import _CLAIM as CLAIM_KEY_SQL
from vouch.access.idempotency import _STORE as STORE_KEY_SQL
from vouch.attribution.claims import _CONTEXT as CONTEXT_SQL
from vouch.attribution.claims import _CREATE as CREATE_SQL
from vouch.attribution.fraud import _COUNTS as COUNTS_SQL
from vouch.attribution.landing import _LANDING as LANDING
from vouch.attribution.lifecycle import _ANNOUNCE as ANNOUNCE_SQL
from vouch.attribution.lifecycle import _MOVE as MOVE_SQL
from vouch.attribution.lifecycle import _WON_BEFORE as WON_BEFORE_SQL
from vouch.attribution.opportunities import _DEAL_CHANGED as DEAL_CHANGED_SQL
from vouch.attribution.opportunities import _DEAL_UPDATED as DEAL_UPDATED_SQL
from vouch.attribution.opportunities import _INSERT_DEAL as INSERT_DEAL_SQL
from vouch.attribution.opportunities import _LINK_AND_CURRENCY as DEAL_LINK_SQL
from vouch.attribution.opportunities import _LOCK_DEAL as LOCK_DEAL_SQL
from vouch.attribution.opportunities import _LOCK_WITH_RULES as DEAL_REFERRAL_SQL
from vouch.attribution.redemptions import _INSERT as CONVERSION_SQL
from vouch.attribution.redemptions import _LOCK_BY_CODE as LOCK_BY_CODE_SQL
from vouch.attribution.revenue import _DEALS as REVENUE_DEALS_SQL
from vouch.attribution.revenue import _INSERT as REVENUE_INSERT_SQL
from vouch.attribution.revenue import _LOCK_REFERRAL as REVENUE_LOCK_SQL
from vouch.attribution.rewards import _EARN as EARN_SQL
from vouch.attribution.rewards import _LOCK_ADVOCATE as LOCK_ADVOCATE_SQL
from vouch.attribution.rewards import _STANDING as STANDING_SQL
from vouch.attribution.rollups import _ADD_CONTRIBUTIONS, deal_change_args
from vouch.attribution.webhooks import _ENQUEUE
from vouch.core.codes import LinkCodec
from vouch.core.money import CURRENCIES
from vouch.models import Opportunity, Referral
from vouch.web.microsite.landing import CLAIMED_MAX_AGE, CSRF_MAX_AGE

ROLLUP_SQL = str(_ADD_CONTRIBUTIONS.compile()).replace(":ids", "$1")
OUTBOX_SQL = (
    str(_ENQUEUE.compile())
    .replace(":event_type", "$1")
    .replace(":payload", "$2::jsonb")
    .replace(":now", "$3")
    .replace(":pending", "'pending'")
)
LOCK_NAMESPACE = 7_300_001
DEAL_UPDATED_COLUMNS = (
    "referral_id",
    "program_id",
    "kind",
    "name",
    "amount_minor",
    "currency",
    "stage",
    "status",
    "close_date",
    "owner",
)
OPPORTUNITY_FIELDS = [column.name for column in Opportunity.__table__.columns]
REFERRAL_COLUMNS = [column.name for column in Referral.__table__.columns]


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def deal_change(
    referral_id: int, before: dict[str, Any] | None, after: dict[str, Any]
) -> list[Any]:
    """``_DEAL_CHANGED``'s $1-$10 for a change to one deal (Vouch's own
    ``rollups.deal_change_args``, as the SQL is Vouch's own): empty arrays when it adds
    nothing."""
    old = SimpleNamespace(**before) if before is not None else None
    new = SimpleNamespace(**after)
    return deal_change_args(referral_id, after["id"], old, new) or [
        referral_id,
        *[[]] * 6,
        after["id"],
        after["kind"],
        after["kind"],
    ]


def opportunity_json(deal: dict[str, Any]) -> str:
    return json.dumps(
        {
            "opportunity_id": deal["id"],
            "provider": deal["provider"],
            "crm_id": deal["crm_id"],
            "referral_id": deal["referral_id"],
            "program_id": deal["program_id"],
            "kind": deal["kind"],
            "stage": deal["stage"],
            "status": deal["status"],
            "amount_minor": deal["amount_minor"],
            "currency": deal["currency"],
        }
    )


def baseline() -> Starlette:
    dsn = os.environ["BENCH_ASYNCPG_DSN"]
    codec = LinkCodec(os.environ["VOUCH_HASHID_SALT"], 10)
    state: dict[str, Any] = {"landings": {}, "keys": {}}
    secret = os.environ["VOUCH_SECRET_KEY"].encode()

    async def init(conn: asyncpg.Connection) -> None:
        for name in ("json", "jsonb"):  # JSON text or a value to encode; decoded on the way out
            await conn.set_type_codec(name, encoder=_json, decoder=json.loads, schema="pg_catalog")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        state["pool"] = await asyncpg.create_pool(dsn, min_size=5, max_size=15, init=init)
        yield
        await state["pool"].close()

    async def outbox(
        conn: asyncpg.Connection, event: str, payload: dict[str, Any], now: datetime
    ) -> None:
        await conn.fetchval(OUTBOX_SQL, event, payload, now)

    async def earn_rule(
        conn: asyncpg.Connection,
        *,
        program_id: int,
        referral_id: int,
        beneficiary: int | None,
        rule: Any,
        ordinal: int,
        now: datetime,
    ) -> None:
        """One reward with its history line and ``reward.created`` (``rewards._EARN``)."""
        amount = rule["amount_minor"]
        await conn.fetchrow(
            EARN_SQL,
            program_id,
            rule["id"],
            referral_id,
            beneficiary,
            rule["side"],
            "",
            rule["kind"],
            amount,
            rule["currency"],
            rule["points"],
            "pending",
            now + timedelta(days=rule["clawback_days"]),
            0,
            None,
            now,
            rule["trigger"],
            "system",
            f"{rule['trigger']} (rule '{rule['name']}', referral #{ordinal})",
            json.dumps(
                {
                    "program_id": program_id,
                    "referral_id": referral_id,
                    "advocate_id": beneficiary,
                    "side": rule["side"],
                    "kind": rule["kind"],
                    "amount_minor": amount,
                    "currency": rule["currency"],
                    "points": rule["points"],
                    "state": "pending",
                    "held_until": None,
                }
            ),
        )

    async def earn(
        conn: asyncpg.Connection,
        referral: asyncpg.Record,
        rules: list[dict[str, Any]],
        now: datetime,
    ) -> None:
        """The reward engine's work for one event on rules read already: advocate lock, ladder
        position and cap (``rewards._STANDING``), the reward, its history line and its
        webhook."""
        if not rules:
            return
        await conn.execute(LOCK_ADVOCATE_SQL, LOCK_NAMESPACE, referral["advocate_id"])
        for rule in rules:
            referrer = rule["side"] == "referrer"
            capped = referrer and rule["cap_count"] is not None
            ordinal, used = await conn.fetchrow(
                STANDING_SQL[rule["side"]],
                referral["program_id"],
                referral["advocate_id"],
                referral["id"],
                rule["trigger"],
                rule["side"],
                rule["kind"],
                rule["id"] if capped else None,
                now - timedelta(days=rule["cap_period_days"] if capped else 0),
            )
            if capped and used >= rule["cap_count"]:
                continue
            await earn_rule(
                conn,
                program_id=referral["program_id"],
                referral_id=referral["id"],
                beneficiary=referral["advocate_id"] if referrer else None,
                rule=rule,
                ordinal=ordinal + 1,
                now=now,
            )

    def mac(message: str, length: int) -> str:
        return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()[:length]

    async def landing_for(code: str) -> tuple[int, int] | None:
        """(link, program) of a live link whose code decodes with the right nonce; kept per
        code as Vouch's resolver keeps landings (the bench's links are all live)."""
        found = state["landings"].get(code)
        if found is None:
            decoded = codec.decode(code)
            if decoded is None:
                return None
            async with state["pool"].acquire() as conn:
                row = await conn.fetchrow(
                    LANDING.sql,
                    *(
                        {"link_id": decoded.link_id}.get(n, LANDING.bound.get(n))
                        for n in LANDING.names
                    ),
                )
            if (
                row is None
                or row[1] != decoded.nonce
                or row[2] != "active"
                or row[6] is not None
                or row[9] == "draft"
            ):
                return None
            found = state["landings"][code] = (decoded.link_id, row[7])
        return found  # type: ignore[no-any-return]

    def csrf_ok(cookie: str, token: str) -> bool:
        issued, _, tag = token.partition(".")
        if len(cookie) != 32 or not issued or len(issued) > 12:
            return False
        try:
            age = time.time() - int(issued, 16)
        except ValueError:
            return False
        if not -60 <= age <= CSRF_MAX_AGE:
            return False
        return hmac.compare_digest(tag, mac(f"vouch.csrf.v1:{cookie}:{issued}", 40))

    async def claim(request: Request) -> Response:
        """Every step of Vouch's claim, hand-written: the link resolved (code, nonce, status),
        the CSRF double-submit check, the address validated and normalised (email_validator,
        as Vouch), the rate-limit hit, Vouch's claim statements (the same SQL text), and the
        claimed-code token and the claims cookie signed with HMAC."""
        found = await landing_for(request.path_params["code"])
        if found is None:
            return Response("not found", status_code=404)
        link_id, program_id = found
        form = await request.form()
        if not csrf_ok(request.cookies.get("vouch_csrf", ""), str(form.get("csrf", ""))):
            return Response("forbidden", status_code=403)
        try:
            checked = validate_email(str(form.get("email", "")).strip(), check_deliverability=False)
        except EmailNotValidError:
            return Response("bad request", status_code=422)
        email = str(checked.normalized)
        if form.get("consent") != "yes":
            return Response("bad request", status_code=422)
        now = datetime.now(UTC)
        ip = request.client.host if request.client else ""
        day_key = hmac.new(secret, f"ip:{now.date().isoformat()}".encode(), hashlib.sha256)
        ip_hash = hmac.new(day_key.digest(), ip.encode(), hashlib.sha256).hexdigest()[:32]
        async with state["pool"].acquire() as conn:
            await conn.fetchval(  # on its own, in autocommit, as Vouch's hit
                "INSERT INTO rate_limit_hits (bucket, window_start, hits) VALUES ($1, $2, 1)"
                " ON CONFLICT (bucket, window_start) DO UPDATE"
                " SET hits = rate_limit_hits.hits + 1 RETURNING hits",
                f"claim-baseline:{ip_hash}",
                now.replace(minute=0, second=0, microsecond=0),
            )
            async with conn.transaction():
                rows = await conn.fetch(
                    CONTEXT_SQL,
                    program_id,
                    "erased:" + mac(f"vouch.erasure.v1:{email.lower()}", 40),
                    [link_id],
                    None,
                )
                if not rows or rows[0][0] != "active" or rows[0][9] is None:
                    return Response("not found", status_code=404)
                row = rows[0]
                if row[7]:
                    return RedirectResponse("/claimed", status_code=303)
                created = await conn.fetchrow(
                    CREATE_SQL,
                    program_id,
                    row[11],
                    row[9],
                    email,
                    email,
                    None,
                    None,
                    "landing",
                    None,
                    row[10],
                    None,
                    ip_hash,
                    now,
                    secrets.token_hex(10).upper(),
                    now + timedelta(days=row[5]),
                    row[2],
                    row[4],
                    row[3],
                    "form",
                    "link the claim was made on",
                )
                if created is None:
                    return RedirectResponse("/claimed", status_code=303)
                settings = row[6] or {}
                fraud = settings.get("fraud", {})
                per_link, per_ip, _ = await conn.fetchrow(
                    COUNTS_SQL,
                    row[9],
                    ip_hash,
                    now - timedelta(minutes=fraud.get("velocity_window_minutes", 10)),
                    fraud.get("max_claims_per_link", 5) + 1,
                    fraud.get("max_claims_per_ip", 3) + 1,
                    None,
                    row[11],
                    None,
                    None,
                    None,
                    now,
                    None,
                )
                flags = [
                    f
                    for f, n, cap in (
                        ("velocity_link", per_link, fraud.get("max_claims_per_link", 5)),
                        ("velocity_ip", per_ip, fraud.get("max_claims_per_ip", 3)),
                    )
                    if n > cap
                ]
                referral_id = created[0]
                await conn.fetchval(
                    ANNOUNCE_SQL,
                    referral_id,
                    sorted(flags),
                    "pending" if flags else "clear",
                    now,
                    "landing",
                    "landing",
                    json.dumps(
                        {
                            "referral_id": referral_id,
                            "program_id": program_id,
                            "advocate_id": row[11],
                            "link_id": row[9],
                            "status": "lead",
                            "moderation": "pending" if flags else "clear",
                            "source": "landing",
                        }
                    ),
                    "referral.created",
                )
                for rule in row[8] or []:
                    await earn_rule(
                        conn,
                        program_id=program_id,
                        referral_id=referral_id,
                        beneficiary=None,
                        rule=rule,
                        ordinal=1,
                        now=now,
                    )
        issued = int(time.time())
        body = f"2.{issued}.{created[-1]}"
        response = RedirectResponse(
            f"/claimed?t={body}.{mac(f'vouch.claimed.v2:{body}', 32)}", status_code=303
        )
        claims = f"2.{issued}.{created[-1]}"
        response.set_cookie(
            "vouch_claims",
            f"{claims}.{mac(f'vouch.claims.v2:{claims}', 32)}",
            max_age=CLAIMED_MAX_AGE,
            httponly=True,
            samesite="lax",
        )
        return response

    async def claim_key(
        conn: asyncpg.Connection, operation: str, key: str, body: dict[str, Any]
    ) -> int | None:
        """The idempotency key's first use (``idempotency._CLAIM``); None when it was used."""
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return await conn.fetchval(  # type: ignore[no-any-return]
            CLAIM_KEY_SQL, "bench", operation, key, fingerprint
        )

    async def write_key(request: Request) -> bool:
        """The bearer key is a live key with the write scope (looked up once per key, as
        Vouch's key cache does)."""
        scheme, _, plaintext = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not plaintext or len(plaintext) > 200:
            return False
        key_hash = hashlib.sha256(plaintext.encode()).hexdigest()
        scopes = state["keys"].get(key_hash)
        if scopes is None:
            async with state["pool"].acquire() as conn:
                scopes = await conn.fetchval(
                    "SELECT scopes FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                    key_hash,
                )
            if scopes is None:
                return False
            state["keys"][key_hash] = scopes
        return "write" in scopes or "admin" in scopes

    async def conversion(request: Request) -> Response:
        """Every step of Vouch's keyed conversion but GraphQL, hand-written: the bearer key
        checked, the input validated (kind, amount, ISO currency, code and reference), then
        Vouch's conversion statements (the same SQL text)."""
        if not await write_key(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = json.loads(await request.body())
        key = request.headers["idempotency-key"]
        now = datetime.now(UTC)
        code = str(body.get("code", "")).strip().upper()
        amount, currency = body.get("amount"), str(body.get("currency", "USD")).strip().upper()
        if (
            not isinstance(amount, int)
            or isinstance(amount, bool)
            or amount < 0
            or currency not in CURRENCIES
            or not 0 < len(code) <= 32
            or len(str(body.get("ref", ""))) > 128
            or not 0 < len(key) <= 255
        ):
            return JSONResponse({"error": "invalid"}, status_code=422)
        async with state["pool"].acquire() as conn, conn.transaction():
            fresh = await claim_key(conn, "conversion", key, body)
            if fresh is None:
                return JSONResponse({"replayed": True})
            row = await conn.fetchrow(LOCK_BY_CODE_SQL, code)
            if row is None:
                return JSONResponse({"error": "not found"}, status_code=404)
            referral = dict(zip(REFERRAL_COLUMNS, row[: len(REFERRAL_COLUMNS)], strict=True))
            rules = row[len(REFERRAL_COLUMNS) + 2] or []
            inserted = await conn.fetchrow(
                CONVERSION_SQL,
                referral["id"],
                "purchase",
                body["ref"],
                amount,
                currency,
                now,
                json.dumps(
                    {
                        "referral_id": referral["id"],
                        "kind": "purchase",
                        "amount_minor": amount,
                        "currency": currency,
                        "occurred_at": now.isoformat(),
                    }
                ),
                now,
                "bench",  # the key's answer, stored with the conversion
                key,
                "conversion",
            )
            if inserted is not None and referral["status"] in ("lead", "qualified", "opportunity"):
                await conn.fetchrow(
                    MOVE_SQL,
                    referral["id"],
                    "won",
                    now,
                    referral["status"],
                    "conversion",
                    "conversion:purchase",
                    "{}",
                    json.dumps(
                        {
                            "referral_id": referral["id"],
                            "program_id": referral["program_id"],
                            "advocate_id": referral["advocate_id"],
                            "link_id": referral["link_id"],
                            "status": "won",
                            "moderation": referral["moderation"],
                            "source": referral["source"],
                            "from_status": referral["status"],
                            "to_status": "won",
                        }
                    ),
                )
                await earn(conn, referral, [r for r in rules if r["trigger"] == "qualified"], now)
                await earn(conn, referral, [r for r in rules if r["trigger"] == "won"], now)
            if inserted is None:  # a reference reported before: its answer, on its own
                await conn.execute(STORE_KEY_SQL, "bench", key, "conversion", '{"created": false}')
        return JSONResponse({"ok": True})

    async def revenue(request: Request) -> Response:
        """Every step of Vouch's keyed charge on a deal but GraphQL, hand-written: the bearer
        key checked, the input validated, then the statements Vouch runs, in its order."""
        if not await write_key(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = json.loads(await request.body())
        key = request.headers["idempotency-key"]
        now = datetime.now(UTC)
        amount, currency = body.get("amount"), str(body.get("currency", "")).strip().upper()
        external_id, crm_id = str(body.get("external_id", "")).strip(), str(body["crm_id"])
        occurred_at = datetime.fromisoformat(body["occurred_at"])
        if (
            not isinstance(amount, int)
            or isinstance(amount, bool)
            or amount <= 0
            or currency not in CURRENCIES
            or not 0 < len(external_id) <= 128
            or occurred_at.tzinfo is None
            or not 0 < len(key) <= 255
        ):
            return JSONResponse({"error": "invalid"}, status_code=422)
        async with state["pool"].acquire() as conn, conn.transaction():
            fresh = await claim_key(conn, "record_revenue", key, body)
            if fresh is None:
                return JSONResponse({"replayed": True})
            deals = await conn.fetch(REVENUE_DEALS_SQL, crm_id, None)
            if len(deals) != 1:
                return JSONResponse({"error": "not found or ambiguous"}, status_code=422)
            deal = dict(zip(OPPORTUNITY_FIELDS, deals[0], strict=True))
            row = await conn.fetchrow(REVENUE_LOCK_SQL, deal["referral_id"])
            if row is None:
                return JSONResponse({"error": "not found"}, status_code=404)
            referral = dict(zip(REFERRAL_COLUMNS, row[: len(REFERRAL_COLUMNS)], strict=True))
            rules = row[len(REFERRAL_COLUMNS) + 2] or []
            if (
                occurred_at > now + timedelta(minutes=5) or occurred_at < referral["created_at"]
            ) and await conn.fetchval(
                "SELECT 1 FROM revenue_events WHERE external_id = $1", external_id
            ) is None:  # asked only when a check refuses, as Vouch: a re-send is not checked
                return JSONResponse({"error": "invalid date"}, status_code=422)
            occurred_at = occurred_at.astimezone(UTC)
            inserted = await conn.fetchrow(
                REVENUE_INSERT_SQL,
                external_id,
                deal["id"],
                referral["id"],
                referral["program_id"],
                "recurring",
                amount,
                currency,
                occurred_at,
                "api",
                "{}",
                now,
                json.dumps(
                    {
                        "external_id": external_id,
                        "opportunity_id": deal["id"],
                        "referral_id": referral["id"],
                        "program_id": referral["program_id"],
                        "kind": "recurring",
                        "amount_minor": amount,
                        "currency": currency,
                        "occurred_at": occurred_at.isoformat(),
                    }
                ),
                "bench",  # the key's answer, stored with the event
                key,
                "record_revenue",
            )
            if inserted is None:  # a billing id sent before: compared, its answer on its own
                event = await conn.fetchrow(
                    "SELECT * FROM revenue_events WHERE external_id = $1", external_id
                )
                await conn.execute(
                    STORE_KEY_SQL,
                    "bench",
                    key,
                    "record_revenue",
                    json.dumps({"revenue_event_id": event["id"], "created": False}),
                )
                return JSONResponse({"created": False})
            for rule in rules:  # the bench's program shares no revenue: never taken
                raise NotImplementedError(rule)
        return JSONResponse({"created": True})

    async def opportunity(request: Request) -> Response:
        """Every step of Vouch's keyed deal upsert but GraphQL, hand-written: the bearer key
        checked, the input validated, then the statements Vouch runs, in its order."""
        if not await write_key(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = json.loads(await request.body())
        key = request.headers["idempotency-key"]
        now = datetime.now(UTC)
        amount, currency = body.get("amount"), str(body.get("currency", "")).strip().upper()
        crm_id, stage = str(body.get("crm_id", "")).strip(), str(body.get("stage", "")).strip()
        status = body.get("status", "open")
        if (
            not isinstance(amount, int)
            or isinstance(amount, bool)
            or amount < 0
            or currency not in CURRENCIES
            or not 0 < len(crm_id) <= 128
            or not 0 < len(stage) <= 64
            or status not in ("open", "won", "lost")
            or not 0 < len(key) <= 255
        ):
            return JSONResponse({"error": "invalid"}, status_code=422)
        async with state["pool"].acquire() as conn, conn.transaction():
            fresh = await claim_key(conn, "upsert_opportunity", key, body)
            if fresh is None:
                return JSONResponse({"replayed": True})
            linked = await conn.fetchrow(DEAL_LINK_SQL, "other", crm_id)
            if linked is not None and linked["referral_id"] != int(body["referral_id"]):
                raise NotImplementedError("a deal moved to another referral: not in the bench")
            row = await conn.fetchrow(  # locked: the rollup and the move take no lock
                DEAL_REFERRAL_SQL, int(body["referral_id"])
            )
            if row is None:
                return JSONResponse({"error": "not found"}, status_code=404)
            referral = dict(zip(REFERRAL_COLUMNS, row[: len(REFERRAL_COLUMNS)], strict=True))
            move_rules = row[len(REFERRAL_COLUMNS) + 1] or []
            before = None
            if linked is not None:
                before = await conn.fetchrow(LOCK_DEAL_SQL, "other", crm_id)
            answer_key = ["bench", key, "upsert_opportunity"]
            inserted = None
            if before is None:
                inserted = await conn.fetchrow(
                    INSERT_DEAL_SQL,
                    "other",
                    crm_id,
                    referral["id"],
                    referral["program_id"],
                    "new_business",
                    None,
                    amount,
                    currency,
                    stage,
                    status,
                    now.date() if status == "won" else None,
                    None,
                    now,
                    "api",
                )
                if inserted is None:  # created concurrently: its lock, then an update (as Vouch)
                    before = await conn.fetchrow(LOCK_DEAL_SQL, "other", crm_id)
            if inserted is not None:
                deal = dict(inserted)
                answer = {"opportunity_id": deal["id"], "created": True, "changed": True}
                await conn.fetchval(
                    DEAL_CHANGED_SQL,
                    *deal_change(referral["id"], None, deal),
                    _json(opportunity_json(deal)),
                    now,
                    *answer_key,
                    _json(answer),
                )
                created, changed, previous = True, True, None
            else:
                before = dict(before)
                deal = before | {
                    "stage": stage,
                    "amount_minor": amount,
                    "currency": currency,
                    "status": status,
                    "kind": "new_business",
                    "close_date": before["close_date"] or (now.date() if status == "won" else None),
                }
                created, changed, previous = False, deal != before, before["status"]
                if changed:
                    deal["updated_at"] = now
                    answer = {"opportunity_id": deal["id"], "created": False, "changed": True}
                    await conn.fetchval(
                        DEAL_UPDATED_SQL,
                        *deal_change(referral["id"], before, deal),
                        _json(opportunity_json(deal)),
                        now,
                        *answer_key,
                        _json(answer),
                        *(deal[c] for c in DEAL_UPDATED_COLUMNS),
                        before["stage"],
                        before["amount_minor"],
                        "api",
                        before["stage"] != stage or before["amount_minor"] != amount,
                    )
                else:
                    answer = {"opportunity_id": deal["id"], "created": False, "changed": False}
                    await conn.execute(STORE_KEY_SQL, *answer_key, json.dumps(answer))
            if changed:
                await move_for_deal(conn, referral, move_rules, deal, previous, now)
        return JSONResponse({"created": created})

    async def move_for_deal(
        conn: asyncpg.Connection,
        referral: dict[str, Any],
        rules: list[dict[str, Any]],
        deal: dict[str, Any],
        previous: str | None,
        now: datetime,
    ) -> None:
        """The referral (locked already) moved as the deal says (open → opportunity, won →
        won, with the won rewards)."""
        if referral["status"] == "rejected":
            return
        if deal["status"] == "won" and referral["status"] != "won":
            target = "won"
        elif deal["status"] == "open" and referral["status"] in ("lead", "qualified", "lost"):
            target = "opportunity"
        else:
            return  # (lost: not in the bench)
        current = referral["status"]
        event = await conn.fetchrow(
            MOVE_SQL,
            referral["id"],
            target,
            now,
            current,
            "api",
            "apikey:bench",
            json.dumps(
                {
                    "opportunity_id": deal["id"],
                    "provider": deal["provider"],
                    "crm_id": deal["crm_id"],
                }
            ),
            json.dumps(
                {
                    "referral_id": referral["id"],
                    "program_id": referral["program_id"],
                    "advocate_id": referral["advocate_id"],
                    "link_id": referral["link_id"],
                    "status": target,
                    "moderation": referral["moderation"],
                    "source": referral["source"],
                    "from_status": current,
                    "to_status": target,
                }
            ),
        )
        if target != "won":  # an opportunity earns the qualified rules (none in the bench)
            for rule in rules:
                if rule["trigger"] == "qualified":
                    raise NotImplementedError(rule)
            return
        if current in ("lost", "opportunity"):
            earlier = await conn.fetchval(WON_BEFORE_SQL, referral["id"], event["id"])
            if earlier is not None:
                raise NotImplementedError("a deal won again: not in the bench")
        for trigger in ("qualified", "won"):
            picked = [r for r in rules if r["trigger"] == trigger]
            if picked:
                await earn(conn, referral, picked, now)

    return Starlette(
        routes=[
            Route("/r/{code}/claim", claim, methods=["POST"]),
            Route("/conversions", conversion, methods=["POST"]),
            Route("/revenue", revenue, methods=["POST"]),
            Route("/opportunities", opportunity, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
