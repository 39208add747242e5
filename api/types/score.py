"""GraphQL types for readiness scores (with their explanation), tiers and advocacy settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

import strawberry
from strawberry.scalars import JSON

from vouch.advocacy.configuration import EffectiveSettings
from vouch.advocacy.tiers import ReadyAccountRate, TierDistribution, TierRun
from vouch.api.errors import InputError
from vouch.api.ids import encode_id
from vouch.models import AdvocateScore


@strawberry.type(description="How much one signal added to (or took from) a score.")
class ScoreContribution:
    signal_id: strawberry.ID = strawberry.field(description="The signal.")
    kind: str = strawberry.field(description="The signal's kind.")
    rule: str = strawberry.field(
        description="The weight that applied, e.g. nps_promoter, review_5, escalation_open."
    )
    value: float | None = strawberry.field(description="The signal's value.")
    occurred_at: datetime = strawberry.field(description="When the signal happened.")
    weight: float = strawberry.field(description="The rule's weight in this program.")
    decay: float = strawberry.field(description="Time decay factor applied (1 = fresh).")
    points: float = strawberry.field(description="The contribution to the raw score.")
    note: str = strawberry.field(
        description="Why it counts less than weight x decay: superseded, capped, closed."
    )

    @classmethod
    def from_json(cls, c: dict[str, Any]) -> Self:
        return cls(
            signal_id=strawberry.ID(encode_id("Signal", int(c["signal_id"]))),
            kind=c["kind"],
            rule=c["rule"],
            value=c["value"],
            occurred_at=datetime.fromisoformat(c["occurred_at"]),
            weight=c["weight"],
            decay=c["decay"],
            points=c["points"],
            note=c["note"],
        )


@strawberry.type(description="An advocate's readiness score in a program, explained.")
class ScoreExplanation:
    advocate_id: strawberry.ID = strawberry.field(description="The advocate.")
    program_id: strawberry.ID = strawberry.field(description="The program.")
    score: float = strawberry.field(description="Readiness score, 0-100.")
    raw: float = strawberry.field(description="Sum of contributions before clamping to 0-100.")
    tier: int | None = strawberry.field(description="Tier 1-3 from the last recompute.")
    computed_at: datetime = strawberry.field(description="As of when it was computed.")
    contributions: list[ScoreContribution] = strawberry.field(
        description="Each signal's contribution, newest signal first."
    )

    @classmethod
    def from_model(cls, m: AdvocateScore) -> Self:
        contributions = [ScoreContribution.from_json(c) for c in m.contributions]
        return cls(
            advocate_id=strawberry.ID(encode_id("Advocate", m.advocate_id)),
            program_id=strawberry.ID(encode_id("Program", m.program_id)),
            score=m.score,
            raw=round(sum(c.points for c in contributions), 4),
            tier=m.tier,
            computed_at=m.computed_at,
            contributions=contributions,
        )


@strawberry.type(description="How many advocates sit in each tier of a program.")
class TierDistributionType:
    program_id: strawberry.ID = strawberry.field(description="The program.")
    tier1: int = strawberry.field(description="Advocates in Tier 1.")
    tier2: int = strawberry.field(description="Advocates in Tier 2.")
    tier3: int = strawberry.field(description="Advocates in Tier 3.")
    untiered: int = strawberry.field(description="Scored advocates in no tier.")
    scored: int = strawberry.field(description="All scored advocates.")
    ready_accounts: int = strawberry.field(
        description="Accounts with at least one tiered advocate (referral-ready)."
    )
    total_accounts: int = strawberry.field(description="Accounts with a live advocate.")
    referral_ready_account_rate: float = strawberry.field(
        description="readyAccounts / totalAccounts, 0-1."
    )

    @classmethod
    def from_domain(cls, d: TierDistribution, rate: ReadyAccountRate) -> Self:
        return cls(
            program_id=strawberry.ID(encode_id("Program", d.program_id)),
            tier1=d.counts[1],
            tier2=d.counts[2],
            tier3=d.counts[3],
            untiered=d.untiered,
            scored=d.scored,
            ready_accounts=rate.ready_accounts,
            total_accounts=rate.total_accounts,
            referral_ready_account_rate=rate.rate,
        )


@strawberry.type(description="One tier recompute.")
class TierRunType:
    program_id: strawberry.ID = strawberry.field(description="The program.")
    run_id: str = strawberry.field(description="Stamped on this run's tier events.")
    scored: int = strawberry.field(description="Advocates scored.")
    changes: int = strawberry.field(description="Advocates whose tier changed (tier events).")
    tier1: int = strawberry.field(description="Advocates now in Tier 1.")
    tier2: int = strawberry.field(description="Advocates now in Tier 2.")
    tier3: int = strawberry.field(description="Advocates now in Tier 3.")
    untiered: int = strawberry.field(description="Advocates in no tier.")

    @classmethod
    def from_domain(cls, run: TierRun) -> Self:
        d = run.distribution
        return cls(
            program_id=strawberry.ID(encode_id("Program", run.program_id)),
            run_id=str(run.run_id),
            scored=run.scored,
            changes=run.changes,
            tier1=d.get(1, 0),
            tier2=d.get(2, 0),
            tier3=d.get(3, 0),
            untiered=d.get(None, 0),
        )


@strawberry.type(description="The result of recomputeTiers.")
class RecomputeTiersPayload:
    run: TierRunType | None = strawberry.field(description="The recompute, if it ran.")
    errors: list[InputError] = strawberry.field(description="Why it did not run, if so.")


@strawberry.type(description="A program's advocacy settings in force (own over defaults).")
class AdvocacySettingsType:
    program_id: strawberry.ID = strawberry.field(description="The program.")
    scoring: JSON = strawberry.field(description="weights, caps, half_life_days.")
    tiers: JSON = strawberry.field(description="mode, percentiles, thresholds.")
    moments: JSON = strawberry.field(
        description="lookback_days, decline_cooldown_days, renewal_blackout_days, queue_ttl_days."
    )
    points: JSON = strawberry.field(description="Points per action kind.")
    levels: JSON = strawberry.field(description="Level ladder: name and min_points.")

    @classmethod
    def from_domain(cls, program_id: int, s: EffectiveSettings) -> Self:
        return cls(
            program_id=strawberry.ID(encode_id("Program", program_id)),
            scoring=JSON(s.scoring),
            tiers=JSON(s.tiers),
            moments=JSON(s.moments),
            points=JSON(s.points),
            levels=JSON(s.levels),
        )


@strawberry.type(description="The result of configureAdvocacy.")
class ConfigureAdvocacyPayload:
    settings: AdvocacySettingsType | None = strawberry.field(description="Settings now in force.")
    errors: list[InputError] = strawberry.field(description="Why nothing changed, if so.")
