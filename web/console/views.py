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
from vouch.advocacy.referral_kpis import kpi_rows
from vouch.attribution import moderation, reports
from vouch.attribution.integrations import events as integration_events
from vouch.attribution.reports import ReportFilter
from vouch.core.clock import utcnow
from vouch.core.errors import DomainError
from vouch.core.ids import decode_id, encode_id
from vouch.core.money import format_money, minor_unit_exponent
from vouch.core.security import constant_time_equals
from vouch.core.sessions import RequestSessions
from vouch.core.settings import Settings
from vouch.jobs.definitions import JOBS, schedules
from vouch.jobs.runs import job_statuses
from vouch.web.console.auth import (
    ConsoleUser,
    clear_session_cookie,
    csrf_ok,
    current_user,
    set_session_cookie,
    sign_in,
    sign_out,
)
from vouch.web.console.charts import Series, bar_chart, line_chart
from vouch.web.pages import Pages

LOGIN_COOKIE = "vouch_console_login"
QUEUE_PAGE = 50
CSV_TABLES = (
    "pipeline",
    "funnel",
    "leaderboard",
    "cost",
    "tiers",
    "asks",
    "kpis",
    "moderation",
)


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
            Route("/console/moderation/{referral_id}", self.moderate, methods=["POST"]),
            Route("/console/export/{table}.csv", self.export, methods=["GET"]),
            Route("/console/jobs", self.jobs, methods=["GET"]),
            Route("/console/integrations", self.integrations, methods=["GET"]),
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
        """The opaque program id of ``?program=``; anything else shows every program."""
        raw = request.query_params.get("program", "")
        try:
            return decode_id(raw, "Program", field="program") if raw else None
        except DomainError:
            return None

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
                decode_id(request.path_params["referral_id"], "Referral", field="referral"),
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

    async def jobs(self, request: Request) -> Response:
        """Scheduled jobs: the same status as GraphQL ``scheduledJobs`` (admin keys only)."""
        user = await self._user(request)
        if user is None:
            return self._to_login()
        if "admin" not in user.scopes:
            return Response("scheduled jobs are shown to admin keys only", status_code=403)
        chosen = schedules(self.settings)
        table = [(job.name, job.description, chosen.get(job.name)) for job in JOBS]
        statuses = await job_statuses(self._session(request), table, now=utcnow())
        return self.pages.render(request, "console/jobs.html", {"user": user, "jobs": statuses})

    async def integrations(self, request: Request) -> Response:
        """HubSpot, Salesforce and Stripe: configured or not, what each sent and what Vouch did
        with it (the same events as GraphQL ``integrationEvents``; admin keys only)."""
        user = await self._user(request)
        if user is None:
            return self._to_login()
        if "admin" not in user.scopes:
            return Response("integrations are shown to admin keys only", status_code=403)
        session = self._session(request)
        wanted = request.query_params.get("provider") or None
        try:
            recent = await integration_events.list_events(
                session, provider=wanted, status=None, first=50, after=None
            )
        except DomainError as exc:
            return Response(exc.message, status_code=400)
        configured = {
            "hubspot": bool(self.settings.hubspot_client_secret),
            "salesforce": bool(self.settings.salesforce_outbound_token),
            "stripe": bool(self.settings.stripe_webhook_secret),
        }
        providers = [
            {
                "name": name,
                "configured": configured[name],
                "counts": await integration_events.event_counts(session, name),
            }
            for name in ("hubspot", "salesforce", "stripe")
        ]
        return self.pages.render(
            request,
            "console/integrations.html",
            {
                "user": user,
                "providers": providers,
                "events": recent.items,
                "provider": wanted,
            },
        )

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
                            encode_id("Referral", r.id),
                            encode_id("Program", r.program_id),
                            encode_id("Advocate", r.advocate_id),
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
    if table == "kpis":
        return _csv(["metric", "value"], kpi_rows(data.kpis))
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
    """Turn the report rows into what the template shows: charts and formatted tables. Every
    currency the reports return is shown (the program's first), never summed across."""
    currency = data.program.currency
    currencies = sorted(
        {m.currency for m in data.months} | {c.currency for c in data.liability} | {currency},
        key=lambda c: (c != currency, c),
    )
    pipeline_charts = []
    for c in currencies:
        months = [m for m in data.months if m.currency == c]
        if not months and c != currency:
            continue
        unit = 10 ** minor_unit_exponent(c)
        pipeline_charts.append(
            line_chart(
                f"Referral-sourced pipeline and won revenue by month ({c})",
                [m.label for m in months],
                [
                    Series(f"Pipeline ({c})", [m.pipeline_minor / unit for m in months]),
                    Series(f"Won ({c})", [m.won_minor / unit for m in months]),
                ],
            )
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
    liabilities = []
    for c in currencies:
        cost = next((row for row in data.liability if row.currency == c), None)
        if cost is None and c != currency:
            continue
        states = [
            ("Pending", cost.pending_minor if cost else 0),
            ("Approved", cost.approved_minor if cost else 0),
            ("Fulfilled", cost.fulfilled_minor if cost else 0),
        ]
        unit = 10 ** minor_unit_exponent(c)
        liabilities.append(
            {
                "currency": c,
                "states": states,
                "cost": asdict(cost) if cost else None,
                "chart": bar_chart(f"Reward liability ({c})", [(k, v / unit) for k, v in states]),
            }
        )
    asks_chart = bar_chart(
        "Asks accepted by type", [(r.key.replace("_", " "), r.accepted) for r in data.asks]
    )
    program = encode_id("Program", data.program.id)
    return {
        "data": data,
        "currency": currency,
        "money": format_money,
        "pipeline_charts": pipeline_charts,
        "funnel_chart": funnel_chart,
        "tiers_chart": tiers_chart,
        "liabilities": liabilities,
        "asks_chart": asks_chart,
        "kpis": kpi_rows(data.kpis),
        "query": f"program={program}&since={data.period.since}&until={data.period.until}",
    }
