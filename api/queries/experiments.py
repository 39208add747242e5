"""Holdout experiments and their reports (read scope)."""

from __future__ import annotations

import strawberry

from vouch.advocacy.experiments import experiment_report, get_experiment, list_experiments
from vouch.api.context import Info
from vouch.api.ids import decode_id
from vouch.api.permissions import require_scope
from vouch.api.types.experiment import ExperimentReportType, ExperimentType
from vouch.core.clock import utcnow
from vouch.models.enums import Scope


@strawberry.type
class ExperimentQueries:
    @strawberry.field(description="Holdout experiments, newest first, optionally of one program.")
    async def experiments(
        self, info: Info, program_id: strawberry.ID | None = None
    ) -> list[ExperimentType]:
        require_scope(info.context, Scope.READ)
        rows = await list_experiments(
            info.context.session,
            decode_id(program_id, "Program", field="programId") if program_id else None,
        )
        return [ExperimentType.from_model(e) for e in rows]

    @strawberry.field(description="One holdout experiment by id.")
    async def experiment(self, info: Info, id: strawberry.ID) -> ExperimentType:
        require_scope(info.context, Scope.READ)
        return ExperimentType.from_model(
            await get_experiment(info.context.session, decode_id(id, "Experiment"))
        )

    @strawberry.field(
        description="Treatment against holdout over the experiment's window: per-advocate "
        "outcomes with Welch 95% intervals, minimum sample, sample-ratio check, incremental "
        "and attributed ROI."
    )
    async def experiment_report(self, info: Info, id: strawberry.ID) -> ExperimentReportType:
        require_scope(info.context, Scope.READ)
        report = await experiment_report(
            info.context.session, decode_id(id, "Experiment"), now=utcnow()
        )
        return ExperimentReportType.from_domain(report)
