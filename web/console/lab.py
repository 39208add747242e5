"""The console's lab: holdout experiment reports (lift and its interval as a chart, CSV) and
the reward-policy backtest form (edit a copy of the rules, see both ledgers side by side).

Same sign-in, CSRF and thin handlers as ``web.console``: authenticate, parse, call one domain
function, render.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from vouch.advocacy.backtests import backtest_policy
from vouch.advocacy.experiments import (
    ExperimentReport,
    experiment_report,
    get_experiment,
    list_experiments,
    report_csv,
)
from vouch.attribution.backtest import BacktestResult, PolicyRule
from vouch.catalog.programs import RuleSpec, get_program, list_programs
from vouch.core.clock import utcnow
from vouch.core.errors import DomainError, ValidationFailed
from vouch.core.money import format_money
from vouch.models.enums import RewardCalc, RewardKind, RewardSide, RewardTrigger
from vouch.web.console.auth import ConsoleUser, csrf_ok
from vouch.web.console.charts import Interval, interval_chart
from vouch.web.console.views import Console

MAX_FORM_RULES = 20
BLANK_ROWS = 2
RULE_FIELDS = (
    "name",
    "side",
    "trigger",
    "calc",
    "kind",
    "amount_minor",
    "currency",
    "percent_bps",
    "points",
    "from_nth_referral",
    "cap_count",
    "cap_period_days",
    "clawback_days",
)


class LabConsole(Console):
    def routes(self) -> list[BaseRoute]:
        return [
            Route("/console/experiments", self.experiments, methods=["GET"]),
            Route("/console/experiments/{experiment_id:int}.csv", self.export, methods=["GET"]),
            Route("/console/backtest", self.backtest_form, methods=["GET"]),
            Route("/console/backtest", self.backtest, methods=["POST"]),
        ]

    def _message(self, request: Request, user: ConsoleUser, message: str) -> Response:
        return self.pages.render(
            request, "console/message.html", {"user": user, "message": message}, status_code=400
        )

    # --- experiments -----------------------------------------------------------------------

    async def experiments(self, request: Request) -> Response:
        user = await self._user(request)
        if user is None:
            return self._to_login()
        session = self._reports(request)
        experiments = await list_experiments(session, self._program_id(request))
        raw = request.query_params.get("id", "")
        chosen = int(raw) if raw.isdigit() and len(raw) < 12 else None
        if chosen is None and experiments:
            chosen = experiments[0].id
        report = None
        if chosen is not None:
            try:
                report = await experiment_report(session, chosen, now=utcnow())
            except DomainError as exc:
                return self._message(request, user, exc.message)
        return self.pages.render(
            request,
            "console/experiments.html",
            {
                "user": user,
                "experiments": experiments,
                "report": report,
                "chart": _lift_chart(report) if report else None,
                "money": format_money,
            },
        )

    async def export(self, request: Request) -> Response:  # type: ignore[override]
        user = await self._user(request)
        if user is None:
            return self._to_login()
        session = self._reports(request)
        experiment_id = int(request.path_params["experiment_id"])
        try:
            await get_experiment(session, experiment_id)
            report = await experiment_report(session, experiment_id, now=utcnow())
        except DomainError as exc:
            return Response(exc.message, status_code=404 if exc.code == "NOT_FOUND" else 400)
        return Response(
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": (
                    f'attachment; filename="vouch-experiment-{experiment_id}.csv"'
                ),
                "cache-control": "no-store",
            },
        )

    # --- backtests -------------------------------------------------------------------------

    async def _programs(self, request: Request) -> list[Any]:
        return (
            await list_programs(self._session(request), status=None, first=100, after=None)
        ).items

    async def backtest_form(self, request: Request) -> Response:
        user = await self._user(request)
        if user is None:
            return self._to_login()
        programs = await self._programs(request)
        program_id = self._program_id(request) or (programs[0].id if programs else None)
        if program_id is None:
            return self._message(request, user, "There is no program to backtest yet.")
        today = utcnow().date()
        since, until = today - timedelta(days=89), today + timedelta(days=1)
        try:
            result = await backtest_policy(
                self._session(request),
                program_id,
                None,
                since=since,
                until=until,
                processes=self.settings.backtest_processes,
                processes_from=self.settings.backtest_processes_from,
            )
        except DomainError as exc:
            return self._message(request, user, exc.message)
        rows = [_rule_row(r) for r in result.rules]
        return self._render_backtest(
            request, user, programs, program_id, since, until, rows, None, None, None
        )

    async def backtest(self, request: Request) -> Response:
        user = await self._user(request)
        if user is None:
            return self._to_login()
        form = await request.form()
        if not csrf_ok(user, str(form.get("csrf", ""))):
            return Response("invalid CSRF token", status_code=403)
        programs = await self._programs(request)
        rows = _form_rows(form)
        try:
            program_id = _int(form, "program", required=True)
            assert program_id is not None
            await get_program(self._session(request), program_id)
            since = _date(form, "since")
            until = _date(form, "until")
            holding = _int(form, "holding_days")
            specs = [_spec(row, i) for i, row in enumerate(rows) if row["name"].strip()]
            result = await backtest_policy(
                self._session(request),
                program_id,
                specs,
                since=since,
                until=until,
                holding_days=holding,
                auto_approve=form.get("auto_approve") == "on",
                processes=self.settings.backtest_processes,
                processes_from=self.settings.backtest_processes_from,
            )
        except DomainError as exc:
            return self._message(request, user, f"{exc.message} ({exc.field})")
        return self._render_backtest(
            request, user, programs, program_id, since, until, rows, result, holding, None
        )

    def _render_backtest(
        self,
        request: Request,
        user: ConsoleUser,
        programs: list[Any],
        program_id: int,
        since: date,
        until: date,
        rows: list[dict[str, str]],
        result: BacktestResult | None,
        holding: int | None,
        error: str | None,
    ) -> Response:
        blank = dict.fromkeys(RULE_FIELDS, "")
        padded = [*rows, *[dict(blank) for _ in range(BLANK_ROWS)]][:MAX_FORM_RULES]
        return self.pages.render(
            request,
            "console/backtest.html",
            {
                "user": user,
                "programs": programs,
                "program_id": program_id,
                "since": since,
                "until": until,
                "rows": padded,
                "result": result,
                "holding": holding,
                "error": error,
                "money": format_money,
                "sides": [s.value for s in RewardSide],
                "triggers": [t.value for t in RewardTrigger],
                "calcs": [c.value for c in RewardCalc],
                "kinds": [k.value for k in RewardKind],
            },
        )


def _lift_chart(report: ExperimentReport) -> Any:
    rows = []
    for o in report.outcomes:
        lift = o.assessment.lift
        if lift.relative is None:
            continue
        low, high = lift.relative_low, lift.relative_high
        rows.append(
            Interval(
                o.name.replace("_minor", "").replace("_", " "),
                lift.relative * 100,
                low * 100 if low is not None else None,
                high * 100 if high is not None else None,
            )
        )
    return interval_chart("Relative lift of treatment over holdout, with 95% intervals", rows)


def _rule_row(rule: PolicyRule) -> dict[str, str]:
    return {
        f: "" if getattr(rule, f) is None else str(getattr(rule, f))
        for f in RULE_FIELDS
        if hasattr(rule, f)
    }


def _form_rows(form: FormData) -> list[dict[str, str]]:
    rows = []
    for i in range(MAX_FORM_RULES):
        row = {f: str(form.get(f"rule-{i}-{f}", ""))[:100].strip() for f in RULE_FIELDS}
        if any(row.values()):
            rows.append(row)
    return rows


def _int(form: Any, name: str, *, required: bool = False, field: str | None = None) -> int | None:
    raw = str(form.get(name, "")).strip()
    if not raw:
        if required:
            raise ValidationFailed(f"{name} is required", field=field or name)
        return None
    if not raw.lstrip("-").isdigit() or len(raw) > 15:
        raise ValidationFailed(f"{name} must be a whole number", field=field or name)
    return int(raw)


def _date(form: FormData, name: str) -> date:
    try:
        return date.fromisoformat(str(form.get(name, "")))
    except ValueError:
        raise ValidationFailed(f"{name} must be a date (YYYY-MM-DD)", field=name) from None


def _spec(row: dict[str, str], i: int) -> RuleSpec:
    def enum(cls: Any, key: str, default: Any = None) -> Any:
        value = row[key] or (default.value if default is not None else "")
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(e.value for e in cls)
            raise ValidationFailed(f"use one of: {allowed}", field=f"rules.{i}.{key}") from None

    def number(key: str, default: int) -> int:
        value = _int(row, key, field=f"rules.{i}.{key}")
        return default if value is None else value

    return RuleSpec(
        name=row["name"],
        side=enum(RewardSide, "side"),
        trigger=enum(RewardTrigger, "trigger"),
        kind=enum(RewardKind, "kind", RewardKind.CREDIT),
        calc=enum(RewardCalc, "calc", RewardCalc.FIXED),
        amount_minor=number("amount_minor", 0),
        currency=row["currency"] or None,
        percent_bps=number("percent_bps", 0),
        points=number("points", 0),
        from_nth_referral=number("from_nth_referral", 1),
        cap_count=_int(row, "cap_count", field=f"rules.{i}.capCount"),
        cap_period_days=number("cap_period_days", 365),
        clawback_days=number("clawback_days", 60),
    )
