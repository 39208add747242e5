"""Readiness score per advocate and program: weighted, decayed, capped, explainable.

The score is a pure function of (signals, configuration, as-of time), so the same inputs give
the same score. Each signal's contribution is stored next to the score, so the API can say
exactly why an advocate scored what it did.

Defaults follow the playbooks: an NPS promoter (9-10) is the single strongest signal; a
support problem resolved well counts more than never having had one (a plain advocate gets 0
for support, a recovered one gets points); behaviour (usage, renewals, expansions, referrals
made) outweighs self-report in total, because only the latest survey answer counts while each
behaviour adds up (to a cap per kind); detractors and open escalations subtract.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.errors import NotFound, ValidationFailed
from vouch.models import Advocate, AdvocateScore, Program, Signal
from vouch.models.enums import ProgramStatus, SignalKind

MAX_SCORE = 100.0

DEFAULT_WEIGHTS: dict[str, float] = {
    # Self-report: only the latest answer of each kind counts.
    "nps_promoter": 30.0,
    "nps_passive": 5.0,
    "nps_detractor": -30.0,
    "csat_satisfied": 8.0,
    "csat_neutral": 0.0,
    "csat_dissatisfied": -15.0,
    "review_5": 15.0,
    "review_4": 8.0,
    "review_3": 0.0,
    "review_low": -15.0,
    "sentiment": 10.0,  # times the sentiment value, -1..1
    "qbr_referral_intent": 8.0,
    # Behaviour: each occurrence counts, up to the kind's cap.
    "usage_depth": 25.0,  # times adoption breadth 0..1; latest only
    "usage_milestone": 12.0,
    "first_value": 8.0,
    "kpi_milestone": 12.0,
    "renewal": 25.0,
    "expansion": 20.0,
    "purchase": 6.0,
    "support_resolved": 15.0,
    "organic_mention": 10.0,
    "referral_made": 20.0,
    # An escalation subtracts while it is open.
    "escalation_open": -20.0,
}

DEFAULT_CAPS: dict[str, float] = {
    "usage_milestone": 36.0,
    "first_value": 8.0,
    "kpi_milestone": 36.0,
    "renewal": 50.0,
    "expansion": 40.0,
    "purchase": 30.0,
    "support_resolved": 30.0,
    "organic_mention": 30.0,
    "referral_made": 60.0,
    "qbr_referral_intent": 8.0,
}

DEFAULT_HALF_LIFE_DAYS = 180.0

# Self-reported kinds where only the most recent answer counts.
LATEST_ONLY = frozenset(
    {
        SignalKind.NPS,
        SignalKind.CSAT,
        SignalKind.REVIEW_RATING,
        SignalKind.SENTIMENT,
        SignalKind.USAGE_DEPTH,
    }
)
# Facts that feed guards, not the score.
NEUTRAL = frozenset({SignalKind.RENEWAL_NEGOTIATION, SignalKind.ESCALATION_CLOSED})


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    weights: Mapping[str, float]
    caps: Mapping[str, float]
    half_life_days: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "weights": dict(self.weights),
            "caps": dict(self.caps),
            "half_life_days": self.half_life_days,
        }


DEFAULT_CONFIG = ScoringConfig(DEFAULT_WEIGHTS, DEFAULT_CAPS, DEFAULT_HALF_LIFE_DAYS)


def _number(value: object, *, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationFailed("must be a number", field=field)
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ValidationFailed(f"must be between {low:g} and {high:g}", field=field)
    return number


def parse_scoring(raw: Mapping[str, Any] | None) -> ScoringConfig:
    """The program's ``settings["scoring"]`` over the defaults; unknown keys are errors."""
    if not raw:
        return DEFAULT_CONFIG
    if not isinstance(raw, Mapping):
        raise ValidationFailed("scoring must be an object", field="scoring")
    unknown = set(raw) - {"weights", "caps", "half_life_days"}
    if unknown:
        raise ValidationFailed(
            f"unknown scoring setting(s): {', '.join(sorted(unknown))}", field="scoring"
        )
    for part in ("weights", "caps"):
        if raw.get(part) is not None and not isinstance(raw[part], Mapping):
            raise ValidationFailed(f"{part} must be an object", field=f"scoring.{part}")
    weights = dict(DEFAULT_WEIGHTS)
    for key, value in (raw.get("weights") or {}).items():
        if key not in DEFAULT_WEIGHTS:
            raise ValidationFailed(
                f"unknown weight '{key}'; known: {', '.join(sorted(DEFAULT_WEIGHTS))}",
                field=f"scoring.weights.{key}",
            )
        weights[key] = _number(value, field=f"scoring.weights.{key}", low=-100, high=100)
    caps = dict(DEFAULT_CAPS)
    for key, value in (raw.get("caps") or {}).items():
        if key not in DEFAULT_WEIGHTS:
            raise ValidationFailed(f"unknown cap '{key}'", field=f"scoring.caps.{key}")
        caps[key] = _number(value, field=f"scoring.caps.{key}", low=0, high=100)
    half_life: float | None = DEFAULT_HALF_LIFE_DAYS
    if "half_life_days" in raw:
        value = raw["half_life_days"]
        half_life = (
            None
            if value is None
            else _number(value, field="scoring.half_life_days", low=1, high=3650)
        )
    return ScoringConfig(weights, caps, half_life)


def config_for(program: Program) -> ScoringConfig:
    return parse_scoring((program.settings or {}).get("scoring"))


class ScoredSignal(Protocol):
    """What scoring reads of a signal: an ORM ``Signal`` or a plain row both fit."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def occurred_at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Contribution:
    signal_id: int
    kind: str
    rule: str
    value: float | None
    occurred_at: datetime
    weight: float
    decay: float
    points: float
    note: str

    def as_json(self) -> dict[str, Any]:
        return {
            "signal_id": self.signal_id,
            "kind": self.kind,
            "rule": self.rule,
            "value": self.value,
            "occurred_at": self.occurred_at.isoformat(),
            "weight": self.weight,
            "decay": self.decay,
            "points": self.points,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class ScoreResult:
    score: float
    raw: float
    contributions: list[Contribution] = field(default_factory=list)


def _rule(kind: SignalKind, value: float | None) -> tuple[str, float]:
    """Which weight applies to a signal, and the factor it is multiplied by."""
    v = value if value is not None else 0.0
    if kind is SignalKind.NPS:
        return ("nps_promoter" if v >= 9 else "nps_passive" if v >= 7 else "nps_detractor"), 1.0
    if kind is SignalKind.CSAT:
        return (
            "csat_satisfied" if v >= 4 else "csat_neutral" if v >= 3 else "csat_dissatisfied"
        ), 1.0
    if kind is SignalKind.REVIEW_RATING:
        return (
            "review_5"
            if v >= 5
            else "review_4"
            if v >= 4
            else "review_3"
            if v >= 3
            else "review_low"
        ), 1.0
    if kind is SignalKind.SENTIMENT:
        return "sentiment", v
    if kind is SignalKind.USAGE_DEPTH:
        return "usage_depth", v
    if kind is SignalKind.ESCALATION_OPENED:
        return "escalation_open", 1.0
    return kind.value, 1.0


def compute_score(
    signals: Iterable[ScoredSignal], config: ScoringConfig, as_of: datetime
) -> ScoreResult:
    """Score one advocate's signals as of ``as_of``; later signals are ignored.

    Signals are taken newest first (ties by id), so the latest self-report wins and, when a
    kind reaches its cap, the most recent occurrences keep their points.
    """
    ordered = sorted(
        (s for s in signals if s.occurred_at <= as_of),
        key=lambda s: (s.occurred_at, s.id),
        reverse=True,
    )
    latest_closed = max(
        (s.occurred_at for s in ordered if s.kind == SignalKind.ESCALATION_CLOSED), default=None
    )
    seen_latest: set[str] = set()
    used: dict[str, float] = {}
    out: list[Contribution] = []
    total = 0.0
    for sig in ordered:
        kind = SignalKind(sig.kind)
        rule, factor = _rule(kind, sig.value)
        age_days = max(0.0, (as_of - sig.occurred_at).total_seconds() / 86_400)
        decay = 1.0 if config.half_life_days is None else 0.5 ** (age_days / config.half_life_days)
        decay = round(decay, 6)
        weight = config.weights.get(rule, 0.0)
        note = ""
        points = 0.0
        if kind in NEUTRAL:
            note = "used by guards, not scored"
            weight = 0.0
        elif kind in LATEST_ONLY and kind.value in seen_latest:
            note = "superseded by a later answer"
        elif kind is SignalKind.ESCALATION_OPENED and (
            latest_closed is not None and latest_closed >= sig.occurred_at
        ):
            note = "escalation closed"
        else:
            points = weight * factor * decay
            cap = config.caps.get(rule)
            if cap is not None and points > 0:
                room = max(0.0, cap - used.get(rule, 0.0))
                if points > room:
                    points = room
                    note = f"capped at {cap:g} for {rule}"
                used[rule] = used.get(rule, 0.0) + points
        if kind in LATEST_ONLY:
            seen_latest.add(kind.value)
        points = round(points, 4)
        total += points
        out.append(
            Contribution(
                signal_id=sig.id,
                kind=kind.value,
                rule=rule,
                value=sig.value,
                occurred_at=sig.occurred_at,
                weight=weight,
                decay=decay,
                points=points,
                note=note,
            )
        )
    raw = round(total, 4)
    return ScoreResult(score=round(min(MAX_SCORE, max(0.0, raw)), 2), raw=raw, contributions=out)


async def _signals_by_advocate(
    session: AsyncSession, advocate_ids: Sequence[int] | None, as_of: datetime
) -> dict[int, list[ScoredSignal]]:
    # Plain rows, not ORM objects: a recompute reads every signal of the program.
    stmt = select(
        Signal.id, Signal.advocate_id, Signal.kind, Signal.value, Signal.occurred_at
    ).where(Signal.occurred_at <= as_of)
    if advocate_ids is not None:
        stmt = stmt.where(Signal.advocate_id.in_(set(advocate_ids)))
    grouped: dict[int, list[ScoredSignal]] = {}
    for row in await session.execute(stmt):
        grouped.setdefault(row.advocate_id, []).append(row)
    return grouped


async def store_scores(
    session: AsyncSession,
    program_id: int,
    results: Mapping[int, ScoreResult],
    as_of: datetime,
    *,
    tiers: Mapping[int, int | None] | None = None,
) -> None:
    """Upsert scores with their explanation; with ``tiers``, set the tiers in the same pass."""
    rows = [
        {
            "advocate_id": advocate_id,
            "program_id": program_id,
            "score": result.score,
            "tier": tiers.get(advocate_id) if tiers is not None else None,
            "contributions": [c.as_json() for c in result.contributions],
            "computed_at": as_of,
        }
        for advocate_id, result in results.items()
    ]
    if not rows:
        return
    stmt = insert(cast(Table, AdvocateScore.__table__))
    updates = {
        "score": stmt.excluded.score,
        "contributions": stmt.excluded.contributions,
        "computed_at": stmt.excluded.computed_at,
    }
    if tiers is not None:
        updates["tier"] = stmt.excluded.tier
    # executemany: one compiled statement, batched by the driver.
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["advocate_id", "program_id"], set_=updates),
        rows,
    )


async def compute_program_scores(
    session: AsyncSession,
    program: Program,
    as_of: datetime,
    *,
    advocate_ids: Sequence[int] | None = None,
) -> dict[int, ScoreResult]:
    """Scores of every live advocate (or the given ones) for ``program``, not stored."""
    config = config_for(program)
    stmt = select(Advocate.id).where(Advocate.erased_at.is_(None))
    if advocate_ids is not None:
        stmt = stmt.where(Advocate.id.in_(set(advocate_ids)))
    ids = list(await session.scalars(stmt.order_by(Advocate.id)))
    signals = await _signals_by_advocate(session, ids if advocate_ids is not None else None, as_of)
    return {pk: compute_score(signals.get(pk, []), config, as_of) for pk in ids}


async def score_program(
    session: AsyncSession,
    program: Program,
    as_of: datetime,
    *,
    advocate_ids: Sequence[int] | None = None,
) -> dict[int, ScoreResult]:
    """Score every live advocate (or the given ones) for ``program`` and store the result.

    Tiers are left as they are; ``advocacy.tiers`` assigns them from the scores.
    """
    results = await compute_program_scores(session, program, as_of, advocate_ids=advocate_ids)
    await store_scores(session, program.id, results, as_of)
    return results


async def rescore_advocates(
    session: AsyncSession, advocate_ids: Sequence[int], as_of: datetime
) -> None:
    """Refresh the stored scores of these advocates in every active program (after ingest)."""
    if not advocate_ids:
        return
    programs = list(
        await session.scalars(
            select(Program).where(Program.status == ProgramStatus.ACTIVE).order_by(Program.id)
        )
    )
    if not programs:
        return
    signals = await _signals_by_advocate(session, advocate_ids, as_of)
    for program in programs:
        config = config_for(program)
        results = {
            pk: compute_score(signals.get(pk, []), config, as_of) for pk in sorted(advocate_ids)
        }
        await store_scores(session, program.id, results, as_of)
    await refresh_advocate_summary(session, advocate_ids=advocate_ids)


async def refresh_advocate_summary(
    session: AsyncSession,
    *,
    program_id: int | None = None,
    advocate_ids: Sequence[int] | None = None,
) -> None:
    """``Advocate.tier``/``score`` summarise all programs: the best tier, the highest score.
    Refreshed for the advocates scored in ``program_id``, or for ``advocate_ids``."""
    who: Any
    if program_id is not None:
        who = select(AdvocateScore.advocate_id).where(AdvocateScore.program_id == program_id)
    else:
        who = sorted(set(advocate_ids or []))
        if not who:
            return
    summary = (
        select(
            AdvocateScore.advocate_id.label("advocate_id"),
            func.min(AdvocateScore.tier).label("tier"),
            func.max(AdvocateScore.score).label("score"),
            func.max(AdvocateScore.computed_at).label("at"),
        )
        .where(AdvocateScore.advocate_id.in_(who))
        .group_by(AdvocateScore.advocate_id)
        .subquery()
    )
    await session.execute(
        update(Advocate)
        .where(Advocate.id == summary.c.advocate_id)
        .values(tier=summary.c.tier, score=summary.c.score, scored_at=summary.c.at)
        .execution_options(synchronize_session=False)
    )


async def get_score(session: AsyncSession, advocate_id: int, program_id: int) -> AdvocateScore:
    score = await session.get(AdvocateScore, (advocate_id, program_id))
    if score is None:
        raise NotFound("this advocate has no score in this program yet", field="advocateId")
    return score


async def scores_for(
    session: AsyncSession, keys: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], AdvocateScore]:
    """Stored scores for (advocate, program) pairs, in one statement (for dataloaders)."""
    if not keys:
        return {}
    advocate_ids = {a for a, _ in keys}
    program_ids = {p for _, p in keys}
    rows = await session.scalars(
        select(AdvocateScore).where(
            AdvocateScore.advocate_id.in_(advocate_ids), AdvocateScore.program_id.in_(program_ids)
        )
    )
    return {(r.advocate_id, r.program_id): r for r in rows}
