"""``GET /reports/{name}.csv``: RevOps reports as CSV for spreadsheets and BI tools.

Authenticated with an API key holding the read scope (``Authorization: Bearer vk_...``).
Query parameters: ``programId`` (opaque id), ``since`` and ``until`` (ISO dates, half-open),
``groupBy`` (pipeline only: program, advocate, tier, channel or month).
"""

from __future__ import annotations

from datetime import date

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vouch.access.api_keys import authenticate
from vouch.api.ids import decode_id
from vouch.attribution import reports
from vouch.attribution.reports import ReportFilter
from vouch.core.errors import DomainError, ValidationFailed
from vouch.models.enums import Scope


def _date(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"{field} must be an ISO date (YYYY-MM-DD)", field=field) from None


async def report_csv(request: Request) -> Response:
    session = request.app.state.sessions.get(request.scope.setdefault("state", {}))
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    key = await authenticate(session, token.strip()) if scheme.lower() == "bearer" else None
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
        body = await reports.export_csv(replica, name, f, group_by=params.get("groupBy", "program"))
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
