"""The RevOps console under ``/console``: sign in with an API key, see the program at a glance
(server-rendered SVG charts, no JavaScript), work the moderation queue, export every table.

Handlers are thin: authenticate, parse, call one domain function, render.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from vouch.advocacy.dashboard import Overview, Period, overview
from vouch.attribution import moderation, reports
from vouch.attribution.reports import ReportFilter
from vouch.core.clock import utcnow
from vouch.core.db import RequestSessions
from vouch.core.errors import DomainError
from vouch.core.money import format_money
from vouch.core.security import constant_time_equals
from vouch.core.settings import Settings
from vouch.web.charts import Series, bar_chart, line_chart
from vouch.web.console_auth import (
    ConsoleUser,
    clear_session_cookie,
    csrf_ok,
    current_user,
    set_session_cookie,
    sign_in,
    sign_out,
)
from vouch.web.pages import Pages

LOGIN_COOKIE = "vouch_console_login"
QUEUE_PAGE = 50
CSV_TABLES = ("pipeline", "funnel", "leaderboard", "cost", "tiers", "asks", "moderation")


class Console:
    def __init__(
        self,
        *,
        settings: Settings,
        pages: Pages,
        sessions: RequestSessions,
        report_sessions: RequestSessions | None = None,
    ) -> None:
        self.settings = settings
        self.pages = pages
        self.sessions = sessions
        self.report_sessions = report_sessions or sessions
        self.secure = settings.public_base_url.startswith("https://")

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/console/login", self.login_form, methods=["GET"]),
            Route("/console/login", self.login, methods=["POST"]),
            Route("/console/logout", self.logout, methods=["POST"]),
            Route("/console", self.dashboard, methods=["GET"]),
            Route("/console/moderation", self.queue, methods=["GET"]),
            Route("/console/moderation/{referral_id:int}", self.moderate, methods=["POST"]),
            Route("/console/export/{table}.csv", self.export, methods=["GET"]),
        ]

    # --- session ---------------------------------------------------------------------------

    def _session(self, request: Request) -> AsyncSession:
        return self.sessions.get(request.scope.setdefault("state", {}))

    def _reports(self, request: Request) -> AsyncSession:
        """Reports (overview, exports) read from the replica when one is configured."""
        return self.report_sessions.get(request.scope.setdefault("state", {}))

    async def _user(self, request: Request) -> ConsoleUser | None:
        session = self._session(request)
        user = await current_user(request, session, self.settings)
        if session.in_transaction():
            await session.commit()  # the session's idle clock, restarted
        return user

    def _to_login(self) -> Response:
        return RedirectResponse("/console/login", status_code=303)

    async def login_form(self, request: Request, error: str | None = None) -> Response:
        token = secrets.token_urlsafe(24)
        response = self.pages.render(
            request,
            "console/login.html",
            {"csrf": token, "error": error},
            status_code=401 if error else 200,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=900,
            path="/console",
            httponly=True,
            secure=self.secure,
            samesite="strict",
        )
        return response

    async def login(self, request: Request) -> Response:
        form = await request.form()
        submitted, expected = str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not constant_time_equals(submitted, expected):
            return await self.login_form(request, "Your sign-in form expired; please try again.")
        key = str(form.get("api_key", ""))[:200]
        session = self._session(request)
        user = await sign_in(session, key, self.settings) if key else None
        await session.commit()
        if user is None:
            return await self.login_form(request, "That API key is not valid or was revoked.")
        response = RedirectResponse("/console", status_code=303)
        set_session_cookie(response, user, settings=self.settings, secure=self.secure)
        response.delete_cookie(LOGIN_COOKIE, path="/console")
        return response

    async def logout(self, request: Request) -> Response:
        user = await self._user(request)
        form = await request.form()
        if user is not None:
            if not csrf_ok(user, str(form.get("csrf", ""))):
                return Response("invalid CSRF token", status_code=403)
            session = self._session(request)
            await sign_out(session, user)
            await session.commit()
        response = self._to_login()
        clear_session_cookie(response)
        return response

    # --- pages -----------------------------------------------------------------------------

    def _period(self, request: Request) -> Period:
        return Period.parse(
            request.query_params.get("since"),
            request.query_params.get("until"),
            today=utcnow().date(),
        )

    def _program_id(self, request: Request) -> int | None:
        raw = request.query_params.get("program", "")
        return int(raw) if raw.isdigit() and len(raw) < 12 else None

    async def dashboard(self, request: Request) -> Response:
        user = await self._user(request)
        if user is None:
            return self._to_login()
        try:
            data = await overview(
                self._reports(request),
                program_id=self._program_id(request),
                period=self._period(request),
            )
        except DomainError as exc:
            return self.pages.render(
                request,
                "console/message.html",
                {"user": user, "message": exc.message},
                status_code=400,
            )
        return self.pages.render(request, "console/overview.html", {"user": user, **_view(data)})

    async def queue(self, request: Request) -> Response:
        user = await self._user(request)
        if user is None:
            return self._to_login()
        page = await moderation.moderation_queue(
            self._session(request),
            program_id=self._program_id(request),
            first=QUEUE_PAGE,
            after=None,
        )
        return self.pages.render(
            request,
            "console/moderation.html",
            {
                "user": user,
                "items": page.items,
                "total": page.total,
                "notice": request.query_params.get("done"),
            },
        )

    async def moderate(self, request: Request) -> Response:
        user = await self._user(request)
        if user is None:
            return self._to_login()
        form = await request.form()
        if not csrf_ok(user, str(form.get("csrf", ""))):
            return Response("invalid CSRF token", status_code=403)
        if not user.can_moderate:
            return Response(
                "this API key may look but not moderate (needs write or admin)", status_code=403
            )
        decision = str(form.get("decision", ""))
        if decision not in ("approve", "reject"):
            return Response("decision must be approve or reject", status_code=400)
        session = self._session(request)
        try:
            await moderation.moderate_referral(
                session,
                request.path_params["referral_id"],
                approve=decision == "approve",
                reason=str(form.get("reason", ""))[:1000],
                actor=f"console:{user.name}",
                now=utcnow(),
            )
        except DomainError as exc:
            await session.rollback()
            return self.pages.render(
                request,
                "console/message.html",
                {"user": user, "message": exc.message},
                status_code=422,
            )
        await session.commit()
        return RedirectResponse(f"/console/moderation?done={decision}", status_code=303)

    async def export(self, request: Request) -> Response:
        user = await self._user(request)
        if user is None:
            return self._to_login()
        table = request.path_params["table"]
        if table not in CSV_TABLES:
            return Response(f"unknown table; use one of: {', '.join(CSV_TABLES)}", status_code=404)
        session = self._reports(request)
        try:
            period = self._period(request)
            program_id = self._program_id(request)
            if table == "moderation":
                page = await moderation.moderation_queue(
                    session, program_id=program_id, first=100, after=None
                )
                body = _csv(
                    ["referral_id", "program_id", "advocate_id", "flags", "claimed_at"],
                    [
                        (
                            r.id,
                            r.program_id,
                            r.advocate_id,
                            " ".join(r.flags),
                            r.created_at.isoformat(),
                        )
                        for r in page.items
                    ],
                )
            elif table in ("pipeline", "funnel", "leaderboard", "cost"):
                f = ReportFilter(program_id=program_id, since=period.since, until=period.until)
                body = await reports.export_csv(session, table, f, group_by="month")
            else:
                data = await overview(session, program_id=program_id, period=period)
                body = _extra_csv(table, data)
        except DomainError as exc:
            return Response(exc.message, status_code=400)
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": f'attachment; filename="vouch-{table}.csv"',
                "cache-control": "no-store",
            },
        )


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([reports._cell(v) for v in row])
    return out.getvalue()


def _extra_csv(table: str, data: Overview) -> str:
    if table == "tiers":
        t = data.tiers
        return _csv(
            ["tier", "advocates"],
            [*[(k, v) for k, v in sorted(t.counts.items())], ("none", t.untiered)],
        )
    if table == "asks":
        return _csv(
            ["type", "asked", "accepted", "published", "declined", "accept_rate", "publish_rate"],
            [
                (r.key, r.asked, r.accepted, r.published, r.declined, r.accept_rate, r.publish_rate)
                for r in data.asks
            ],
        )
    return ""


def _view(data: Overview) -> dict[str, Any]:
    """Turn the report rows into what the template shows: charts and formatted tables."""
    currency = data.program.currency
    months = [m for m in data.months if m.currency == currency]
    labels = [m.label for m in months]
    pipeline_chart = line_chart(
        "Referral-sourced pipeline and won revenue by month",
        labels,
        [
            Series(f"Pipeline ({currency})", [m.pipeline_minor / 100 for m in months]),
            Series(f"Won ({currency})", [m.won_minor / 100 for m in months]),
        ],
    )
    funnel_chart = bar_chart("Funnel", [(s.step, s.count) for s in data.funnel])
    tiers_chart = bar_chart(
        "Advocates by tier",
        [
            ("Tier 1", data.tiers.counts.get(1, 0)),
            ("Tier 2", data.tiers.counts.get(2, 0)),
            ("Tier 3", data.tiers.counts.get(3, 0)),
            ("Not tiered", data.tiers.untiered),
        ],
    )
    cost = next((c for c in data.liability if c.currency == currency), None)
    liability = [
        ("Pending", cost.pending_minor if cost else 0),
        ("Approved", cost.approved_minor if cost else 0),
        ("Fulfilled", cost.fulfilled_minor if cost else 0),
    ]
    liability_chart = bar_chart(
        f"Reward liability ({currency})", [(k, v / 100) for k, v in liability]
    )
    asks_chart = bar_chart(
        "Asks accepted by type", [(r.key.replace("_", " "), r.accepted) for r in data.asks]
    )
    return {
        "data": data,
        "currency": currency,
        "money": format_money,
        "pipeline_chart": pipeline_chart,
        "funnel_chart": funnel_chart,
        "tiers_chart": tiers_chart,
        "liability": liability,
        "liability_chart": liability_chart,
        "cost": asdict(cost) if cost else None,
        "asks_chart": asks_chart,
        "query": f"program={data.program.id}&since={data.period.since}&until={data.period.until}",
    }
