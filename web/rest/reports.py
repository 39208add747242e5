"""``GET /reports/{name}.csv``: RevOps reports as CSV for spreadsheets and BI tools.

Authenticated with an API key holding the read scope (``Authorization: Bearer vk_...``).
Query parameters: ``programId`` (opaque id), ``since`` and ``until`` (ISO dates, half-open),
``groupBy`` (pipeline only: program, advocate, tier, channel or month). ``kpis.csv`` gives
the referral KPIs as metric,value rows.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vouch.access.api_keys import authenticate
from vouch.advocacy.kpis import Window
from vouch.advocacy.referral_kpis import kpi_rows, referral_kpis
from vouch.api.ids import decode_id
from vouch.attribution import reports
from vouch.attribution.reports import ReportFilter
from vouch.core.errors import DomainError, ValidationFailed
from vouch.core.security import bearer
from vouch.models.enums import Scope


def _csv(header: list[str], rows: list[tuple[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([(k, "" if v is None else v) for k, v in rows])
    return out.getvalue()


def _date(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"{field} must be an ISO date (YYYY-MM-DD)", field=field) from None


async def report_csv(request: Request) -> Response:
    session = request.app.state.sessions.get(request.scope.setdefault("state", {}))
    token = bearer(request.headers.get("authorization")).token
    key = await authenticate(session, token) if token else None
    await session.commit()  # persist last_used_at; the report itself only reads
    if key is None or not ({Scope.READ, Scope.WRITE, Scope.ADMIN} & set(key.scopes)):
        return JSONResponse(
            {
                "error": {
                    "code": "FORBIDDEN",
                    "message": "an API key with the read scope is required",
                }
            },
            status_code=401,
            headers={"www-authenticate": "Bearer"},
        )
    name = request.path_params["name"]
    params = request.query_params
    try:
        program = params.get("programId")
        f = ReportFilter(
            program_id=decode_id(program, "Program", field="programId") if program else None,
            since=_date(params.get("since"), "since"),
            until=_date(params.get("until"), "until"),
        )
        replica = request.app.state.report_sessions.get(request.scope.setdefault("state", {}))
        if name == "kpis":
            since, until = f.checked().bounds()
            kpis = await referral_kpis(
                replica, program_id=f.program_id, window=Window(since=since, until=until)
            )
            body = _csv(["metric", "value"], kpi_rows(kpis))
        else:
            body = await reports.export_csv(
                replica, name, f, group_by=params.get("groupBy", "program")
            )
    except DomainError as exc:
        return JSONResponse(
            {"error": {"code": exc.code.value, "message": exc.message, "field": exc.field}},
            status_code=404 if exc.field == "name" else 422,
        )
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="vouch-{name}.csv"',
            "cache-control": "no-store",
        },
    )
