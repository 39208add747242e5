from __future__ import annotations

import strawberry

from vouch.api.context import Info
from vouch.api.permissions import require_scope
from vouch.api.types.job import ScheduledJobType
from vouch.core.clock import utcnow
from vouch.jobs.definitions import JOBS, schedules
from vouch.jobs.runs import job_statuses
from vouch.models.enums import Scope


@strawberry.type
class JobQueries:
    @strawberry.field(
        description="Every scheduled job: its schedule, last run, duration, outcome and next "
        "run (admin scope)."
    )
    async def scheduled_jobs(self, info: Info) -> list[ScheduledJobType]:
        require_scope(info.context, Scope.ADMIN)
        chosen = schedules(info.context.settings)
        table = [(job.name, job.description, chosen.get(job.name)) for job in JOBS]
        statuses = await job_statuses(info.context.session, table, now=utcnow())
        return [ScheduledJobType.from_status(s) for s in statuses]
