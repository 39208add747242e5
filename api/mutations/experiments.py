"""Holdout experiments: create, pause, resume and end (admin scope)."""

from __future__ import annotations

import strawberry

from vouch.advocacy.experiments import ExperimentSpec, create_experiment, set_experiment_status
from vouch.api.context import Info
from vouch.api.errors import InputError, user_errors
from vouch.api.ids import decode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.experiment import ExperimentType
from vouch.core.clock import utcnow
from vouch.core.errors import DomainError
from vouch.models.enums import ExperimentStatus, Scope
from vouch.models.experiment import Experiment


@strawberry.input(description="A new holdout experiment.")
class CreateExperimentInput:
    program_id: strawberry.ID = strawberry.field(description="The program to experiment on.")
    name: str = strawberry.field(description="Name, 1 to 200 characters.")
    holdout_bps: int = strawberry.field(
        default=1_000,
        description="Share of eligible advocates to hold out, 100 (1%) to 5000 (50%) basis "
        "points; default 1000 (10%).",
    )
    withhold_asks: bool = strawberry.field(
        default=True, description="The holdout gets no automated asks in the program."
    )
    withhold_widget_prompt: bool = strawberry.field(
        default=True, description="The holdout's widget shows no referral prompt."
    )
    min_detectable_lift_bps: int = strawberry.field(
        default=1_000,
        description="The relative lift to be able to detect, 100 to 100000 basis points "
        "(default 1000 = 10%); sets the minimum sample.",
    )


@strawberry.type(
    description="Result of createExperiment, pauseExperiment, resumeExperiment and endExperiment."
)
class ExperimentPayload:
    experiment: ExperimentType | None = strawberry.field(description="The experiment as it is now.")
    errors: list[InputError] = strawberry.field(description="Why nothing was changed.")


def _payload(result: Experiment) -> ExperimentPayload:
    return ExperimentPayload(experiment=ExperimentType.from_model(result), errors=[])


def _failed(exc: DomainError) -> ExperimentPayload:
    return ExperimentPayload(experiment=None, errors=user_errors(exc))


@transaction(_failed)
async def _set_status(info: Info, id: strawberry.ID, status: ExperimentStatus) -> ExperimentPayload:
    require_scope(info.context, Scope.ADMIN)

    experiment = await set_experiment_status(
        info.context.session, decode_id(id, "Experiment"), status, now=utcnow()
    )
    return _payload(experiment)


@strawberry.type
class ExperimentMutations:
    @strawberry.mutation(
        description="Start a holdout experiment and assign the program's eligible (tiered) "
        "advocates to treatment or holdout (admin scope). One open experiment per program."
    )
    @transaction(_failed)
    async def create_experiment(
        self, info: Info, input: CreateExperimentInput
    ) -> ExperimentPayload:
        require_scope(info.context, Scope.ADMIN)

        experiment = await create_experiment(
            info.context.session,
            decode_id(input.program_id, "Program", field="programId"),
            ExperimentSpec(
                name=input.name,
                holdout_bps=input.holdout_bps,
                withhold_asks=input.withhold_asks,
                withhold_widget_prompt=input.withhold_widget_prompt,
                min_detectable_lift_bps=input.min_detectable_lift_bps,
            ),
            now=utcnow(),
        )
        return _payload(experiment)

    @strawberry.mutation(
        description="Pause a running experiment: nothing is withheld and no one is assigned "
        "until it resumes; assignments stay (admin scope)."
    )
    async def pause_experiment(self, info: Info, id: strawberry.ID) -> ExperimentPayload:
        return await _set_status(info, id, ExperimentStatus.PAUSED)

    @strawberry.mutation(description="Resume a paused experiment (admin scope).")
    async def resume_experiment(self, info: Info, id: strawberry.ID) -> ExperimentPayload:
        return await _set_status(info, id, ExperimentStatus.RUNNING)

    @strawberry.mutation(
        description="End an experiment for good: withholding stops and the report's window "
        "closes now (admin scope)."
    )
    async def end_experiment(self, info: Info, id: strawberry.ID) -> ExperimentPayload:
        return await _set_status(info, id, ExperimentStatus.ENDED)
