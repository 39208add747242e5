"""Reward-policy backtests from the edge: proposed rules validated as stored rules are, then
replayed by ``attribution.backtest``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution.backtest import BacktestResult, PolicyRule, backtest
from vouch.catalog.programs import RuleSpec, checked_rules, get_program
from vouch.core.errors import ValidationFailed

MAX_HOLDING_DAYS = 365


async def backtest_policy(
    session: AsyncSession,
    program_id: int,
    specs: Sequence[RuleSpec] | None,
    *,
    since: date,
    until: date,
    holding_days: int | None = None,
    auto_approve: bool | None = None,
    processes: int = 1,
    processes_from: int = 100_000,
) -> BacktestResult:
    """Cost ``[since, until)`` under ``specs`` (None: the program's current rules);
    ``holding_days`` overrides every proposed rule's own holding period. Programs with at least
    ``processes_from`` referrals are replayed in ``processes`` worker processes."""
    program = await get_program(session, program_id)
    if holding_days is not None and not 0 <= holding_days <= MAX_HOLDING_DAYS:
        raise ValidationFailed(
            f"holdingDays must be between 0 and {MAX_HOLDING_DAYS}", field="policy.holdingDays"
        )
    rules = None
    if specs is not None:
        rules = [
            PolicyRule(
                id=i + 1,
                **(values | ({"holding_days": holding_days} if holding_days is not None else {})),
            )
            for i, values in enumerate(checked_rules(specs, program.currency))
        ]
    return await backtest(
        session,
        program_id,
        rules,
        since=since,
        until=until,
        auto_approve=auto_approve,
        processes=processes,
        processes_from=processes_from,
    )
