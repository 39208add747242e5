"""The reward rules' arithmetic, as plain functions with no database.

Which rule of a ladder fires for an ordinal, whether a cap is reached, what a rule pays for a
base amount and how long its clawback window runs. The live engine (``attribution.rewards``)
and the policy backtest (``attribution.backtest``) both call these, so a backtest of the
program's current rules is the live engine's arithmetic, not a copy of it.

A rule is anything with a reward rule's fields: the ORM ``RewardRule`` or a proposed rule
that was never stored (``RuleLike``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Protocol, TypeVar

from vouch.models.enums import ModerationState, ReferralStatus, RewardCalc, RewardKind


class RuleLike(Protocol):
    """The fields of a reward rule the arithmetic reads."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def side(self) -> str: ...
    @property
    def trigger(self) -> str: ...
    @property
    def calc(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def amount_minor(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def percent_bps(self) -> int: ...
    @property
    def points(self) -> int: ...
    @property
    def from_nth_referral(self) -> int: ...
    @property
    def cap_count(self) -> int | None: ...
    @property
    def cap_period_days(self) -> int: ...
    @property
    def clawback_days(self) -> int: ...


R = TypeVar("R", bound=RuleLike)

# The reason the engine writes on the approvals it makes itself (``auto_approve_rewards``).
AUTO_APPROVAL_REASON = "auto"


# Plain strings: the backtest asks millions of times, and reading a member off an enum class
# costs more than the comparison (Python 3.11).
_REJECTED, _MODERATION_REJECTED = ReferralStatus.REJECTED.value, ModerationState.REJECTED.value


def earns_nothing(status: str, moderation: str) -> bool:
    """A rejected referral (by status or by moderation) earns no reward."""
    return status == _REJECTED or moderation == _MODERATION_REJECTED


_PERCENT, _POINTS, _STATUS = (
    RewardCalc.PERCENT.value,
    RewardKind.POINTS.value,
    RewardKind.STATUS.value,
)


@cache
def days(n: int) -> timedelta:
    """``timedelta(days=n)``, built once per ``n`` (rules have a handful of periods)."""
    return timedelta(days=n)


def ladders(rules: Iterable[R]) -> dict[tuple[str, str], list[R]]:
    """Rules of one trigger grouped into ladders by (side, kind), in the order given."""
    out: dict[tuple[str, str], list[R]] = {}
    for rule in rules:
        out.setdefault((rule.side, rule.kind), []).append(rule)
    return out


def pick_tier(ladder: Iterable[R], ordinal: int) -> R | None:
    """The highest rung the advocate's ``ordinal``-th rewarded referral has reached."""
    eligible = [r for r in ladder if r.from_nth_referral <= ordinal]
    return max(eligible, key=lambda r: (r.from_nth_referral, r.id)) if eligible else None


def cap_window_start(rule: RuleLike, now: datetime) -> datetime:
    """Rewards created at or after this instant count against the rule's cap."""
    return now - days(rule.cap_period_days)


def is_capped(rule: RuleLike, used: int) -> bool:
    """Whether ``used`` non-voided rewards of the rule in its cap window reach its cap."""
    return rule.cap_count is not None and used >= rule.cap_count


def clawback_until(rule: RuleLike, now: datetime) -> datetime:
    return now + days(rule.clawback_days)


@dataclass(frozen=True, slots=True)
class Earned:
    """What a rule pays: amount and currency, points, and the reference that makes it unique."""

    amount_minor: int
    currency: str
    points: int
    trigger_ref: str


def earn(
    rule: RuleLike,
    *,
    base_amount_minor: int | None,
    base_currency: str | None,
    trigger_ref: str,
) -> Earned | str:
    """What ``rule`` pays for one event, or the reason it pays nothing.

    Percentage rules take the base amount (revenue or won amount, rounded down to the minor
    unit) and are earned once per charge; a fixed reward is earned once per referral, whatever
    the number of charges.
    """
    if rule.calc == _PERCENT:
        if base_amount_minor is None or base_currency is None:
            return "no_base_amount"
        amount, currency = base_amount_minor * rule.percent_bps // 10_000, base_currency
        ref = trigger_ref
    else:
        amount, currency, ref = rule.amount_minor, rule.currency, ""
    points = rule.points if rule.kind == _POINTS else 0
    if amount == 0 and points == 0 and rule.kind != _STATUS:
        return "zero_amount"
    return Earned(amount_minor=amount, currency=currency, points=points, trigger_ref=ref)
