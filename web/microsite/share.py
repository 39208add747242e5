"""The advocate's share page (``/share?token=<widget token>``): their link with one-click copy,
prefilled messages per channel carrying ``?ch=``, a server-rendered QR code, live counts, and
a small JSON endpoint the page's script reports the share flow to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import segno
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vouch.attribution.share_events import (
    SHARE_CHANNELS,
    ShareStats,
    ShareTarget,
    record_share_event,
    share_stats,
    share_target,
    validate_share_event,
)
from vouch.core.clock import utcnow
from vouch.core.errors import DomainError, NotFound
from vouch.core.jsonbody import InvalidJson, loads_untrusted
from vouch.core.money import format_money
from vouch.core.security import TokenError, WidgetTokens
from vouch.core.sessions import RequestSessions
from vouch.web.pages import Pages

MAX_EVENT_BYTES = 4096
JSON_HEADERS = {"cache-control": "no-store"}


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    channel: str
    url: str
    text: str
    href: str
    # The script rebuilds ``href`` from the edited text: base + quote(text) (+ suffix).
    href_base: str


def channel_messages(
    link_url: str, *, t: Any, first_name: str, program: str, offer: str
) -> list[ChannelMessage]:
    """Default message per channel; every link carries its channel in ``?ch=``."""
    messages: list[ChannelMessage] = []
    subject = t("share.subject", name=first_name)
    for channel in SHARE_CHANNELS:
        url = f"{link_url}?ch={channel}"
        if channel in ("x", "sms"):
            text = t("share.message_short", offer=offer, program=program, url=url)
        else:
            text = t("share.message", offer=offer, program=program, url=url)
        if channel == "email":
            base = f"mailto:?subject={quote(subject)}&body="
        elif channel == "linkedin":
            # LinkedIn takes only the URL; the text is there to copy into the post.
            base = "https://www.linkedin.com/sharing/share-offsite/?" + urlencode({"url": url})
        elif channel == "x":
            base = "https://twitter.com/intent/tweet?text="
        elif channel == "whatsapp":
            base = "https://wa.me/?text="
        else:
            base = "sms:?&body="
        href = base if channel == "linkedin" else base + quote(text)
        messages.append(ChannelMessage(channel, url, text, href, base))
    return messages


def qr_svg(url: str, title: str) -> str:
    """The link as an inline SVG QR code (no script, no external request)."""
    return str(segno.make(url, error="m").svg_inline(scale=4, border=2, title=title))


def stats_json(stats: ShareStats) -> dict[str, Any]:
    return {
        "clicks": stats.clicks,
        "friendsJoined": stats.friends_joined,
        "rewardsEarned": stats.rewards_earned,
        "rewardsAmount": format_money(stats.rewards_amount_minor, stats.currency),
    }


class ShareSite:
    def __init__(self, *, pages: Pages, sessions: RequestSessions, tokens: WidgetTokens) -> None:
        self.pages = pages
        self.sessions = sessions
        self.tokens = tokens

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/share", self.share_page, methods=["GET"]),
            Route("/share/stats", self.stats, methods=["GET"]),
            Route("/share/events", self.event, methods=["POST"]),
        ]

    def session(self, request: Request) -> AsyncSession:
        return self.sessions.get(request.scope.setdefault("state", {}))

    async def target(
        self, request: Request, token: object, program: str | None
    ) -> ShareTarget | None:
        if not isinstance(token, str) or not token or len(token) > 512:
            return None
        try:
            advocate_id = self.tokens.verify(token)
        except TokenError:
            return None
        try:
            return await share_target(self.session(request), advocate_id, program_slug=program)
        except NotFound:
            return None

    async def share_page(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        program_slug = request.query_params.get("program")
        target = await self.target(request, token, program_slug)
        if target is None:
            return self.pages.render(request, "share_invalid.html", {}, status_code=403)
        if target.link is None or target.program is None:
            return self.pages.render(
                request, "share_invalid.html", {"no_link": True}, status_code=200
            )
        t = self.pages.translator_for(request)
        first_name = target.advocate.first_name or ""
        link_url = f"{self.pages.public_base_url}/r/{target.link.code}"
        stats = await share_stats(
            self.session(request), advocate_id=target.advocate.id, program=target.program
        )
        return self.pages.render(
            request,
            "share.html",
            {
                "token": token,
                "program_slug": program_slug or "",
                "first_name": first_name,
                "program": target.program,
                "link_url": link_url,
                "messages": channel_messages(
                    link_url,
                    t=t,
                    first_name=first_name,
                    program=target.program.name,
                    offer=target.program.offer_title,
                ),
                "qr": qr_svg(f"{link_url}?ch=qr", t("share.qr")),
                "stats": stats_json(stats),
            },
        )

    async def stats(self, request: Request) -> Response:
        target = await self.target(
            request, request.query_params.get("token"), request.query_params.get("program")
        )
        if target is None or target.program is None:
            return JSONResponse({"error": "invalid token"}, status_code=403, headers=JSON_HEADERS)
        stats = await share_stats(
            self.session(request), advocate_id=target.advocate.id, program=target.program
        )
        return JSONResponse(stats_json(stats), headers=JSON_HEADERS)

    async def event(self, request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _json_error("send JSON", 415)
        body = await request.body()
        if len(body) > MAX_EVENT_BYTES:
            return _json_error("request too large", 413)
        try:
            data = loads_untrusted(body)
        except InvalidJson:
            return _json_error("not valid JSON", 400)
        if not isinstance(data, dict):
            return _json_error("expected a JSON object", 400)
        try:
            kind, channel = validate_share_event(data.get("kind"), data.get("channel"))
        except DomainError as exc:
            return _json_error(exc.message, 422, field=exc.field)
        program = data.get("program")
        target = await self.target(
            request, data.get("token"), program if isinstance(program, str) and program else None
        )
        if target is None:
            return _json_error("invalid token", 403, field="token")
        session = self.session(request)
        try:
            await record_share_event(
                session, target=target, kind=kind, channel=channel, now=utcnow()
            )
        except DomainError as exc:
            await session.rollback()
            return _json_error(exc.message, 404, field=exc.field)
        await session.commit()
        return JSONResponse({"ok": True}, status_code=201, headers=JSON_HEADERS)


def _json_error(message: str, status: int, *, field: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": message, "field": field}, status_code=status, headers=JSON_HEADERS
    )
