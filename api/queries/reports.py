from __future__ import annotations

from datetime import date

import strawberry

from vouch.api.context import Info
from vouch.api.ids import decode_id
from vouch.api.permissions import require_scope
from vouch.api.types.report import ReportsType, make_reports
from vouch.models.enums import Scope


@strawberry.type
class ReportQueries:
    @strawberry.field(
        description="RevOps reports for [since, until) (UTC days), optionally for one program."
    )
    async def reports(
        self,
        info: Info,
        program_id: strawberry.ID | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> ReportsType:
        require_scope(info.context, Scope.READ)
        return make_reports(
            decode_id(program_id, "Program", field="programId") if program_id else None,
            since,
            until,
        )
