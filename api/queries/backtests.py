"""Reward-policy backtests (read scope: nothing is written)."""

from __future__ import annotations

from datetime import date

import strawberry

from vouch.advocacy.backtests import backtest_policy
from vouch.api.context import Info
from vouch.api.ids import decode_id
from vouch.api.mutations.programs import RewardRuleInput
from vouch.api.permissions import require_scope
from vouch.api.types.backtest import RewardBacktestType
from vouch.models.enums import Scope


@strawberry.input(description="A proposed reward policy for a backtest.")
class BacktestPolicyInput:
    rules: list[RewardRuleInput] = strawberry.field(
        description="The rules, validated as setRewardRules validates them."
    )
    holding_days: int | None = strawberry.field(
        default=None,
        description="Days every reward waits before it is approved automatically (0-365, "
        "with auto-approval); null keeps each rule's own holdingDays.",
    )
    auto_approve: bool | None = strawberry.field(
        default=None,
        description="Approve rewards automatically; null keeps the program's setting.",
    )


@strawberry.type
class BacktestQueries:
    @strawberry.field(
        description="What [since, until) (UTC days, at most 366) would have cost under a "
        "policy (omitted: the program's current rules), replayed over the recorded referrals, "
        "lifecycle events and revenue without writing anything, next to the actual ledger."
    )
    async def reward_backtest(
        self,
        info: Info,
        program_id: strawberry.ID,
        since: date,
        until: date,
        policy: BacktestPolicyInput | None = None,
    ) -> RewardBacktestType:
        require_scope(info.context, Scope.READ)
        result = await backtest_policy(
            info.context.session,
            decode_id(program_id, "Program", field="programId"),
            [rule.to_domain() for rule in policy.rules] if policy else None,
            since=since,
            until=until,
            holding_days=policy.holding_days if policy else None,
            auto_approve=policy.auto_approve if policy else None,
            processes=info.context.settings.backtest_processes,
            processes_from=info.context.settings.backtest_processes_from,
        )
        return RewardBacktestType.from_domain(result)
