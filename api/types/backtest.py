"""Reward-policy backtests: a proposed set of rules against the actual ledger of a period."""

from __future__ import annotations

from datetime import date
from typing import Self

import strawberry

from vouch.api.ids import encode_id
from vouch.attribution.backtest import (
    AdvocateComparison,
    BacktestResult,
    Bucket,
    CurrencyComparison,
    LedgerSummary,
)


@strawberry.type(name="RewardBucket", description="Rewards of one group in one currency.")
class RewardBucketType:
    key: str = strawberry.field(description="The group: a state or a side.")
    currency: str = strawberry.field(description="ISO-4217 currency of the amount.")
    count: int = strawberry.field(description="How many rewards.")
    amount_minor: int = strawberry.field(description="Their amount in minor units.")
    points: int = strawberry.field(description="Their points.")

    @classmethod
    def from_domain(cls, b: Bucket) -> Self:
        return cls(
            key=str(b.key),
            currency=b.currency,
            count=b.count,
            amount_minor=b.amount_minor,
            points=b.points,
        )


@strawberry.type(
    name="BacktestLedger",
    description="The rewards created in the period, their state as of the period's end.",
)
class BacktestLedgerType:
    by_state: list[RewardBucketType] = strawberry.field(
        description="Per state (pending, approved, fulfilled, voided) and currency."
    )
    by_side: list[RewardBucketType] = strawberry.field(
        description="Per side (referrer, referred) and currency, voided rewards excluded."
    )

    @classmethod
    def from_domain(cls, s: LedgerSummary) -> Self:
        return cls(
            by_state=[RewardBucketType.from_domain(b) for b in s.by_state],
            by_side=[RewardBucketType.from_domain(b) for b in s.by_side],
        )


@strawberry.type(
    name="BacktestCurrency",
    description="Cost, cost per customer and ROI in one currency, proposed against actual "
    "(cost = rewards created in the period, not voided; revenue and customers as in "
    "`reports.cost`).",
)
class BacktestCurrencyType:
    currency: str = strawberry.field(description="ISO-4217 currency.")
    proposed_cost_minor: int = strawberry.field(description="Cost under the proposed rules.")
    actual_cost_minor: int = strawberry.field(description="Cost in the actual ledger.")
    difference_minor: int = strawberry.field(description="Proposed minus actual.")
    revenue_minor: int = strawberry.field(description="Referral revenue of the period.")
    customers: int = strawberry.field(description="Referrals that first reached won in it.")
    proposed_cost_per_customer_minor: int | None = strawberry.field(
        description="Proposed cost / customers; null without customers."
    )
    actual_cost_per_customer_minor: int | None = strawberry.field(
        description="Actual cost / customers."
    )
    proposed_roi: float | None = strawberry.field(
        description="(revenue - proposed cost) / proposed cost; null without cost."
    )
    actual_roi: float | None = strawberry.field(description="(revenue - cost) / cost, actual.")

    @classmethod
    def from_domain(cls, c: CurrencyComparison) -> Self:
        return cls(**{f: getattr(c, f) for f in c.__dataclass_fields__})


@strawberry.type(name="BacktestAdvocate", description="One advocate's rewards, both ways.")
class BacktestAdvocateType:
    advocate_id: strawberry.ID = strawberry.field(description="The advocate.")
    currency: str = strawberry.field(description="ISO-4217 currency.")
    proposed_count: int = strawberry.field(description="Rewards under the proposed rules.")
    proposed_minor: int = strawberry.field(description="Their amount.")
    actual_count: int = strawberry.field(description="Rewards in the actual ledger.")
    actual_minor: int = strawberry.field(description="Their amount.")

    @classmethod
    def from_domain(cls, a: AdvocateComparison) -> Self:
        return cls(
            advocate_id=strawberry.ID(encode_id("Advocate", a.advocate_id)),
            currency=a.currency,
            proposed_count=a.proposed_count,
            proposed_minor=a.proposed_minor,
            actual_count=a.actual_count,
            actual_minor=a.actual_minor,
        )


@strawberry.type(
    name="RewardBacktest",
    description="What a period would have cost under a set of reward rules, replayed through "
    "the live engine's arithmetic over the recorded events, next to the actual ledger.",
)
class RewardBacktestType:
    program_id: strawberry.ID = strawberry.field(description="The program.")
    since: date = strawberry.field(description="First day of the period (UTC).")
    until: date = strawberry.field(description="Day after the period (UTC).")
    rules: list[str] = strawberry.field(description="Names of the rules replayed.")
    proposed: BacktestLedgerType = strawberry.field(description="Under the proposed rules.")
    actual: BacktestLedgerType = strawberry.field(description="The actual ledger.")
    currencies: list[BacktestCurrencyType] = strawberry.field(
        description="Cost, cost per customer and ROI per currency."
    )
    advocates: list[BacktestAdvocateType] = strawberry.field(
        description="The 50 advocates whose rewards change most."
    )

    @classmethod
    def from_domain(cls, r: BacktestResult) -> Self:
        return cls(
            program_id=strawberry.ID(encode_id("Program", r.program_id)),
            since=r.since,
            until=r.until,
            rules=[rule.name for rule in r.rules],
            proposed=BacktestLedgerType.from_domain(r.proposed),
            actual=BacktestLedgerType.from_domain(r.actual),
            currencies=[BacktestCurrencyType.from_domain(c) for c in r.currencies],
            advocates=[BacktestAdvocateType.from_domain(a) for a in r.advocates],
        )
