"""Holdout experiments and their report."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Self

import strawberry

from vouch.advocacy.experiments import ExperimentReport, OutcomeResult, ReferralPrompt
from vouch.advocacy.incrementality import Verdict
from vouch.api.ids import encode_id
from vouch.api.types.node import Node
from vouch.models.enums import ExperimentStatus
from vouch.models.experiment import Experiment

strawberry.enum(ExperimentStatus, description="Lifecycle of a holdout experiment.")
strawberry.enum(
    Verdict,
    name="ExperimentVerdict",
    description="What an outcome's comparison allows one to say; a winner is called only once "
    "the minimum sample is reached and the split matches the plan.",
)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@strawberry.type(name="Experiment", description="A holdout experiment in one program.")
class ExperimentType(Node):
    id: strawberry.ID = strawberry.field(description="Opaque global id.")
    program_id: strawberry.ID = strawberry.field(description="The program experimented on.")
    name: str = strawberry.field(description="Name.")
    status: ExperimentStatus = strawberry.field(description="running, paused or ended.")
    holdout_bps: int = strawberry.field(
        description="Planned share of eligible advocates held out, in basis points (1000 = 10%)."
    )
    withhold_asks: bool = strawberry.field(
        description="The holdout gets no automated asks in the program."
    )
    withhold_widget_prompt: bool = strawberry.field(
        description="The holdout's widget shows no referral prompt (`me.referralPrompt`)."
    )
    withholds: str = strawberry.field(
        description="What treatment has and the holdout does not, in words."
    )
    min_detectable_lift_bps: int = strawberry.field(
        description="The relative lift the experiment must be able to detect, in basis points; "
        "the minimum sample is computed for it."
    )
    started_at: datetime = strawberry.field(description="Start of the report's window (UTC).")
    paused_at: datetime | None = strawberry.field(description="When paused; null otherwise.")
    ended_at: datetime | None = strawberry.field(
        description="End of the report's window (UTC); null while not ended (the window runs "
        "to now)."
    )

    @classmethod
    def from_model(cls, e: Experiment) -> Self:
        withheld = [
            text
            for on, text in (
                (e.withhold_asks, "automated asks"),
                (e.withhold_widget_prompt, "the widget's referral prompt"),
            )
            if on
        ]
        return cls(
            id=strawberry.ID(encode_id("Experiment", e.id)),
            program_id=strawberry.ID(encode_id("Program", e.program_id)),
            name=e.name,
            status=ExperimentStatus(e.status),
            holdout_bps=e.holdout_bps,
            withhold_asks=e.withhold_asks,
            withhold_widget_prompt=e.withhold_widget_prompt,
            withholds=" and ".join(withheld),
            min_detectable_lift_bps=e.min_detectable_lift_bps,
            started_at=e.started_at,
            paused_at=e.paused_at,
            ended_at=e.ended_at,
        )


@strawberry.type(name="ExperimentStratum", description="Group sizes within one tier.")
class ExperimentStratumType:
    tier: int = strawberry.field(description="The tier at assignment (0 = untiered).")
    treatment: int = strawberry.field(description="Advocates in treatment.")
    holdout: int = strawberry.field(description="Advocates held out.")


@strawberry.type(
    name="ExperimentOutcome",
    description="One per-advocate outcome compared between the groups: difference of means "
    "with Welch's 95% interval (treatment minus holdout).",
)
class ExperimentOutcomeType:
    name: str = strawberry.field(
        description="referrals, pipeline_minor, revenue_minor, renewed or expansions."
    )
    description: str = strawberry.field(description="How the outcome is counted.")
    n_treatment: int = strawberry.field(description="Advocates in treatment.")
    n_holdout: int = strawberry.field(description="Advocates held out.")
    mean_treatment: float = strawberry.field(description="Mean per treated advocate.")
    mean_holdout: float = strawberry.field(description="Mean per held-out advocate.")
    absolute_lift: float = strawberry.field(description="Difference of the means.")
    absolute_low: float | None = strawberry.field(
        description="Lower bound of its 95% interval; null with fewer than two per group."
    )
    absolute_high: float | None = strawberry.field(description="Upper bound of that interval.")
    relative_lift: float | None = strawberry.field(
        description="Difference / holdout mean; null when the holdout mean is zero."
    )
    relative_low: float | None = strawberry.field(
        description="Lower bound of the relative lift's 95% interval (delta method)."
    )
    relative_high: float | None = strawberry.field(description="Upper bound of that interval.")
    p_value: float = strawberry.field(description="Two-sided p-value of Welch's t test.")
    required_treatment: int | None = strawberry.field(
        description="Treated advocates needed to detect the stated lift (80% power, 5% level); "
        "null until there is variance and a non-zero holdout mean to compute it from."
    )
    required_holdout: int | None = strawberry.field(description="Held-out advocates needed.")
    sample_reached: bool = strawberry.field(description="Both groups have their minimum.")
    verdict: Verdict = strawberry.field(description="What may be said about this outcome.")

    @classmethod
    def from_domain(cls, o: OutcomeResult) -> Self:
        a, lift = o.assessment, o.assessment.lift
        return cls(
            name=o.name,
            description=o.description,
            n_treatment=lift.n_treatment,
            n_holdout=lift.n_holdout,
            mean_treatment=lift.mean_treatment,
            mean_holdout=lift.mean_holdout,
            absolute_lift=lift.absolute,
            absolute_low=_finite(lift.absolute_low),
            absolute_high=_finite(lift.absolute_high),
            relative_lift=_finite(lift.relative),
            relative_low=_finite(lift.relative_low),
            relative_high=_finite(lift.relative_high),
            p_value=lift.p_value,
            required_treatment=a.required_treatment,
            required_holdout=a.required_holdout,
            sample_reached=a.sample_reached,
            verdict=a.verdict,
        )


@strawberry.type(
    name="ExperimentReport",
    description="Treatment against holdout over the experiment's window, with guard rails and "
    "the incremental ROI next to the attributed one.",
)
class ExperimentReportType:
    experiment: ExperimentType = strawberry.field(description="The experiment.")
    method: str = strawberry.field(
        description="How intervals are computed: 'welch' (difference of means, Welch's "
        "standard error and Welch-Satterthwaite degrees of freedom, Student's t)."
    )
    currency: str = strawberry.field(description="The program's currency; money outcomes use it.")
    window_start: datetime = strawberry.field(description="Window start (UTC, inclusive).")
    window_end: datetime = strawberry.field(description="Window end (UTC, exclusive).")
    planned_holdout_share: float = strawberry.field(description="The planned holdout share.")
    observed_holdout_share: float = strawberry.field(description="The assigned holdout share.")
    sample_ratio_p_value: float = strawberry.field(
        description="Chi-square test of the group sizes against the plan."
    )
    sample_ratio_mismatch: bool = strawberry.field(
        description="The split drifted from the plan (p < 0.001): results are not trustworthy."
    )
    strata: list[ExperimentStratumType] = strawberry.field(description="Group sizes per tier.")
    outcomes: list[ExperimentOutcomeType] = strawberry.field(
        description="Each outcome's comparison."
    )
    reward_cost_minor: int = strawberry.field(
        description="Rewards (both sides, not voided) created in the window on the treatment "
        "group's referrals."
    )
    attributed_revenue_minor: int = strawberry.field(
        description="Referral-sourced revenue of the treatment group in the window."
    )
    incremental_revenue_per_treated_minor: int = strawberry.field(
        description="Revenue lift per treated advocate (the revenue outcome's difference)."
    )
    incremental_revenue_minor: int = strawberry.field(
        description="Revenue lift per treated advocate times treated advocates."
    )
    incremental_revenue_low_minor: int = strawberry.field(
        description="Lower bound of the incremental revenue's 95% interval."
    )
    incremental_revenue_high_minor: int = strawberry.field(
        description="Upper bound of the incremental revenue's 95% interval."
    )
    attributed_roi: float | None = strawberry.field(
        description="(attributed revenue - reward cost) / reward cost; null without cost."
    )
    incremental_roi: float | None = strawberry.field(
        description="(incremental revenue - reward cost) / reward cost; null without cost."
    )
    verdict: Verdict = strawberry.field(description="The revenue outcome's verdict.")

    @classmethod
    def from_domain(cls, r: ExperimentReport) -> Self:
        return cls(
            experiment=ExperimentType.from_model(r.experiment),
            method="welch",
            currency=r.currency,
            window_start=r.window_start,
            window_end=r.window_end,
            planned_holdout_share=r.planned_holdout_share,
            observed_holdout_share=r.srm.observed_holdout_share,
            sample_ratio_p_value=r.srm.p_value,
            sample_ratio_mismatch=r.srm.mismatch,
            strata=[ExperimentStratumType(tier=s, treatment=t, holdout=h) for s, t, h in r.strata],
            outcomes=[ExperimentOutcomeType.from_domain(o) for o in r.outcomes],
            reward_cost_minor=r.reward_cost_minor,
            attributed_revenue_minor=r.attributed_revenue_minor,
            incremental_revenue_per_treated_minor=r.incremental_revenue_per_treated_minor,
            incremental_revenue_minor=r.incremental_revenue_minor,
            incremental_revenue_low_minor=r.incremental_revenue_low_minor,
            incremental_revenue_high_minor=r.incremental_revenue_high_minor,
            attributed_roi=r.attributed_roi,
            incremental_roi=r.incremental_roi,
            verdict=r.verdict,
        )


@strawberry.type(
    name="ReferralPrompt",
    description="Whether the widget should show the referral call to action, and why not.",
)
class ReferralPromptType:
    show: bool = strawberry.field(description="Show the referral prompt.")
    reason: str | None = strawberry.field(
        description="Why it is hidden (e.g. 'experiment_holdout: ...'); null when shown."
    )
    experiment_id: strawberry.ID | None = strawberry.field(
        description="The experiment that hides it, if any."
    )

    @classmethod
    def from_domain(cls, p: ReferralPrompt) -> Self:
        return cls(
            show=p.show,
            reason=p.reason,
            experiment_id=strawberry.ID(encode_id("Experiment", p.experiment_id))
            if p.experiment_id is not None
            else None,
        )
