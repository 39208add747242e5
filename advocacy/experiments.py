"""Holdout experiments: does the program cause revenue, or only attribute it?

Assignment. An advocate is eligible when it has a tier in the program (and is not erased).
Each eligible advocate gets a key, the first 16 hex digits of SHA-256 of ``"{experiment
id}:{advocate id}"``; within each tier (the stratum), advocates are taken in key order and the
holdout is filled so that after the k-th advocate of a tier it holds ``round(k * share)`` of
them. The assignment is therefore a deterministic function of the experiment, the advocates and
the order in which they became eligible; each tier is split to within one advocate of the plan.
A row is inserted once per (experiment, advocate) under a lock on the experiment and never
updated: advocates who become eligible later (a tier recompute, an ask evaluation) are added
the same way, counting the tier's earlier assignments.

Withholding. While an experiment runs, its holdout gets no automated asks in the program
(``withhold_asks``) and the widget shows no referral prompt (``withhold_widget_prompt``);
everything else (links, landing pages, rewards, manual asks) is unchanged. A paused experiment
withholds nothing and assigns no one; an ended one is over for good.

Report. Per-advocate outcomes over the window ``[started_at, ended_at or now)`` — see
``docs/guides/incrementality.md`` for each definition — compared with ``incrementality``.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy import incrementality
from vouch.attribution.definitions import is_referral
from vouch.core.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from vouch.core.widget_cache import announce_widget_change
from vouch.models import (
    Advocate,
    AdvocateScore,
    Opportunity,
    Program,
    Referral,
    RevenueEvent,
    Reward,
    Signal,
)
from vouch.models.enums import (
    ExperimentGroup,
    ExperimentStatus,
    RevenueKind,
    RewardState,
    SignalKind,
)
from vouch.models.experiment import Experiment, ExperimentAssignment

MAX_NAME = 200


def assignment_key(experiment_id: int, advocate_id: int) -> str:
    """The advocate's deterministic position in its stratum's order."""
    return hashlib.sha256(f"{experiment_id}:{advocate_id}".encode()).hexdigest()[:16]


def assign(
    holdout_bps: int,
    counts: dict[int, tuple[int, int]],
    newcomers: Sequence[tuple[int, int, str]],
) -> list[tuple[int, int, str]]:
    """Groups for ``newcomers`` (advocate id, stratum, key), given each stratum's (assigned,
    held out) so far: in key order, the k-th advocate of a stratum joins the holdout while the
    holdout holds fewer than round(k * share). Returns (advocate id, stratum, group)."""
    state = dict(counts)
    out: list[tuple[int, int, str]] = []
    for advocate_id, stratum, _key in sorted(newcomers, key=lambda a: (a[1], a[2], a[0])):
        assigned, held = state.get(stratum, (0, 0))
        assigned += 1
        target = (holdout_bps * assigned + 5_000) // 10_000
        if held < target:
            held += 1
            group = ExperimentGroup.HOLDOUT
        else:
            group = ExperimentGroup.TREATMENT
        state[stratum] = (assigned, held)
        out.append((advocate_id, stratum, group.value))
    return out


# --- lifecycle ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExperimentSpec:
    name: str
    holdout_bps: int = 1_000
    withhold_asks: bool = True
    withhold_widget_prompt: bool = True
    min_detectable_lift_bps: int = 1_000


async def get_experiment(
    session: AsyncSession, experiment_id: int, *, for_update: bool = False
) -> Experiment:
    stmt = select(Experiment).where(Experiment.id == experiment_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    experiment = await session.scalar(stmt)
    if experiment is None:
        raise NotFound("no such experiment", field="id")
    return experiment


async def list_experiments(session: AsyncSession, program_id: int | None) -> list[Experiment]:
    """Experiments, newest first."""
    stmt = select(Experiment).order_by(Experiment.id.desc())
    if program_id is not None:
        stmt = stmt.where(Experiment.program_id == program_id)
    return list(await session.scalars(stmt))


async def create_experiment(
    session: AsyncSession, program_id: int, spec: ExperimentSpec, *, now: datetime
) -> Experiment:
    """Start an experiment and assign every advocate eligible now."""
    name = spec.name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise ValidationFailed(f"name must be 1 to {MAX_NAME} characters", field="name")
    if not 100 <= spec.holdout_bps <= 5_000:
        raise ValidationFailed(
            "holdoutBps must be between 100 (1%) and 5000 (50%)", field="holdoutBps"
        )
    if not 100 <= spec.min_detectable_lift_bps <= 100_000:
        raise ValidationFailed(
            "minDetectableLiftBps must be between 100 (1%) and 100000 (1000%)",
            field="minDetectableLiftBps",
        )
    if not (spec.withhold_asks or spec.withhold_widget_prompt):
        raise ValidationFailed(
            "an experiment must withhold automated asks, the widget prompt or both",
            field="withholdAsks",
        )
    program = await session.scalar(
        select(Program).where(Program.id == program_id).with_for_update()
    )
    if program is None:
        raise NotFound("no such program", field="programId")
    open_one = await session.scalar(
        select(Experiment.id).where(
            Experiment.program_id == program_id, Experiment.status != ExperimentStatus.ENDED
        )
    )
    if open_one is not None:
        raise Conflict(
            "the program already has an experiment that has not ended; end it first",
            field="programId",
        )
    experiment = Experiment(
        program_id=program_id,
        name=name,
        status=ExperimentStatus.RUNNING,
        holdout_bps=spec.holdout_bps,
        withhold_asks=spec.withhold_asks,
        withhold_widget_prompt=spec.withhold_widget_prompt,
        min_detectable_lift_bps=spec.min_detectable_lift_bps,
        started_at=now,
    )
    session.add(experiment)
    await session.flush()
    await assign_eligible(session, experiment, now=now)
    await announce_widget_change(session, None)  # holdouts' widgets withhold the prompt now
    return experiment


# Target status -> the statuses it may be reached from (re-setting the current one is a no-op).
_TRANSITIONS: dict[ExperimentStatus, frozenset[ExperimentStatus]] = {
    ExperimentStatus.PAUSED: frozenset({ExperimentStatus.RUNNING}),
    ExperimentStatus.RUNNING: frozenset({ExperimentStatus.PAUSED}),
    ExperimentStatus.ENDED: frozenset({ExperimentStatus.RUNNING, ExperimentStatus.PAUSED}),
}


async def set_experiment_status(
    session: AsyncSession, experiment_id: int, status: ExperimentStatus, *, now: datetime
) -> Experiment:
    """Pause, resume or end an experiment. Ending fixes the report's window."""
    experiment = await get_experiment(session, experiment_id, for_update=True)
    current = ExperimentStatus(experiment.status)
    if current is status:
        return experiment
    if current not in _TRANSITIONS[status]:
        article = "an" if current is ExperimentStatus.ENDED else "a"
        raise InvalidTransition(
            f"{article} {current.value} experiment cannot become {status.value}", field="id"
        )
    experiment.status = status.value
    if status is ExperimentStatus.PAUSED:
        experiment.paused_at = now
    elif status is ExperimentStatus.RUNNING:
        experiment.paused_at = None
        await session.flush()
        await assign_eligible(session, experiment, now=now)
    else:
        experiment.ended_at = now
    await session.flush()
    await announce_widget_change(session, None)  # the holdouts' widgets change with it
    return experiment


# --- assignment --------------------------------------------------------------------------------


async def assign_eligible(
    session: AsyncSession,
    experiment: Experiment,
    *,
    now: datetime,
    advocate_ids: Sequence[int] | None = None,
) -> int:
    """Assign the program's eligible advocates not assigned yet (or only ``advocate_ids``).

    Holds the experiment's row lock, so concurrent callers count each other's assignments.
    Returns how many were assigned.
    """
    if experiment.status != ExperimentStatus.RUNNING:
        return 0
    await session.execute(
        select(Experiment.id).where(Experiment.id == experiment.id).with_for_update()
    )
    assigned = select(ExperimentAssignment.advocate_id).where(
        ExperimentAssignment.experiment_id == experiment.id
    )
    stmt = (
        select(AdvocateScore.advocate_id, AdvocateScore.tier)
        .join(Advocate, Advocate.id == AdvocateScore.advocate_id)
        .where(
            AdvocateScore.program_id == experiment.program_id,
            AdvocateScore.tier.is_not(None),
            Advocate.erased_at.is_(None),
            AdvocateScore.advocate_id.not_in(assigned),
        )
    )
    if advocate_ids is not None:
        stmt = stmt.where(AdvocateScore.advocate_id.in_(list(advocate_ids)))
    newcomers = [
        (int(pk), int(tier or 0), assignment_key(experiment.id, int(pk)))
        for pk, tier in (await session.execute(stmt)).all()
    ]
    if not newcomers:
        return 0
    counts = {
        int(stratum): (int(n), int(held))
        for stratum, n, held in (
            await session.execute(
                select(
                    ExperimentAssignment.stratum,
                    func.count(),
                    func.count().filter(ExperimentAssignment.arm == ExperimentGroup.HOLDOUT),
                )
                .where(ExperimentAssignment.experiment_id == experiment.id)
                .group_by(ExperimentAssignment.stratum)
            )
        ).all()
    }
    keys = {pk: key for pk, _, key in newcomers}
    rows = [
        {
            "experiment_id": experiment.id,
            "advocate_id": pk,
            "arm": group,
            "stratum": stratum,
            "hash_key": keys[pk],
            "assigned_at": now,
        }
        for pk, stratum, group in assign(experiment.holdout_bps, counts, newcomers)
    ]
    for start in range(0, len(rows), 5_000):
        await session.execute(
            insert(ExperimentAssignment)
            .values(rows[start : start + 5_000])
            .on_conflict_do_nothing(index_elements=["experiment_id", "advocate_id"])
        )
    return len(rows)


async def assign_program(
    session: AsyncSession, program_id: int, *, now: datetime, advocate_ids: Sequence[int] | None
) -> int:
    """Assign newly eligible advocates to the program's running experiment, if any."""
    experiment = await session.scalar(
        select(Experiment).where(
            Experiment.program_id == program_id, Experiment.status == ExperimentStatus.RUNNING
        )
    )
    if experiment is None:
        return 0
    return await assign_eligible(session, experiment, now=now, advocate_ids=advocate_ids)


@dataclass(frozen=True, slots=True)
class Holdout:
    """An advocate held out of a running experiment, and what it withholds."""

    experiment_id: int
    program_id: int
    experiment_name: str
    withhold_asks: bool
    withhold_widget_prompt: bool


def _holding_out(stmt: Any, advocate_id: Any) -> Any:
    """``stmt`` over the running experiments that hold ``advocate_id`` (a value or a bound
    parameter) out, by program: one definition for the asks' guard, the widget's prompt and the
    widget's one-statement load."""
    return (
        stmt.join(
            ExperimentAssignment,
            and_(
                ExperimentAssignment.experiment_id == Experiment.id,
                ExperimentAssignment.advocate_id == advocate_id,
            ),
        )
        .where(
            Experiment.status == ExperimentStatus.RUNNING,
            ExperimentAssignment.arm == ExperimentGroup.HOLDOUT,
        )
        .order_by(Experiment.program_id)
    )


async def holdouts_of(
    session: AsyncSession, advocate_id: int, *, program_id: int | None = None
) -> list[Holdout]:
    """The running experiments that hold this advocate out (at most one per program)."""
    stmt = _holding_out(select(Experiment), advocate_id)
    if program_id is not None:
        stmt = stmt.where(Experiment.program_id == program_id)
    return [
        Holdout(e.id, e.program_id, e.name, e.withhold_asks, e.withhold_widget_prompt)
        for e in await session.scalars(stmt)
    ]


# --- the report --------------------------------------------------------------------------------

# Per-advocate outcomes, in the order the report lists them.
OUTCOMES: tuple[tuple[str, str], ...] = (
    ("referrals", "Referrals made (leads, rejected excluded)"),
    ("pipeline_minor", "Referral-sourced pipeline (minor units)"),
    ("revenue_minor", "Referral-sourced won revenue, charges minus refunds (minor units)"),
    ("renewed", "Renewed (a renewal signal in the window: 1, else 0)"),
    ("expansions", "Expansions (expansion signals in the window)"),
)
PRIMARY = "revenue_minor"


@dataclass(frozen=True, slots=True)
class OutcomeResult:
    name: str
    description: str
    assessment: incrementality.Assessment


@dataclass(frozen=True, slots=True)
class ExperimentReport:
    experiment: Experiment
    currency: str
    window_start: datetime
    window_end: datetime
    planned_holdout_share: float
    srm: incrementality.SampleRatio
    strata: list[tuple[int, int, int]]  # stratum, treatment, holdout
    outcomes: list[OutcomeResult]
    # Money: the treatment group's reward cost, its attributed revenue, and the incremental
    # revenue the lift implies (per treated advocate and in total), all in ``currency``.
    reward_cost_minor: int
    attributed_revenue_minor: int
    incremental_revenue_per_treated_minor: int
    incremental_revenue_minor: int
    incremental_revenue_low_minor: int
    incremental_revenue_high_minor: int
    attributed_roi: float | None
    incremental_roi: float | None
    verdict: incrementality.Verdict

    def outcome(self, name: str) -> OutcomeResult:
        return next(o for o in self.outcomes if o.name == name)


def _bounded(value: float) -> int:
    """Round half to even, with infinite bounds (too few advocates) shown as 0."""
    return round(value) if value not in (float("inf"), float("-inf")) else 0


async def _outcomes(
    session: AsyncSession, experiment: Experiment, currency: str, start: datetime, end: datetime
) -> list[tuple[str, int, list[float], int, int]]:
    """Per assigned advocate: group, stratum, outcome values, reward cost, attributed revenue."""
    a = ExperimentAssignment

    def in_window(col: Any) -> Any:
        return and_(col >= start, col < end)

    referrals = (
        select(Referral.advocate_id, func.count().label("v"))
        .where(
            Referral.program_id == experiment.program_id,
            is_referral(),
            in_window(Referral.created_at),
        )
        .group_by(Referral.advocate_id)
        .subquery()
    )
    pipeline = (
        select(Referral.advocate_id, func.sum(Opportunity.amount_minor).label("v"))
        .join(Opportunity, Opportunity.referral_id == Referral.id)
        .where(
            Referral.program_id == experiment.program_id,
            is_referral(),
            Opportunity.currency == currency,
            in_window(Opportunity.created_at),
        )
        .group_by(Referral.advocate_id)
        .subquery()
    )
    signed = case(
        (RevenueEvent.kind == RevenueKind.REFUND, -RevenueEvent.amount_minor),
        else_=RevenueEvent.amount_minor,
    )
    revenue = (
        select(Referral.advocate_id, func.sum(signed).label("v"))
        .join(RevenueEvent, RevenueEvent.referral_id == Referral.id)
        .where(
            Referral.program_id == experiment.program_id,
            is_referral(),
            RevenueEvent.currency == currency,
            in_window(RevenueEvent.occurred_at),
        )
        .group_by(Referral.advocate_id)
        .subquery()
    )
    signals = (
        select(
            Signal.advocate_id,
            func.count().filter(Signal.kind == SignalKind.RENEWAL).label("renewals"),
            func.count().filter(Signal.kind == SignalKind.EXPANSION).label("expansions"),
        )
        .where(
            Signal.kind.in_([SignalKind.RENEWAL, SignalKind.EXPANSION]),
            in_window(Signal.occurred_at),
            Signal.advocate_id.in_(select(a.advocate_id).where(a.experiment_id == experiment.id)),
        )
        .group_by(Signal.advocate_id)
        .subquery()
    )
    cost = (
        select(Referral.advocate_id, func.sum(Reward.amount_minor).label("v"))
        .join(Reward, Reward.referral_id == Referral.id)
        .where(
            Referral.program_id == experiment.program_id,
            Reward.state != RewardState.VOIDED,
            Reward.currency == currency,
            in_window(Reward.created_at),
        )
        .group_by(Referral.advocate_id)
        .subquery()
    )
    zero = literal(0)
    stmt = (
        select(
            a.arm,
            a.stratum,
            func.coalesce(referrals.c.v, zero),
            func.coalesce(pipeline.c.v, zero),
            func.coalesce(revenue.c.v, zero),
            case((func.coalesce(signals.c.renewals, zero) > 0, 1), else_=0),
            func.coalesce(signals.c.expansions, zero),
            func.coalesce(cost.c.v, zero),
        )
        .select_from(a)
        .outerjoin(referrals, referrals.c.advocate_id == a.advocate_id)
        .outerjoin(pipeline, pipeline.c.advocate_id == a.advocate_id)
        .outerjoin(revenue, revenue.c.advocate_id == a.advocate_id)
        .outerjoin(signals, signals.c.advocate_id == a.advocate_id)
        .outerjoin(cost, cost.c.advocate_id == a.advocate_id)
        .where(a.experiment_id == experiment.id)
    )
    return [
        (arm, int(stratum), [float(n), float(p), float(r), float(ren), float(x)], int(c), int(r))
        for arm, stratum, n, p, r, ren, x, c in (await session.execute(stmt)).all()
    ]


def _roi(revenue: int, cost: int) -> float | None:
    return round((revenue - cost) / cost, 4) if cost > 0 else None


async def experiment_report(
    session: AsyncSession, experiment_id: int, *, now: datetime
) -> ExperimentReport:
    """The experiment's per-advocate comparison, guard rails and incremental ROI."""
    experiment = await get_experiment(session, experiment_id)
    program = await session.get(Program, experiment.program_id)
    assert program is not None
    start, end = experiment.started_at, experiment.ended_at or now
    rows = await _outcomes(session, experiment, program.currency, start, end)
    treated = [r for r in rows if r[0] == ExperimentGroup.TREATMENT]
    held = [r for r in rows if r[0] == ExperimentGroup.HOLDOUT]
    share = experiment.holdout_bps / 10_000
    srm = incrementality.sample_ratio(len(treated), len(held), share)
    strata: dict[int, list[int]] = {}
    for arm, stratum, *_ in rows:
        strata.setdefault(stratum, [0, 0])[arm == ExperimentGroup.HOLDOUT] += 1
    outcomes = [
        OutcomeResult(
            name,
            description,
            incrementality.assess(
                [r[2][i] for r in treated],
                [r[2][i] for r in held],
                holdout_share=share,
                min_detectable_lift=experiment.min_detectable_lift_bps / 10_000,
                srm=srm,
            ),
        )
        for i, (name, description) in enumerate(OUTCOMES)
    ]
    primary = next(o for o in outcomes if o.name == PRIMARY).assessment
    cost = sum(r[3] for r in treated)
    attributed = sum(r[4] for r in treated)
    per_treated = _bounded(primary.lift.absolute)
    n_treated = len(treated)
    incremental = _bounded(primary.lift.absolute * n_treated)
    return ExperimentReport(
        experiment=experiment,
        currency=program.currency,
        window_start=start,
        window_end=end,
        planned_holdout_share=share,
        srm=srm,
        strata=[(s, t, h) for s, (t, h) in sorted(strata.items())],
        outcomes=outcomes,
        reward_cost_minor=cost,
        attributed_revenue_minor=attributed,
        incremental_revenue_per_treated_minor=per_treated,
        incremental_revenue_minor=incremental,
        incremental_revenue_low_minor=_bounded(primary.lift.absolute_low * n_treated),
        incremental_revenue_high_minor=_bounded(primary.lift.absolute_high * n_treated),
        attributed_roi=_roi(attributed, cost),
        incremental_roi=_roi(incremental, cost),
        verdict=primary.verdict,
    )


CSV_FIELDS = (
    "outcome",
    "n_treatment",
    "n_holdout",
    "mean_treatment",
    "mean_holdout",
    "absolute_lift",
    "absolute_low",
    "absolute_high",
    "relative_lift",
    "relative_low",
    "relative_high",
    "p_value",
    "required_treatment",
    "required_holdout",
    "verdict",
)


def report_csv(report: ExperimentReport) -> str:
    """One row per outcome, numbers as the GraphQL report gives them."""

    def cell(value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, float):
            return "" if value in (float("inf"), float("-inf")) else f"{value:.6g}"
        return value

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for o in report.outcomes:
        lift, a = o.assessment.lift, o.assessment
        writer.writerow(
            [
                cell(v)
                for v in (
                    o.name,
                    lift.n_treatment,
                    lift.n_holdout,
                    lift.mean_treatment,
                    lift.mean_holdout,
                    lift.absolute,
                    lift.absolute_low,
                    lift.absolute_high,
                    lift.relative,
                    lift.relative_low,
                    lift.relative_high,
                    lift.p_value,
                    a.required_treatment,
                    a.required_holdout,
                    a.verdict.value,
                )
            ]
        )
    return out.getvalue()


async def withholds_asks(
    session: AsyncSession, advocate_id: int, program_id: int, *, now: datetime
) -> Holdout | None:
    """Whether the program's running experiment withholds automated asks from this advocate.

    An eligible advocate not assigned yet is assigned first, so the answer never changes later.
    """
    await assign_program(session, program_id, now=now, advocate_ids=[advocate_id])
    for holdout in await holdouts_of(session, advocate_id, program_id=program_id):
        if holdout.withhold_asks:
            return holdout
    return None


@dataclass(frozen=True, slots=True)
class ReferralPrompt:
    """Whether the widget should show the referral call to action, and why not."""

    show: bool
    reason: str | None
    experiment_id: int | None


def prompt_withheld_by(experiment_id: int | None, name: str | None) -> ReferralPrompt:
    """The prompt, hidden by the experiment ``experiment_id`` (named ``name``), or shown."""
    if experiment_id is None:
        return ReferralPrompt(show=True, reason=None, experiment_id=None)
    return ReferralPrompt(
        show=False,
        reason="experiment_holdout: this advocate is in the holdout of the experiment "
        f"'{name}', which withholds the referral prompt",
        experiment_id=experiment_id,
    )


def prompt_holdout_json(advocate_id: Any) -> Any:
    """A scalar subquery: ``[id, name]`` of the first running experiment (by program) that holds
    ``advocate_id`` out with the referral prompt withheld, else NULL (the widget's one-statement
    load reads it; ``referral_prompt`` answers the same)."""
    withheld = select(func.json_build_array(Experiment.id, Experiment.name)).where(
        Experiment.withhold_widget_prompt.is_(True)
    )
    return _holding_out(withheld, advocate_id).limit(1).scalar_subquery()


async def referral_prompt(session: AsyncSession, advocate_id: int) -> ReferralPrompt:
    """Hidden while a running experiment holds the advocate out with the prompt withheld."""
    for holdout in await holdouts_of(session, advocate_id):
        if holdout.withhold_widget_prompt:
            return prompt_withheld_by(holdout.experiment_id, holdout.experiment_name)
    return prompt_withheld_by(None, None)
