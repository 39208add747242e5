"""The friend's side of the microsite: ``/r/{code}`` offer page, claim form, the "your code"
page, and the cross-device code-entry form.

Handlers are thin: decode and resolve (cached), record the click into the buffer, read or
write the first-party cookies, call one domain function, commit, render.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import escape
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from vouch.attribution.claims import (
    EMAIL_REQUIRED,
    AlreadyClaimed,
    ClaimContext,
    ClaimInput,
    OfferUnavailable,
    RateLimited,
    Touch,
    claim_offer,
    get_redemption_summary,
    hit_rate_limit,
    request_code_resend,
    validate_claim,
)
from vouch.attribution.clicks import (
    ClickRecord,
    classify_user_agent,
    clean_channel,
    clean_utm,
    referrer_host,
)
from vouch.attribution.landing import Landing, LandingResolver
from vouch.core.clock import utcnow
from vouch.core.errors import DomainError, ErrorCode, NotFound
from vouch.core.raw_select import commit_if_begun
from vouch.core.read_only import autocommit_reads
from vouch.core.security import constant_time_equals, hash_ip, rate_limit_subject, sign
from vouch.core.sessions import RequestSessions
from vouch.core.settings import Settings
from vouch.jobs.click_buffer import ClickBuffer
from vouch.models.enums import ReferralSource
from vouch.web.microsite.click_handoff import ClickHandoff
from vouch.web.microsite.previews import offer_card
from vouch.web.pages import Pages

VISITOR_COOKIE = "vouch_vid"
ATTRIBUTION_COOKIE = "vouch_attr"
CSRF_COOKIE = "vouch_csrf"
# Signed list of the redemption ids this browser claimed: only it is shown a code again.
CLAIMS_COOKIE = "vouch_claims"
MAX_CLAIMS_REMEMBERED = 20
CSRF_FIELD = "csrf"
CSRF_MAX_AGE = 2 * 3600
CLAIMED_MAX_AGE = 30 * 86_400
VISITOR_MAX_AGE = 365 * 86_400
MAX_TOUCHES = 12
TOUCHES_MAX_AGE = 366 * 86_400
_TOUCHES_V2 = _IDS_V2 = "2."
_CLAIMS_PURPOSE, _CLAIMED_PURPOSE = "vouch.claims.v2", "vouch.claimed.v2"
_TOUCHES_PURPOSE = "vouch.attribution.v2"
MAX_FORM_BYTES = 16_384
FORM_FIELDS = ("email", "name", "company")
_HEX = frozenset("0123456789abcdef")
CSRF_PLACEHOLDER = "__vouch_csrf_token__"
# Random per process, so no program's own text can contain them. A link's code is letters and
# digits (the same escaped or not); the name is filled in escaped, as the template escapes it.
CODE_PLACEHOLDER = f"__vouch_code_{secrets.token_hex(8)}__"
NAME_PLACEHOLDER = f"__vouch_name_{secrets.token_hex(8)}__"


def _program_landing(landing: Landing) -> Landing:
    """The landing with what varies by link replaced by placeholders: the offer page's cache
    key and rendering context."""
    return replace(
        landing,
        link_id=0,
        code=CODE_PLACEHOLDER,
        channel="",
        advocate_id=0,
        advocate_first_name=NAME_PLACEHOLDER if landing.advocate_first_name else None,
    )


def _is_token(value: str | None, length: int) -> bool:
    return (
        value is not None and len(value) == length and all(c in "0123456789abcdef" for c in value)
    )


@dataclass(frozen=True, slots=True)
class Cookies:
    """Signing and reading the microsite's first-party cookies."""

    secure: bool
    secret: str
    attribution: URLSafeTimedSerializer
    claimed: URLSafeTimedSerializer
    claims: URLSafeTimedSerializer

    @classmethod
    def create(cls, secret: str, *, secure: bool) -> Cookies:
        return cls(
            secure=secure,
            secret=secret,
            attribution=URLSafeTimedSerializer(secret, salt="vouch.attribution.v1"),
            claimed=URLSafeTimedSerializer(secret, salt="vouch.claimed.v1"),
            claims=URLSafeTimedSerializer(secret, salt="vouch.claims.v1"),
        )

    def claimed_here(self, request: Request) -> list[int]:
        """The redemption ids this browser claimed (from the signed claim cookie)."""
        raw = request.cookies.get(CLAIMS_COOKIE)
        if not raw or len(raw) > 1024:
            return []
        data: Any
        if raw.startswith(_IDS_V2):
            data = self.load_ids(_CLAIMS_PURPOSE, raw, CLAIMED_MAX_AGE)
        else:  # written before v2, kept readable until it expires
            try:
                data = self.claims.loads(raw, max_age=CLAIMED_MAX_AGE)
            except BadSignature:
                return []
        if not isinstance(data, list):
            return []
        return [i for i in data if isinstance(i, int) and not isinstance(i, bool)]

    def remember_claim(self, response: Response, claimed: list[int], redemption_id: int) -> None:
        ids = [i for i in claimed if i != redemption_id][-(MAX_CLAIMS_REMEMBERED - 1) :]
        value = self.dump_ids(_CLAIMS_PURPOSE, [*ids, redemption_id], int(time.time()))
        self.set(response, CLAIMS_COOKIE, value, CLAIMED_MAX_AGE)

    def claimed_token(self, redemption_id: int) -> str:
        """The ``/claimed?t=`` token that shows the friend their code."""
        return self.dump_ids(_CLAIMED_PURPOSE, [redemption_id], int(time.time()))

    def claimed_id(self, token: str) -> int | None:
        """The redemption id of a valid, unexpired ``/claimed?t=`` token."""
        if len(token) > 200:
            return None
        value: Any
        if token.startswith(_IDS_V2):
            ids = self.load_ids(_CLAIMED_PURPOSE, token, CLAIMED_MAX_AGE)
            value = ids[0] if ids is not None and len(ids) == 1 else None
        else:  # issued before v2, kept readable until it expires
            try:
                value = self.claimed.loads(token, max_age=CLAIMED_MAX_AGE)
            except BadSignature:
                return None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    # Signed ids, v2 (the claimed-code token and the claims cookie): "2.<issued>.<id>~<id>…
    # .<mac>", decimal, HMAC-SHA256 under the value's own purpose (128 bits of the tag kept),
    # as the attribution cookie v2; every claim writes two.
    def dump_ids(self, purpose: str, ids: list[int], now: int) -> str:
        return self._signed(purpose, [str(i) for i in ids], now)

    def load_ids(self, purpose: str, raw: str, max_age: int) -> list[int] | None:
        items = self._signed_items(purpose, raw, max_age)
        if items is None or not all(v.isdigit() and len(v) <= 19 for v in items):
            return None
        return [int(v) for v in items]

    # The v2 envelope both signed values share: "2.<issued>.<item>~<item>….<mac>".
    def _signed(self, purpose: str, items: list[str], now: int) -> str:
        body = f"{_IDS_V2}{now}.{'~'.join(items)}"
        return f"{body}.{self._mac(purpose, body)}"

    def _signed_items(self, purpose: str, raw: str, max_age: int) -> list[str] | None:
        """The items of a v2 value signed under ``purpose`` and at most ``max_age`` seconds
        old; None for anything else."""
        body, _, mac = raw.rpartition(".")
        if not raw.isascii() or not constant_time_equals(mac, self._mac(purpose, body)):
            return None
        parts = body.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        if int(time.time()) - int(parts[1]) > max_age:
            return None
        return parts[2].split("~") if parts[2] else []

    def _mac(self, purpose: str, body: str) -> str:
        return sign(self.secret, f"{purpose}:{body}".encode())[:32]

    # CSRF (double submit): the cookie holds a random value; the form carries
    # "<issued hex>.<HMAC(secret, value + issued)>", valid for CSRF_MAX_AGE seconds.
    def csrf_token(self, cookie: str, now: float) -> str:
        issued = f"{int(now):x}"
        return f"{issued}.{self._csrf_mac(cookie, issued)}"

    def csrf_valid(self, cookie: str, token: str, now: float) -> bool:
        issued, _, mac = token.partition(".")
        if not issued or len(issued) > 12 or not set(issued) <= _HEX:
            return False
        age = now - int(issued, 16)
        if age > CSRF_MAX_AGE or age < -60:
            return False
        return constant_time_equals(mac, self._csrf_mac(cookie, issued))

    @staticmethod
    def csrf_issued(token: str) -> datetime | None:
        """When the page carrying a (valid) CSRF token was served: the page-load time."""
        issued = token.partition(".")[0]
        if not issued or len(issued) > 12 or not set(issued) <= _HEX:
            return None
        return datetime.fromtimestamp(int(issued, 16), UTC)

    def _csrf_mac(self, cookie: str, issued: str) -> str:
        return sign(self.secret, f"vouch.csrf.v1:{cookie}:{issued}".encode())[:40]

    # Attribution: [[link_id, program_id, first_seen, last_seen], ...] (unix seconds).
    def read_touches(self, request: Request) -> list[list[int]]:
        raw = request.cookies.get(ATTRIBUTION_COOKIE)
        if not raw or len(raw) > 2048:
            return []
        if raw.startswith(_TOUCHES_V2):
            data: Any = self._touches_v2(raw)
        else:  # written before v2, kept readable until it expires
            try:
                data = self.attribution.loads(raw, max_age=TOUCHES_MAX_AGE)
            except BadSignature:
                return []
        if not isinstance(data, list):
            return []
        return [
            entry
            for entry in data[:MAX_TOUCHES]
            if isinstance(entry, list)
            and len(entry) == 4
            and all(isinstance(v, int) and not isinstance(v, bool) for v in entry)
        ]

    # The attribution cookie, v2: "2.<issued>.<link>_<program>_<first>_<last>~….<mac>", all
    # decimal, signed with HMAC-SHA256 under its own purpose (128 bits of the tag kept). A
    # tenth of the CPU of itsdangerous's JSON, zlib, base64 and key derivation, and every
    # landing writes one.
    def _touches_v2(self, raw: str) -> list[list[int]] | None:
        items = self._signed_items(_TOUCHES_PURPOSE, raw, TOUCHES_MAX_AGE)
        if items is None:
            return None
        entries = []
        for item in items:
            values = item.split("_")
            if len(values) != 4 or not all(v.isdigit() and len(v) <= 19 for v in values):
                return None
            entries.append([int(v) for v in values])
        return entries

    def dump_touches(self, entries: list[list[int]], now: int) -> str:
        items = ["_".join(str(v) for v in entry) for entry in entries]
        return self._signed(_TOUCHES_PURPOSE, items, now)

    @staticmethod
    def touches_for(entries: list[list[int]]) -> tuple[Touch, ...]:
        touches: list[Touch] = []
        for link_id, program_id, first, last in entries:
            for ts in {first, last}:
                touches.append(Touch(link_id, program_id, datetime.fromtimestamp(ts, UTC)))
        return tuple(touches)

    def add_touch(self, entries: list[list[int]], landing: Landing, now: datetime) -> str:
        ts = int(now.timestamp())
        for entry in entries:
            if entry[0] == landing.link_id:
                entry[3] = ts
                break
        else:
            entries.append([landing.link_id, landing.program_id, ts, ts])
        horizon = ts - 365 * 86_400
        kept = sorted((e for e in entries if e[3] >= horizon), key=lambda e: e[3])[-MAX_TOUCHES:]
        return self.dump_touches(kept, ts)

    def set(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        """Append a Set-Cookie header. Our names and values are token-safe (hex, base64url,
        dots), so the header is built directly instead of through ``http.cookies``."""
        parts = [f"{name}={value}", "Path=/", "HttpOnly"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        parts.append("SameSite=Strict" if name == CSRF_COOKIE else "SameSite=Lax")
        if self.secure:
            parts.append("Secure")
        response.raw_headers.append((b"set-cookie", "; ".join(parts).encode("latin-1")))


class LandingSite:
    """The handlers, bound to the app's settings, renderer, resolver and click buffer."""

    def __init__(
        self,
        *,
        settings: Settings,
        pages: Pages,
        resolver: LandingResolver,
        clicks: ClickBuffer,
        sessions: RequestSessions,
        handoff: ClickHandoff | None = None,
    ) -> None:
        self.settings = settings
        self.pages = pages
        self.resolver = resolver
        self.clicks = clicks
        self.handoff = handoff or ClickHandoff(clicks)
        # A claim whose page was served this recently may find its click still buffered by
        # the worker that served the page: then it asks that worker for it (click_handoff).
        self.handoff_window = timedelta(seconds=settings.click_flush_interval + 3)
        self.sessions = sessions
        self.secret = settings.resolved_secret()
        self.cookies = Cookies.create(
            self.secret, secure=settings.public_base_url.startswith("https://")
        )

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/r", self.code_entry_redirect, methods=["GET"]),
            Route("/r/{code}", self.offer_page, methods=["GET", "HEAD"]),
            Route("/r/{code}/claim", self.claim_submit, methods=["POST"]),
            Route("/r/{code}/preview.png", self.preview_image, methods=["GET", "HEAD"]),
            Route("/claim", self.code_entry_page, methods=["GET"]),
            Route("/claim", self.code_entry_submit, methods=["POST"]),
            Route("/claimed", self.claimed_page, methods=["GET"]),
        ]

    # -- helpers -------------------------------------------------------------------------------

    def session(self, request: Request) -> AsyncSession:
        return self.sessions.get(request.scope.setdefault("state", {}))

    def read_session(self, request: Request) -> AsyncSession:
        """The session of a request that only reads (the offer page, its preview): statements
        run on an autocommit connection, with no BEGIN and ROLLBACK round trips around them,
        and the session refuses writes."""
        session = self.session(request)
        autocommit_reads(session)
        return session

    def ip_hash(self, request: Request, now: datetime) -> str | None:
        return hash_ip(self.secret, request.client.host if request.client else None, now.date())

    def rate_bucket(self, request: Request, now: datetime) -> str:
        """The claim rate limit's bucket: the hashed IPv4 address or IPv6 /64."""
        subject = rate_limit_subject(request.client.host if request.client else None)
        return f"claim:{hash_ip(self.secret, subject, now.date()) or 'unknown'}"

    def not_found(self, request: Request) -> Response:
        """The one page for malformed, unknown, revoked and non-canonical codes."""
        return self.pages.render(request, "not_found.html", {}, status_code=404, cache_key="404")

    def csrf_pair(self, request: Request, fresh: str | None = None) -> tuple[str, str]:
        """(cookie value, signed form token) for the double-submit check. ``fresh``: 32 random
        hex digits drawn already, the cookie's value if the request has none."""
        cookie = request.cookies.get(CSRF_COOKIE)
        if not _is_token(cookie, 32):
            cookie = fresh or secrets.token_hex(16)
        assert cookie is not None
        return cookie, self.cookies.csrf_token(cookie, time.time())

    def csrf_ok(self, request: Request, form: FormData) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE)
        token = form.get(CSRF_FIELD)
        if not _is_token(cookie, 32) or not isinstance(token, str) or len(token) > 200:
            return False
        assert cookie is not None
        return self.cookies.csrf_valid(cookie, token, time.time())

    async def read_form(self, request: Request) -> FormData | None:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
            return None
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return None
        return await request.form(max_files=0, max_fields=20)

    def offer_context(self, landing: Landing, now: datetime, **extra: Any) -> dict[str, Any]:
        return {
            "landing": landing,
            "state": landing.availability(now),
            "first_name": landing.advocate_first_name,
            "expires": _date(landing.offer_expires_at),
            "values": {},
            "error": None,
            "error_key": None,
            "error_field": None,
            **extra,
        }

    def render_offer(
        self,
        request: Request,
        landing: Landing,
        now: datetime,
        *,
        status_code: int = 200,
        **extra: Any,
    ) -> Response:
        cookie, token = self.csrf_pair(request)
        response = self.pages.render(
            request,
            "offer.html",
            self.offer_context(landing, now, csrf=token, **extra),
            status_code=status_code,
        )
        self.cookies.set(response, CSRF_COOKIE, cookie, None)
        return response

    # -- GET /r/{code} -------------------------------------------------------------------------

    async def offer_page(self, request: Request) -> Response:
        code = request.path_params["code"]
        landing = await self.resolver.resolve(lambda: self.read_session(request), code)
        if landing is None:
            return self.not_found(request)
        now = utcnow()
        verdict = classify_user_agent(request.headers.get("user-agent"), method=request.method)
        # No cookies, hence no visitor id, for unfurlers or before tracking consent.
        tracking = not landing.require_tracking_consent and not verdict.is_bot
        visitor = request.cookies.get(VISITOR_COOKIE) if tracking else None
        new_visitor = tracking and not _is_token(visitor, 32)
        # A first visit needs two random tokens (visitor id, CSRF cookie): one draw from the
        # OS for both (each draw is a system call, ~3% of a cold landing's CPU).
        fresh = secrets.token_hex(32) if new_visitor else None
        if fresh is not None:
            visitor = fresh[:32]
        self.clicks.add(
            ClickRecord(
                link_id=landing.link_id,
                program_id=landing.program_id,
                occurred_at=now,
                channel=clean_channel(request.query_params.get("ch")) or landing.channel,
                utm=clean_utm(request.query_params),
                ip_hash=self.ip_hash(request, now),
                user_agent=request.headers.get("user-agent"),
                is_bot=verdict.is_bot,
                bot_reason=verdict.reason,
                visitor_id=visitor,
                referrer_host=referrer_host(request.headers.get("referer")),
            )
        )
        cookie, token = self.csrf_pair(request, fresh[32:] if fresh is not None else None)
        state = landing.availability(now)
        # The page varies by program, language and state: rendered once for all the program's
        # links, with the link's code, its advocate's first name and the CSRF token filled in
        # (a link seen for the first time costs no template rendering).
        shared = _program_landing(landing)
        response = self.pages.render(
            request,
            "offer.html",
            self.offer_context(shared, now, csrf=CSRF_PLACEHOLDER),
            cache_key=(shared, state),
            fill={
                CSRF_PLACEHOLDER: token,
                CODE_PLACEHOLDER: landing.code,
                NAME_PLACEHOLDER: str(escape(landing.advocate_first_name or "")),
            },
        )
        # Unfurlers and crawlers get no cookie at all: they never claim.
        if not verdict.is_bot and request.cookies.get(CSRF_COOKIE) != cookie:
            self.cookies.set(response, CSRF_COOKIE, cookie, None)
        if tracking:
            assert visitor is not None
            if new_visitor:
                self.cookies.set(response, VISITOR_COOKIE, visitor, VISITOR_MAX_AGE)
            touches = self.cookies.add_touch(self.cookies.read_touches(request), landing, now)
            self.cookies.set(
                response,
                ATTRIBUTION_COOKIE,
                touches,
                landing.attribution_window_days * 86_400,
            )
        return response

    # -- GET /r/{code}/preview.png ------------------------------------------------------------

    async def preview_image(self, request: Request) -> Response:
        """The link's ``og:image``: its program's offer card (no click is recorded)."""
        landing = await self.resolver.resolve(
            lambda: self.read_session(request), request.path_params["code"]
        )
        if landing is None:
            return self.not_found(request)
        png = offer_card(landing.program_id, landing.program_name, landing.offer_title)
        return Response(
            png, media_type="image/png", headers={"cache-control": "public, max-age=3600"}
        )

    # -- POST /r/{code}/claim ------------------------------------------------------------------

    async def claim_submit(self, request: Request) -> Response:
        code = request.path_params["code"]
        session = self.session(request)
        landing = await self.resolver.resolve(session, code)
        if landing is None:
            return self.not_found(request)
        now = utcnow()
        form = await self.read_form(request)
        values = _form_values(form)
        if form is None or not self.csrf_ok(request, form):
            return self.render_offer(
                request, landing, now, status_code=403, values=values, error_key="claim.csrf"
            )
        if landing.availability(now) != "open":
            return self.render_offer(request, landing, now, status_code=410)
        try:
            claim = validate_claim(
                email=values["email"],
                name=values["name"],
                company=values["company"],
                consent=form.get("consent") == "yes",
            )
        except DomainError as exc:
            return self.render_offer(
                request,
                landing,
                now,
                status_code=422,
                values=values,
                error_key=_error_key(exc),
                error_field=exc.field,
            )
        tracking = not landing.require_tracking_consent
        visitor = request.cookies.get(VISITOR_COOKIE) if tracking else None
        entries = self.cookies.read_touches(request) if tracking else []
        ctx = ClaimContext(
            program_id=landing.program_id,
            link_id=landing.link_id,
            source=ReferralSource.LANDING,
            touches=Cookies.touches_for(entries),
            visitor_id=visitor if _is_token(visitor, 32) else None,
            ip_hash=self.ip_hash(request, now),
            landed_at=self.landed_at(form),
        )
        ctx = replace(ctx, await_clicks=self.clicks_writer(ctx, now))
        return await self._claim(request, session, claim, ctx, now, landing=landing, values=values)

    @staticmethod
    def landed_at(form: FormData) -> datetime | None:
        """The page-load time signed into the (already checked) CSRF token of the form."""
        token = form.get(CSRF_FIELD)
        return Cookies.csrf_issued(token) if isinstance(token, str) else None

    def clicks_writer(self, ctx: ClaimContext, now: datetime) -> Callable[[], Awaitable[None]]:
        """How a claim has its landing's click written when the click is not in the table yet:
        this worker's buffer at once; and when the page was served moments ago, whichever
        worker buffers the visitor's click writes it (a bounded wait, see click_handoff)."""
        visitor, landed_at = ctx.visitor_id, ctx.landed_at

        async def write() -> None:
            recent = landed_at is not None and now - landed_at <= self.handoff_window
            if visitor and recent:
                await self.handoff.ensure_written(visitor)
            elif len(self.clicks):
                await self.clicks.flush()

        return write

    async def _claim(
        self,
        request: Request,
        session: AsyncSession,
        claim: ClaimInput,
        ctx: ClaimContext,
        now: datetime,
        *,
        landing: Landing | None,
        values: dict[str, str],
    ) -> Response:
        """Rate-limit (committed on its own so refusals count), then claim in one transaction."""
        try:
            await hit_rate_limit(
                session,
                bucket=self.rate_bucket(request, now),
                limit=self.settings.claim_rate_limit_per_hour,
                now=now,
            )
        except RateLimited as refused:
            await session.commit()
            response = self._claim_error(request, landing, now, 429, values, "claim.rate_limited")
            response.headers["retry-after"] = str(refused.retry_after_seconds)
            return response
        await commit_if_begun(session)  # the hit stands whatever follows
        try:
            result = await claim_offer(session, claim=claim, ctx=ctx, now=now, secret=self.secret)
        except AlreadyClaimed:  # an erased person: the same answer as any earlier claim
            await session.rollback()
            return self.render_sent(request)
        except OfferUnavailable:
            await session.rollback()
            return self._claim_error(request, landing, now, 410, values, "claim.unavailable")
        except NotFound:
            await session.rollback()
            return self._claim_error(request, landing, now, 404, values, "code.unknown")
        except DomainError as exc:
            await session.rollback()
            return self._claim_error(
                request, landing, now, 422, values, _error_key(exc), None, exc.field
            )
        claimed_here = self.cookies.claimed_here(request)
        if not result.created and result.redemption_id not in claimed_here:
            # Someone else knows this address: the code goes to the address, not to this page.
            await request_code_resend(session, result, now=now)
            await session.commit()
            return self.render_sent(request)
        await session.commit()
        token = self.cookies.claimed_token(result.redemption_id)
        response = RedirectResponse(f"/claimed?t={token}", status_code=303)
        self.cookies.remember_claim(response, claimed_here, result.redemption_id)
        return response

    def render_sent(self, request: Request) -> Response:
        """The one neutral answer to a claim for an address that already claimed."""
        response = self.pages.render(request, "claim_sent.html", {})
        response.headers["cache-control"] = "no-store"
        return response

    def _claim_error(
        self,
        request: Request,
        landing: Landing | None,
        now: datetime,
        status_code: int,
        values: dict[str, str],
        error_key: str | None,
        error: str | None = None,
        error_field: str | None = None,
    ) -> Response:
        if landing is None:
            return self.render_code_entry(
                request,
                status_code=status_code,
                values=values,
                error_key=error_key,
                error=error,
                error_field=error_field,
            )
        return self.render_offer(
            request,
            landing,
            now,
            status_code=status_code,
            values=values,
            error_key=error_key,
            error=error,
            error_field=error_field,
        )

    # -- cross-device: GET/POST /claim -------------------------------------------------------

    async def code_entry_redirect(self, request: Request) -> Response:
        return RedirectResponse("/claim", status_code=308)

    def render_code_entry(
        self, request: Request, *, status_code: int = 200, **extra: Any
    ) -> Response:
        cookie, token = self.csrf_pair(request)
        context: dict[str, Any] = {
            "csrf": token,
            "values": {},
            "error": None,
            "error_key": None,
            "error_field": None,
        }
        context.update(extra)
        response = self.pages.render(request, "code_entry.html", context, status_code=status_code)
        self.cookies.set(response, CSRF_COOKIE, cookie, None)
        return response

    async def code_entry_page(self, request: Request) -> Response:
        return self.render_code_entry(request)

    async def code_entry_submit(self, request: Request) -> Response:
        session = self.session(request)
        now = utcnow()
        form = await self.read_form(request)
        values = _form_values(form, extra=("code",))
        if form is None or not self.csrf_ok(request, form):
            return self.render_code_entry(
                request, status_code=403, values=values, error_key="claim.csrf"
            )
        landing = await self.resolver.resolve(session, values["code"].strip())
        if landing is None:
            return self.render_code_entry(
                request,
                status_code=404,
                values=values,
                error_key="code.unknown",
                error_field="code",
            )
        if landing.availability(now) != "open":
            return self.render_offer(request, landing, now, status_code=410)
        try:
            claim = validate_claim(
                email=values["email"],
                name=values["name"],
                company=values["company"],
                consent=form.get("consent") == "yes",
            )
        except DomainError as exc:
            return self.render_code_entry(
                request,
                status_code=422,
                values=values,
                error_key=_error_key(exc),
                error_field=exc.field,
            )
        ctx = ClaimContext(
            program_id=landing.program_id,
            link_id=landing.link_id,
            source=ReferralSource.CODE_ENTRY,
            ip_hash=self.ip_hash(request, now),
            landed_at=self.landed_at(form),
        )
        return await self._claim(request, session, claim, ctx, now, landing=None, values=values)

    # -- GET /claimed?t= ---------------------------------------------------------------------

    async def claimed_page(self, request: Request) -> Response:
        redemption_id = self.cookies.claimed_id(request.query_params.get("t", ""))
        if redemption_id is None:
            return self.not_found(request)
        found = await get_redemption_summary(self.session(request), redemption_id)
        if found is None:
            return self.not_found(request)
        redemption, program = found
        return self.pages.render(
            request,
            "claimed.html",
            {
                "code": redemption.code,
                "offer": program.offer_title,
                "terms": program.offer_terms,
                "program": program.name,
                "expires": _date(redemption.expires_at),
                "redeemed": _date(redemption.redeemed_at),
            },
        )


def _error_key(exc: DomainError) -> str:
    """The UI string for a claim error, so the message appears in the page's language."""
    if exc.code == ErrorCode.SELF_REFERRAL:
        return "error.self_referral"
    if exc.code == ErrorCode.DUPLICATE:
        return "error.already_claimed"
    if exc.field == "consent":
        return "error.consent"
    if exc.field in ("name", "company"):
        return "error.too_long"
    if exc.field == "email":
        return "error.email_required" if exc.message == EMAIL_REQUIRED else "error.email_invalid"
    return "claim.unavailable"


def _form_values(form: FormData | None, extra: tuple[str, ...] = ()) -> dict[str, str]:
    values: dict[str, str] = {}
    for name in (*FORM_FIELDS, *extra):
        raw = form.get(name) if form is not None else None
        values[name] = raw[:300] if isinstance(raw, str) else ""
    return values


def _date(value: datetime | None) -> str | None:
    return f"{value:%d %B %Y}" if value is not None else None
