"""Tiers 1/2/3 per program, by percentile (default top 10%, next 20%, next 30%) or thresholds.

A recompute rescores every live advocate, assigns tiers from the scores, and writes a
``TierEvent`` for each change. Recomputes of one program serialise on an advisory lock, so a
scheduled run and an on-demand run never interleave. An advocate scoring 0 is never tiered.
Ties are broken by advocate id (older first), so the outcome is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy import experiments
from vouch.advocacy.scoring import compute_program_scores, refresh_advocate_summary, store_scores
from vouch.core.errors import NotFound, ValidationFailed
from vouch.models import Advocate, AdvocateScore, Program, TierEvent
from vouch.models.enums import ProgramStatus

TIER_LOCK_NAMESPACE = 61_001
_CHUNK = 10_000  # advisory lock (namespace, program id) for tier recomputes

Mode = Literal["percentile", "threshold"]


@dataclass(frozen=True, slots=True)
class TierConfig:
    mode: Mode
    # Percentile mode: the share of scored advocates in tier 1, 2 and 3 (percent).
    percentiles: tuple[float, float, float] = (10.0, 20.0, 30.0)
    # Threshold mode: the minimum score for tier 1, 2 and 3.
    thresholds: tuple[float, float, float] = (70.0, 45.0, 25.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "percentiles": list(self.percentiles),
            "thresholds": list(self.thresholds),
        }


DEFAULT_TIERS = TierConfig(mode="percentile")


def _triple(value: object, *, field: str) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValidationFailed("must be a list of three numbers (tier 1, 2, 3)", field=field)
    out: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
            raise ValidationFailed("must be a list of three numbers (tier 1, 2, 3)", field=field)
        if not 0 <= item <= 100:
            raise ValidationFailed("each value must be between 0 and 100", field=field)
        out.append(float(item))
    return out[0], out[1], out[2]


def parse_tiers(raw: Mapping[str, Any] | None) -> TierConfig:
    """The program's ``settings["tiers"]`` over the defaults."""
    if not raw:
        return DEFAULT_TIERS
    if not isinstance(raw, Mapping):
        raise ValidationFailed("tiers must be an object", field="tiers")
    unknown = set(raw) - {"mode", "percentiles", "thresholds"}
    if unknown:
        raise ValidationFailed(
            f"unknown tier setting(s): {', '.join(sorted(unknown))}", field="tiers"
        )
    mode = raw.get("mode", "percentile")
    if mode not in ("percentile", "threshold"):
        raise ValidationFailed("mode must be percentile or threshold", field="tiers.mode")
    percentiles = DEFAULT_TIERS.percentiles
    if "percentiles" in raw:
        percentiles = _triple(raw["percentiles"], field="tiers.percentiles")
        if sum(percentiles) > 100:
            raise ValidationFailed(
                "the three percentiles must add up to at most 100", field="tiers.percentiles"
            )
    thresholds = DEFAULT_TIERS.thresholds
    if "thresholds" in raw:
        thresholds = _triple(raw["thresholds"], field="tiers.thresholds")
        if not thresholds[0] > thresholds[1] > thresholds[2] > 0:
            raise ValidationFailed(
                "thresholds must be decreasing and positive (tier 1 > tier 2 > tier 3 > 0)",
                field="tiers.thresholds",
            )
    return TierConfig(mode=mode, percentiles=percentiles, thresholds=thresholds)


def config_for(program: Program) -> TierConfig:
    return parse_tiers((program.settings or {}).get("tiers"))


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5 + 1e-9)


def assign_tiers(scores: Mapping[int, float], config: TierConfig) -> dict[int, int | None]:
    """Tier per advocate id. Percentile cut-offs are cumulative and rounded half up over the
    advocates with a positive score: with 10 of them, tiers hold 1, 2 and 3."""
    tiers: dict[int, int | None] = dict.fromkeys(scores)
    ranked = sorted(
        ((pk, s) for pk, s in scores.items() if s > 0), key=lambda item: (-item[1], item[0])
    )
    if config.mode == "threshold":
        t1, t2, t3 = config.thresholds
        for pk, s in ranked:
            tiers[pk] = 1 if s >= t1 else 2 if s >= t2 else 3 if s >= t3 else None
        return tiers
    n = len(ranked)
    p1, p2, p3 = config.percentiles
    cut1 = _round_half_up(n * p1 / 100)
    cut2 = _round_half_up(n * (p1 + p2) / 100)
    cut3 = _round_half_up(n * (p1 + p2 + p3) / 100)
    for position, (pk, _) in enumerate(ranked):
        tiers[pk] = (
            1 if position < cut1 else 2 if position < cut2 else 3 if position < cut3 else None
        )
    return tiers


@dataclass(frozen=True, slots=True)
class TierRun:
    program_id: int
    run_id: int
    scored: int
    changes: int
    distribution: dict[int | None, int]


async def recompute_tiers(
    session: AsyncSession, program_id: int, *, now: datetime, reason: str = "on_demand"
) -> TierRun:
    """Rescore the program's advocates, reassign tiers, and record each change as an event."""
    program = await session.get(Program, program_id)
    if program is None:
        raise NotFound("no such program", field="programId")
    config = config_for(program)
    await session.execute(
        text("SELECT pg_advisory_xact_lock(:ns, :id)"),
        {"ns": TIER_LOCK_NAMESPACE, "id": program_id},
    )
    previous: dict[int, int | None] = {
        row[0]: row[1]
        for row in await session.execute(
            select(AdvocateScore.advocate_id, AdvocateScore.tier).where(
                AdvocateScore.program_id == program_id
            )
        )
    }
    results = await compute_program_scores(session, program, now)
    scores = {pk: r.score for pk, r in results.items()}
    tiers = assign_tiers(scores, config)
    await store_scores(session, program_id, results, now, tiers=tiers)
    run_id = int(now.timestamp() * 1_000_000)
    events: list[dict[str, Any]] = []
    by_tier: dict[int | None, list[int]] = {}
    for pk, tier in tiers.items():
        by_tier.setdefault(tier, []).append(pk)
        before = previous.get(pk)
        if before != tier:
            events.append(
                {
                    "advocate_id": pk,
                    "program_id": program_id,
                    "from_tier": before,
                    "to_tier": tier,
                    "score": scores[pk],
                    "reason": reason[:64],
                    "at": now,
                    "run_id": run_id,
                }
            )
    # Chunked: PostgreSQL's wire protocol allows at most 32767 parameters per statement.
    for start in range(0, len(events), _CHUNK // 8):
        await session.execute(insert(TierEvent).values(events[start : start + _CHUNK // 8]))
    await refresh_advocate_summary(session, program_id=program_id)
    # Newly tiered advocates join the program's running holdout experiment now.
    await experiments.assign_program(session, program_id, now=now, advocate_ids=None)
    return TierRun(
        program_id=program_id,
        run_id=run_id,
        scored=len(tiers),
        changes=len(events),
        distribution={t: len(ids) for t, ids in sorted(by_tier.items(), key=_tier_order)},
    )


def _tier_order(item: tuple[int | None, list[int]]) -> int:
    return item[0] if item[0] is not None else 4


async def recompute_all_tiers(
    session: AsyncSession, *, now: datetime, reason: str = "scheduled"
) -> list[TierRun]:
    """For the periodic task and ``vouch tiers recompute``: every active program."""
    ids = list(
        await session.scalars(
            select(Program.id).where(Program.status == ProgramStatus.ACTIVE).order_by(Program.id)
        )
    )
    return [await recompute_tiers(session, pk, now=now, reason=reason) for pk in ids]


@dataclass(frozen=True, slots=True)
class TierDistribution:
    program_id: int
    counts: dict[int, int]
    untiered: int
    scored: int


async def tier_distribution(session: AsyncSession, program_id: int) -> TierDistribution:
    rows = await session.execute(
        select(AdvocateScore.tier, func.count())
        .join(Advocate, Advocate.id == AdvocateScore.advocate_id)
        .where(AdvocateScore.program_id == program_id, Advocate.erased_at.is_(None))
        .group_by(AdvocateScore.tier)
    )
    counts = {1: 0, 2: 0, 3: 0}
    untiered = 0
    for tier, n in rows:
        if tier is None:
            untiered += int(n)
        else:
            counts[int(tier)] = int(n)
    return TierDistribution(program_id, counts, untiered, sum(counts.values()) + untiered)


@dataclass(frozen=True, slots=True)
class ReadyAccountRate:
    ready_accounts: int
    total_accounts: int

    @property
    def rate(self) -> float:
        return round(self.ready_accounts / self.total_accounts, 4) if self.total_accounts else 0.0


async def referral_ready_account_rate(session: AsyncSession, program_id: int) -> ReadyAccountRate:
    """Accounts with at least one tiered advocate in the program, over all accounts with a live
    advocate. An advocate without an account id is an account of its own."""
    account = func.coalesce(Advocate.account_id, func.concat("advocate:", Advocate.id))
    total = await session.scalar(
        select(func.count(func.distinct(account))).where(Advocate.erased_at.is_(None))
    )
    ready = await session.scalar(
        select(func.count(func.distinct(account)))
        .join(AdvocateScore, AdvocateScore.advocate_id == Advocate.id)
        .where(
            Advocate.erased_at.is_(None),
            AdvocateScore.program_id == program_id,
            AdvocateScore.tier.is_not(None),
        )
    )
    return ReadyAccountRate(ready_accounts=int(ready or 0), total_accounts=int(total or 0))


async def program_id_for_slug(session: AsyncSession, slug: str) -> int:
    program_id = await session.scalar(select(Program.id).where(Program.slug == slug))
    if program_id is None:
        raise NotFound(f"no program with slug '{slug[:64]}'", field="program")
    return program_id
