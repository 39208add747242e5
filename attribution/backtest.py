"""Reward-policy backtests: what would a period have cost under another set of rules?

The recorded facts of a program (its referrals' lifecycle events, its charges and refunds, and
the reward decisions people made) are read in a few set-based statements and replayed, in time
order, through the reward engine's own arithmetic (``reward_rules``: ladders, tier pick, caps,
amounts, clawback windows) with the engine's state kept in memory instead of in tables.
Nothing is written.

What the replay does, event by event, mirrors the live path:

* a referral's first event earns ``signup`` rewards; a move to qualified, opportunity or won
  earns the triggers ``lifecycle.MILESTONES`` names; a move to rejected voids its unfulfilled
  rewards; lost, churned or refunded after won claws back the rewards whose window still runs;
* a re-win (won again after falling back from won) and a re-attribution start a new reward
  round of the referral (``rewards.earn_again``): every milestone it stands at is earned again,
  except where the same beneficiary still holds a live reward of that rule and trigger; a
  re-attribution first voids the previous advocate's unpaid referrer rewards and claws back or
  keeps the fulfilled ones as the program's ``reattribution_fulfilled`` setting says
  (``rewards.move_credit``), and the new advocate earns as if credited from the start;
* a charge earns ``revenue`` rewards (referenced by the charge, as ``revenue.reward_ref``); a
  refund claws back what the refunded charge earned, if its window covers the refund's date;
* a tier ladder's ordinal, a cap's count and "already rewarded" are counted over the replayed
  rewards exactly as the live engine counts them over the table;
* with ``auto_approve_rewards`` a reward is approved when earned (or after the proposed
  holding period, unless voided first);
* a person's decision recorded in the ledger (approve, fulfil, void) is applied to the replayed
  reward for the same referral, side, trigger, kind, charge, round and beneficiary. Approvals
  the engine made (reason "auto") and voids it made (at the instant of a rejection, reversal or
  refund of that referral, or of its re-attribution) are not decisions: the replay makes its
  own.

Times: lifecycle events at their recorded instant, charges and refunds at ``occurred_at``.
Replaying the program's current rules reproduces its ledger (tested cent for cent).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import re
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import asyncpg
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution import reward_rules
from vouch.attribution.lifecycle import MILESTONES, REVERSALS
from vouch.attribution.reports import ReportFilter, cost_and_roi, rate
from vouch.attribution.revenue import reward_ref
from vouch.attribution.rewards import CLAW_BACK, REATTRIBUTION_FULFILLED, STANDING
from vouch.core.errors import NotFound, ValidationFailed
from vouch.models import (
    Program,
    Referral,
    RewardRule,
)
from vouch.models.enums import (
    ModerationState,
    ReferralStatus,
    RewardCalc,
    RewardSide,
    RewardState,
    RewardTrigger,
)

MAX_DAYS = 366
TOP_ADVOCATES = 50


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """A reward rule as the backtest replays it (a stored rule, or a proposed one)."""

    id: int
    name: str
    side: str
    trigger: str
    calc: str
    kind: str
    amount_minor: int
    currency: str
    percent_bps: int
    points: int
    from_nth_referral: int
    cap_count: int | None
    cap_period_days: int
    clawback_days: int
    # Days a reward waits before it is approved automatically (auto-approving programs).
    holding_days: int = 0

    @classmethod
    def of(cls, rule: RewardRule) -> PolicyRule:
        return cls(
            id=rule.id,
            name=rule.name,
            side=rule.side,
            trigger=rule.trigger,
            calc=rule.calc,
            kind=rule.kind,
            amount_minor=rule.amount_minor,
            currency=rule.currency,
            percent_bps=rule.percent_bps,
            points=rule.points,
            from_nth_referral=rule.from_nth_referral,
            cap_count=rule.cap_count,
            cap_period_days=rule.cap_period_days,
            clawback_days=rule.clawback_days,
            holding_days=int(getattr(rule, "holding_days", 0) or 0),
        )


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[PolicyRule, ...]
    auto_approve: bool


# --- facts -------------------------------------------------------------------------------------

# Event kinds, in the order events at the same instant are replayed.
_LIFECYCLE, _CHARGE, _REFUND, _REATTRIBUTE, _DECISION = 0, 1, 2, 3, 4
_TRIGGER_ORDER = {t.value: i for i, t in enumerate(RewardTrigger)}

# The enums' values as plain strings: the replay compares millions of times, and reading a
# member off an enum class costs more than the comparison (Python 3.11).
_LEAD, _QUALIFIED, _OPPORTUNITY, _WON, _LOST, _REJECTED = (
    ReferralStatus.LEAD.value,
    ReferralStatus.QUALIFIED.value,
    ReferralStatus.OPPORTUNITY.value,
    ReferralStatus.WON.value,
    ReferralStatus.LOST.value,
    ReferralStatus.REJECTED.value,
)
_REVERSALS = frozenset(str(s) for s in REVERSALS)
_MILESTONES = {str(k): tuple(t.value for t in v) for k, v in MILESTONES.items()}
_MOD_REJECTED = ModerationState.REJECTED.value
_MOD_PAYABLE = frozenset({ModerationState.CLEAR.value, ModerationState.APPROVED.value})
_REFERRER, _REFERRED = RewardSide.REFERRER.value, RewardSide.REFERRED.value
_PENDING, _APPROVED, _FULFILLED, _VOIDED = (
    RewardState.PENDING.value,
    RewardState.APPROVED.value,
    RewardState.FULFILLED.value,
    RewardState.VOIDED.value,
)
_SIGNUP, _QUALIFIED_TRIGGER, _REVENUE = (
    RewardTrigger.SIGNUP.value,
    RewardTrigger.QUALIFIED.value,
    RewardTrigger.REVENUE.value,
)
_FIXED = RewardCalc.FIXED.value


@dataclass(slots=True)
class _Referral:
    advocate_id: int
    moderation: str
    status: str = _LEAD
    round: int = 0
    won_before: bool = False
    # Charges replayed so far, in order: (revenue event id, amount, currency); refunded ids.
    charges: list[tuple[int, int, str]] | None = None
    refunded: set[int] | None = None
    # The replayed rewards of the referral, in the order earned.
    rewards: list[SimReward] | None = None


# One replayable event: at, kind, tie-breaker, referral, then by kind —
# lifecycle: from status, to status; charge: currency, amount; refund: refunded charge id;
# re-attribution: new advocate; decision: side, trigger, kind, trigger ref, state, round,
# beneficiary. Rows other than decisions end with the referral's moderation (8th) and its
# current advocate (11th), from which the replay makes its state on the referral's first event.
Event = tuple[
    datetime,
    int,
    int,
    int,
    str | None,
    str | None,
    int | None,
    str | None,
    str | None,
    str | None,
    int | None,
]

# Every event of the program before $2 (until), already in replay order: one statement, sorted by
# the database, so the replay is a single pass. The engine's own approvals (reason 'auto') are
# not decisions.
#
# Events that cannot change what the policy pays are left out (most of a program's events, when
# its policy pays nothing on qualification):
# * $4, the policy has no ``qualified`` rule: a move among lead, qualified and opportunity. It
#   earns only ``qualified`` rewards, and the status it leaves is read only to tell rejected
#   referrals (not among these) and to list the milestones a new round earns again, which for
#   these three statuses differ in ``qualified`` alone;
# * $5, the policy has no ``revenue`` rule: a charge. It is read only to earn revenue shares.
#   Refunds stay: the engine's voids at their instant are told apart from a person's.
_EVENTS = """
    SELECT e.at, 0, e.id, e.referral_id, e.from_status, e.to_status,
           NULL::bigint, r.moderation::text, NULL::text, NULL::text, r.advocate_id
    FROM referral_events e JOIN referrals r ON r.id = e.referral_id {join}
    WHERE r.program_id = $1 AND e.at < $2 {where}
      AND NOT ($4 AND e.from_status IN ('lead', 'qualified', 'opportunity')
               AND e.to_status IN ('qualified', 'opportunity'))
    UNION ALL
    SELECT v.occurred_at, CASE WHEN v.kind = 'refund' THEN 2 ELSE 1 END, v.id, v.referral_id,
           v.currency, NULL, CASE WHEN v.kind = 'refund' THEN c.id ELSE v.amount_minor END,
           r.moderation, NULL, NULL, r.advocate_id
    FROM revenue_events v JOIN referrals r ON r.id = v.referral_id {join}
    LEFT JOIN revenue_events c
      ON v.kind = 'refund' AND c.external_id = v.data ->> 'refunds_external_id'
    WHERE r.program_id = $1 AND v.occurred_at < $2 AND NOT ($5 AND v.kind <> 'refund') {where}
    UNION ALL
    SELECT d.decided_at, 3, d.id, d.referral_id, NULL, NULL, d.advocate_id, r.moderation, NULL,
           NULL, r.advocate_id
    FROM attribution_decisions d JOIN referrals r ON r.id = d.referral_id {join}
    JOIN attribution_decisions p ON p.id = d.supersedes_id
    WHERE r.program_id = $1 AND d.decided_at < $2 AND d.advocate_id <> p.advocate_id {where}
    UNION ALL
    SELECT x.at, 4, x.id, w.referral_id, w.side, u.trigger, w.round, w.kind, w.trigger_ref,
           x.state, w.advocate_id
    FROM reward_entries x JOIN rewards w ON w.id = x.reward_id
    JOIN reward_rules u ON u.id = w.rule_id
    JOIN referrals r ON r.id = w.referral_id {join}
    WHERE w.program_id = $1 AND x.at < $2 AND x.state <> 'pending' {where}
      AND NOT (x.state = 'approved' AND x.reason IS NOT DISTINCT FROM $3)
    ORDER BY 1, 2, 3
"""

# The advocate each re-attributed referral was first credited to (the replay starts there).
_FIRST_ADVOCATE = """
    SELECT DISTINCT ON (d.referral_id) d.referral_id, p.advocate_id
    FROM attribution_decisions d JOIN referrals r ON r.id = d.referral_id {join}
    JOIN attribution_decisions p ON p.id = d.supersedes_id
    WHERE r.program_id = $1 {where}
    ORDER BY d.referral_id, d.decided_at, d.id
"""

# The actual ledger: each reward created before $2 (until), with its state as of then.
_LEDGER = """
    SELECT w.advocate_id, w.side, s.state, w.amount_minor, w.points, w.currency, w.created_at
    FROM rewards w
    JOIN LATERAL (
        SELECT x.state FROM reward_entries x
        WHERE x.reward_id = w.id AND x.at < $2
        ORDER BY x.at DESC, x.id DESC LIMIT 1
    ) s ON true
    WHERE w.program_id = $1 AND w.created_at < $2
"""

# Pairs of advocates one referral was credited to, one after the other (re-attributions).
REATTRIBUTED_PAIRS = """
    SELECT p.advocate_id, d.advocate_id
    FROM attribution_decisions d JOIN referrals r ON r.id = d.referral_id
    JOIN attribution_decisions p ON p.id = d.supersedes_id
    WHERE r.program_id = $1 AND d.advocate_id <> p.advocate_id
"""


@dataclass(frozen=True, slots=True)
class Partition:
    """One of ``count`` shares of a program's referrals, cut by advocate.

    A referral belongs to share ``advocate % count`` of its advocate's group: advocates a
    re-attributed referral joins share one group (named by ``roots[i]`` for ``advocates[i]``;
    an advocate not listed is its own group). Ladders, caps and re-attributed credit never
    cross groups, so each share replays alone."""

    count: int
    index: int
    advocates: tuple[int, ...] = ()
    roots: tuple[int, ...] = ()


def _scoped(sql: str, partition: Partition | None, first: int) -> tuple[str, tuple[Any, ...]]:
    """``sql`` limited to ``partition``'s referrals (alias ``r``), its parameters from
    ``$first`` on."""
    if partition is None:
        return sql.format(join="", where=""), ()
    join = (
        f"LEFT JOIN unnest(${first}::bigint[], ${first + 1}::bigint[]) AS m(advocate_id, root)"
        " ON m.advocate_id = r.advocate_id"
    )
    where = f"AND COALESCE(m.root, r.advocate_id) % ${first + 2} = ${first + 3}"
    args = (list(partition.advocates), list(partition.roots), partition.count, partition.index)
    return sql.format(join=join, where=where), args


@dataclass(slots=True)
class Facts:
    # The advocate each re-attributed referral was first credited to.
    first_advocates: dict[int, int]
    events: list[Event]
    # The program's ``reattribution_fulfilled`` is CLAW_BACK.
    claw_back_on_reattribution: bool
    # The ledger: advocate, side, state (as of ``until``), amount, points, currency, created.
    actual: list[tuple[int | None, str, str, int, int, str, datetime]]


# Rows of a statement: ``(sql, *args) -> rows`` (asyncpg's ``Connection.fetch``).
Fetch = Callable[..., Awaitable[Sequence[Any]]]


def session_fetch(session: AsyncSession) -> Fetch:
    """Rows straight from asyncpg on the session's connection (same transaction): the
    backtest reads millions of rows and the ORM's row objects cost more than the query.
    asyncpg's records unpack like tuples."""

    async def fetch(sql: str, *args: Any) -> Sequence[Any]:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        rows: Sequence[Any] = await driver.fetch(sql, *args)
        return rows

    return fetch


async def claws_back_on_reattribution(session: AsyncSession, program_id: int) -> bool:
    settings = await session.scalar(select(Program.settings).where(Program.id == program_id))
    return bool((settings or {}).get(REATTRIBUTION_FULFILLED) == CLAW_BACK)


async def read_facts(
    fetch: Fetch,
    program_id: int,
    until: datetime,
    *,
    policy: Policy | None,
    claw_back_on_reattribution: bool,
    partition: Partition | None = None,
    ledger: bool = True,
) -> Facts:
    """The program's recorded facts before ``until`` (of ``partition``'s referrals only, if
    given), in four statements; with ``policy``, without the events that cannot change what it
    pays; without the actual ledger unless ``ledger``."""
    triggers = {r.trigger for r in policy.rules} if policy is not None else set(RewardTrigger)
    sql, args = _scoped(_FIRST_ADVOCATE, partition, 2)
    first_advocates = dict(list(await fetch(sql, program_id, *args)))
    sql, args = _scoped(_EVENTS, partition, 6)
    events: list[Event] = list(
        await fetch(
            sql,
            program_id,
            until,
            reward_rules.AUTO_APPROVAL_REASON,
            _QUALIFIED_TRIGGER not in triggers,
            _REVENUE not in triggers,
            *args,
        )
    )
    actual = list(await fetch(_LEDGER, program_id, until)) if ledger else []
    return Facts(first_advocates, events, claw_back_on_reattribution, actual)


async def load_facts(
    session: AsyncSession, program_id: int, until: datetime, policy: Policy | None = None
) -> Facts:
    """All of the program's facts before ``until``, read on ``session`` (``read_facts``)."""
    return await read_facts(
        session_fetch(session),
        program_id,
        until,
        policy=policy,
        claw_back_on_reattribution=await claws_back_on_reattribution(session, program_id),
    )


# --- the replay --------------------------------------------------------------------------------


@dataclass(slots=True)
class SimReward:
    rule: PolicyRule
    referral_id: int
    advocate_id: int | None  # the referrer for referrer-side rewards, as the ledger stores it
    trigger_ref: str
    amount_minor: int
    currency: str
    points: int
    created_at: datetime
    clawback_until: datetime
    round: int = 0
    held_until: datetime | None = None
    state: str = _PENDING
    approve_at: datetime | None = None
    # Whose ladder it counts on: the advocate the referral is credited to (a friend's reward
    # names no advocate, but counts on the ladder of the advocate who referred them).
    owner: int | None = None

    def state_at(self, at: datetime) -> str:
        """The state, with a holding period that has run out counted as approved."""
        if self.approve_at is not None and self.state == _PENDING and self.approve_at <= at:
            self.state = _APPROVED
        return self.state


@dataclass(slots=True)
class _Ladder:
    """One ladder of a trigger (its rules of one side and kind) as the replay walks it."""

    side: str
    kind: str
    rungs: list[PolicyRule]
    # Some rung starts after the first referral, so the advocate's ordinal picks the rung and
    # the replay keeps the ladder's counts. Otherwise every ordinal picks ``flat``.
    tiered: bool
    flat: PolicyRule | None
    # The rung per ordinal, remembered (``pick_tier`` is pure).
    tiers: dict[int, PolicyRule | None] = field(default_factory=dict)


@dataclass(slots=True)
class Replay:
    """The engine's state, in memory."""

    policy: Policy
    claw_back_on_reattribution: bool = False
    # Each referral's replayed state, from its first event on.
    referrals: dict[int, _Referral] = field(default_factory=dict)
    rewards: list[SimReward] = field(default_factory=list)
    # (advocate, trigger, side, kind) -> referral -> non-voided rewards: the ladder ordinals,
    # kept for tiered ladders only (no other ladder reads them).
    ladder: dict[tuple[int | None, str, str, str], dict[int, int]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    # (rule, advocate) -> rewards: the caps, kept for capped referrer-side rules only (the only
    # ones the engine checks a cap for).
    capped: dict[tuple[int, int | None], list[SimReward]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # (trigger, side, kind, referral, trigger ref, round): one reward per ladder, any rung, as
    # the live engine's INSERT checks (and one per rule, which that implies).
    earned: set[tuple[str, str, str, int, str, int]] = field(default_factory=set)
    ladders: dict[str, list[_Ladder]] = field(default_factory=dict)
    # Rules on a tiered ladder, and capped referrer-side rules.
    counted: set[int] = field(default_factory=set)
    capped_rules: set[int] = field(default_factory=set)
    fixed: dict[int, reward_rules.Earned | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        by_trigger: dict[str, list[PolicyRule]] = {}
        for rule in sorted(self.policy.rules, key=lambda r: r.id):
            by_trigger.setdefault(rule.trigger, []).append(rule)
            if rule.side == _REFERRER and rule.cap_count is not None:
                self.capped_rules.add(rule.id)
        for trigger, rules in by_trigger.items():
            self.ladders[trigger] = []
            for (side, kind), rungs in reward_rules.ladders(rules).items():
                tiered = any(r.from_nth_referral > 1 for r in rungs)
                flat = None if tiered else reward_rules.pick_tier(rungs, 1)
                self.ladders[trigger].append(_Ladder(side, kind, rungs, tiered, flat))
                if tiered:
                    self.counted.update(r.id for r in rungs)

    def _count(self, r: SimReward, delta: int) -> None:
        """Put ``r`` on (or take it off) the ladder count it stands on."""
        if r.rule.id not in self.counted:
            return
        counts = self.ladder[(r.owner, r.rule.trigger, r.rule.side, r.rule.kind)]
        left = counts.get(r.referral_id, 0) + delta
        if left:
            counts[r.referral_id] = left
        else:
            del counts[r.referral_id]

    def _void(self, r: SimReward) -> None:
        r.state = _VOIDED
        self._count(r, -1)

    def evaluate(
        self,
        referral_id: int,
        trigger: str,
        at: datetime,
        *,
        base_amount_minor: int | None = None,
        base_currency: str | None = None,
        trigger_ref: str = "",
        only_side: str | None = None,
    ) -> None:
        """``rewards.on_referral_event``, over the replayed rewards."""
        ladders = self.ladders.get(trigger)
        if not ladders:
            return
        referral = self.referrals[referral_id]
        if reward_rules.earns_nothing(referral.status, referral.moderation):
            return
        advocate_id = referral.advocate_id
        for ladder in ladders:
            side = ladder.side
            if only_side is not None and side != only_side:
                continue
            if ladder.tiered:
                counts = self.ladder.get((advocate_id, trigger, side, ladder.kind))
                ordinal = len(counts) - (referral_id in counts) + 1 if counts else 1
                tiers = ladder.tiers
                if ordinal not in tiers:
                    tiers[ordinal] = reward_rules.pick_tier(ladder.rungs, ordinal)
                rule = tiers[ordinal]
            else:
                rule = ladder.flat
            if rule is None:
                continue
            if rule.id in self.capped_rules:
                start = reward_rules.cap_window_start(rule, at)
                used = sum(
                    1
                    for r in self.capped.get((rule.id, advocate_id), ())
                    if r.state != _VOIDED and r.created_at >= start
                )
                if reward_rules.is_capped(rule, used):
                    continue
            if rule.calc == _FIXED:  # a fixed rule pays the same for any event
                earned = self.fixed.get(rule.id)
                if earned is None:
                    earned = self.fixed[rule.id] = reward_rules.earn(
                        rule, base_amount_minor=None, base_currency=None, trigger_ref=""
                    )
            else:
                earned = reward_rules.earn(
                    rule,
                    base_amount_minor=base_amount_minor,
                    base_currency=base_currency,
                    trigger_ref=trigger_ref,
                )
            if isinstance(earned, str):
                continue
            key = (trigger, side, ladder.kind, referral_id, earned.trigger_ref, referral.round)
            if key in self.earned:
                continue
            beneficiary = advocate_id if side == _REFERRER else None
            if referral.round > 0 and any(  # rewards._live_elsewhere
                r.rule.id == rule.id
                and r.trigger_ref == earned.trigger_ref
                and r.advocate_id == beneficiary
                and r.state != _VOIDED
                for r in referral.rewards or ()
            ):
                continue
            self.earned.add(key)
            # Positional: a dataclass's __init__ takes keywords at a third of the speed.
            reward = SimReward(
                rule,
                referral_id,
                beneficiary,
                earned.trigger_ref,
                earned.amount_minor,
                earned.currency,
                earned.points,
                at,
                reward_rules.clawback_until(rule, at),
                referral.round,
                at + reward_rules.days(rule.holding_days) if rule.holding_days else None,
                _PENDING,
                None,
                advocate_id,
            )
            if self.policy.auto_approve and referral.moderation in _MOD_PAYABLE:
                if rule.holding_days:
                    reward.approve_at = reward.held_until
                else:
                    reward.state = _APPROVED
            self.rewards.append(reward)
            if referral.rewards is None:
                referral.rewards = [reward]
            else:
                referral.rewards.append(reward)
            if ladder.tiered:
                counts = self.ladder[(advocate_id, trigger, side, ladder.kind)]
                counts[referral_id] = counts.get(referral_id, 0) + 1
            if rule.id in self.capped_rules:
                self.capped[(rule.id, advocate_id)].append(reward)

    def void_unfulfilled(self, referral: _Referral, at: datetime) -> None:
        for r in referral.rewards or ():
            if r.state_at(at) in (_PENDING, _APPROVED):
                self._void(r)

    def claw_back(self, referral: _Referral, at: datetime, trigger_ref: str | None = None) -> None:
        for r in referral.rewards or ():
            if (
                r.state != _VOIDED
                and (
                    r.clawback_until >= at
                    or (
                        r.held_until is not None
                        and r.held_until >= at
                        and r.state_at(at) == _PENDING
                    )
                )
                and (trigger_ref is None or r.trigger_ref == trigger_ref)
            ):
                self._void(r)

    def earn_again(
        self, referral_id: int, at: datetime, side: str | None = None, also: Sequence[str] = ()
    ) -> None:
        """``rewards.earn_again``: a new round earns every milestone the referral stands at
        (revenue shares per charge not refunded), as if its advocate had been credited from
        the start."""
        referral = self.referrals[referral_id]
        referral.round += 1
        triggers = set(STANDING.get(referral.status, ())) | set(also)
        for trigger in sorted(triggers, key=_TRIGGER_ORDER.__getitem__):
            if trigger != _REVENUE:
                self.evaluate(referral_id, trigger, at, only_side=side)
                continue
            refunded = referral.refunded or set()
            for charge_id, amount, currency in referral.charges or ():
                if charge_id not in refunded:
                    self.evaluate(
                        referral_id,
                        _REVENUE,
                        at,
                        base_amount_minor=amount,
                        base_currency=currency,
                        trigger_ref=reward_ref(charge_id),
                        only_side=side,
                    )

    def move_credit(self, referral_id: int, advocate_id: int, at: datetime) -> None:
        """``rewards.move_credit``: void the previous advocate's unpaid referrer rewards, claw
        back (or keep, held for review) the fulfilled ones, then earn again for the new one."""
        referral = self.referrals[referral_id]
        previous = referral.advocate_id
        reached: set[str] = set()
        for r in referral.rewards or ():
            if r.advocate_id != previous or r.rule.side != _REFERRER:
                continue
            state = r.state_at(at)
            if state == _VOIDED:
                continue
            reached.add(r.rule.trigger)
            if state != _FULFILLED or (self.claw_back_on_reattribution and at <= r.clawback_until):
                self._void(r)
        # The friend's live rewards now count on the new advocate's ladders, as the live
        # engine counts them by the referral's current advocate.
        for r in referral.rewards or ():
            if r.rule.side == _REFERRED and r.state != _VOIDED:
                self._count(r, -1)
                r.owner = advocate_id
                self._count(r, +1)
        referral.advocate_id = advocate_id
        self.earn_again(referral_id, at, side=_REFERRER, also=sorted(reached))

    def decide(
        self,
        referral: _Referral,
        key: tuple[str, str, str, str],
        state: str,
        at: datetime,
        round_: int | None = None,
        beneficiary: int | None = None,
    ) -> None:
        """Apply a person's recorded approve, fulfil or void to the matching replayed reward."""
        for r in referral.rewards or ():
            if (r.rule.side, r.rule.trigger, r.rule.kind, r.trigger_ref) != key:
                continue
            if (round_ is not None and r.round != round_) or r.advocate_id != beneficiary:
                continue
            current = r.state_at(at)
            if state == _APPROVED and current == _PENDING:
                r.state = _APPROVED
            elif state == _FULFILLED and current == _APPROVED:
                r.state = _FULFILLED
            elif (
                state == _VOIDED
                and current != _VOIDED
                and (current != _FULFILLED or at <= r.clawback_until)
            ):
                self._void(r)

    def run(self, facts: Facts) -> None:
        # The instants at which the engine itself voided a referral's rewards: a recorded void
        # then is the engine's, not a person's (the replay makes, or does not make, its own).
        engine_voids: set[tuple[int, datetime]] = set()
        referrals, first = self.referrals, facts.first_advocates
        evaluate = self.evaluate
        for at, kind, _tie, referral_id, s1, s2, n1, s3, s4, s5, n2 in facts.events:
            referral = referrals.get(referral_id)
            if referral is None:
                if kind == _DECISION:  # no event yet, so no replayed reward to decide on
                    continue
                # Every other row carries the referral's moderation and current advocate.
                advocate_id: int = first.get(referral_id, n2)  # type: ignore[assignment]
                referral = referrals[referral_id] = _Referral(advocate_id, s3)  # type: ignore[arg-type]
            if kind == _LIFECYCLE:
                from_status, to_status = s1, s2
                referral.status = to_status  # type: ignore[assignment]
                if from_status is None:
                    evaluate(referral_id, _SIGNUP, at)
                elif to_status == _REJECTED:
                    engine_voids.add((referral_id, at))
                    self.void_unfulfilled(referral, at)
                elif to_status in _REVERSALS and from_status == _WON:
                    engine_voids.add((referral_id, at))
                    self.claw_back(referral, at)
                elif (
                    to_status == _WON
                    and from_status in (_LOST, _OPPORTUNITY)
                    and referral.won_before
                ):
                    self.earn_again(referral_id, at)  # a reopened deal won again
                else:
                    for trigger in _MILESTONES.get(to_status, ()):  # type: ignore[arg-type]
                        evaluate(referral_id, trigger, at)
                if to_status == _WON:
                    referral.won_before = True
            elif kind == _CHARGE:
                if referral.charges is None:
                    referral.charges = []
                referral.charges.append((_tie, n1, s1))  # type: ignore[arg-type]
                evaluate(
                    referral_id,
                    _REVENUE,
                    at,
                    base_amount_minor=n1,
                    base_currency=s1,
                    trigger_ref=reward_ref(_tie),
                )
            elif kind == _REFUND:
                engine_voids.add((referral_id, at))
                if n1 is not None:
                    if referral.refunded is None:
                        referral.refunded = set()
                    referral.refunded.add(n1)
                    self.claw_back(referral, at, reward_ref(n1))
            elif kind == _REATTRIBUTE:
                engine_voids.add((referral_id, at))
                if n1 is not None and n1 != referral.advocate_id:
                    self.move_credit(referral_id, n1, at)
            else:
                # A decision row has side, trigger, kind, trigger ref and state (NOT NULL).
                if s5 == _VOIDED and (referral_id, at) in engine_voids:
                    continue
                self.decide(referral, (s1, s2, s3, s4), s5, at, n1, n2)  # type: ignore[arg-type]


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    """Rewards of one group: how many, their amount and points."""

    key: str
    currency: str
    count: int
    amount_minor: int
    points: int


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    by_state: list[Bucket]
    by_side: list[Bucket]  # not voided
    by_advocate: dict[tuple[int, str], tuple[int, int]]  # (advocate, currency) -> count, amount
    cost_minor: dict[str, int]  # not voided, per currency


def summarise(rows: Iterable[tuple[int | None, str, str, int, int, str]]) -> LedgerSummary:
    """Sums of (advocate, side, state, amount, points, currency) rows.

    Equal rows are counted first (``Counter`` does that in C) and summed once per distinct row:
    a backtest has a million rewards but far fewer distinct ones."""
    states: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    sides: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    advocates: dict[tuple[int, str], tuple[int, int]] = {}
    cost: dict[str, int] = defaultdict(int)
    for (advocate_id, side, state, amount, points, currency), n in Counter(rows).items():
        s = states[(state, currency)]
        s[0], s[1], s[2] = s[0] + n, s[1] + n * amount, s[2] + n * points
        if state == _VOIDED:
            continue
        d = sides[(side, currency)]
        d[0], d[1], d[2] = d[0] + n, d[1] + n * amount, d[2] + n * points
        cost[currency] += n * amount
        if advocate_id is not None:
            count, a = advocates.get((advocate_id, currency), (0, 0))
            advocates[(advocate_id, currency)] = (count + n, a + n * amount)

    return LedgerSummary(_buckets(states), _buckets(sides), advocates, dict(cost))


def _buckets(d: dict[tuple[str, str], list[int]]) -> list[Bucket]:
    return [Bucket(k, c, *v) for (k, c), v in sorted(d.items())]


@dataclass(frozen=True, slots=True)
class CurrencyComparison:
    currency: str
    proposed_cost_minor: int
    actual_cost_minor: int
    difference_minor: int  # proposed - actual
    revenue_minor: int
    customers: int
    proposed_cost_per_customer_minor: int | None
    actual_cost_per_customer_minor: int | None
    proposed_roi: float | None
    actual_roi: float | None


@dataclass(frozen=True, slots=True)
class AdvocateComparison:
    advocate_id: int
    currency: str
    proposed_count: int
    proposed_minor: int
    actual_count: int
    actual_minor: int


@dataclass(frozen=True, slots=True)
class BacktestResult:
    program_id: int
    since: date
    until: date
    rules: tuple[PolicyRule, ...]
    proposed: LedgerSummary
    actual: LedgerSummary
    currencies: list[CurrencyComparison]
    advocates: list[AdvocateComparison]  # the largest differences first


@contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a backtest holds its millions of rows and
    replayed rewards.

    None of them is part of a reference cycle (reference counting frees them), but the collector
    would walk them over and over as they age: a third of the backtest's time. Paused for at
    most one backtest's duration (other tasks of the worker may run meanwhile; their cycles wait
    for the next collection), and resumed only by the outermost pause, so overlapping backtests
    never leave it off."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def replayed(policy: Policy, facts: Facts, start: datetime, end: datetime) -> LedgerSummary:
    """Replay ``facts`` under ``policy``: the summary of what it earned in ``[start, end)``."""
    replay = Replay(policy, facts.claw_back_on_reattribution)
    replay.run(facts)
    return summarise(
        (r.advocate_id, r.rule.side, r.state_at(end), r.amount_minor, r.points, r.currency)
        for r in replay.rewards
        if start <= r.created_at < end
    )


def merged(parts: Sequence[LedgerSummary]) -> LedgerSummary:
    """The summary of several shares' rewards (their sums added up)."""
    states: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    sides: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    advocates: dict[tuple[int, str], tuple[int, int]] = {}
    cost: dict[str, int] = defaultdict(int)
    for part in parts:
        for into, buckets in ((states, part.by_state), (sides, part.by_side)):
            for b in buckets:
                t = into[(b.key, b.currency)]
                t[0], t[1], t[2] = t[0] + b.count, t[1] + b.amount_minor, t[2] + b.points
        for key, (n, amount) in part.by_advocate.items():
            count, a = advocates.get(key, (0, 0))
            advocates[key] = (count + n, a + amount)
        for currency, amount in part.cost_minor.items():
            cost[currency] += amount
    return LedgerSummary(_buckets(states), _buckets(sides), advocates, dict(cost))


# --- replaying shares in worker processes --------------------------------------------------------
#
# A large program's replay is cut into shares by advocate (``Partition``) and each share is
# replayed by a worker process: it reads its own facts on its own connection, in the snapshot of
# the request's transaction (``pg_export_snapshot``), and sends back only its summary. The
# replay is pure Python, so processes, not threads; the request's own event loop stays free
# meanwhile, and reads the actual ledger and the revenue report. The pool is started on first
# use (about a second per process, which imports Vouch) and kept.

log = logging.getLogger("vouch.backtest")
_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")
_pools: dict[int, ProcessPoolExecutor] = {}


@dataclass(frozen=True, slots=True)
class ShareJob:
    """What a worker process needs to replay one share."""

    connect: dict[str, Any]  # asyncpg.connect's keyword arguments
    snapshot: str
    program_id: int
    start: datetime
    until: datetime
    policy: Policy
    claw_back_on_reattribution: bool
    partition: Partition


def replay_share(job: ShareJob) -> LedgerSummary:
    """Run in a worker process: one share's facts, replayed and summarised. The process does
    nothing else meanwhile, so its cyclic collector is off for the duration."""
    gc.disable()
    try:
        return asyncio.run(_replay_share(job))
    finally:
        gc.enable()


async def _replay_share(job: ShareJob) -> LedgerSummary:
    if not _SNAPSHOT_ID.match(job.snapshot):
        raise ValueError("not a snapshot id")
    conn = await asyncpg.connect(**job.connect, statement_cache_size=0, command_timeout=600)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{job.snapshot}'")
            facts = await read_facts(
                conn.fetch,
                job.program_id,
                job.until,
                policy=job.policy,
                claw_back_on_reattribution=job.claw_back_on_reattribution,
                partition=job.partition,
                ledger=False,
            )
    finally:
        await conn.close()
    return replayed(job.policy, facts, job.start, job.until)


def _pool(processes: int) -> ProcessPoolExecutor:
    pool = _pools.get(processes)
    if pool is None:
        pool = _pools[processes] = ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn")
        )
    return pool


async def _settled(
    shares: asyncio.Future[list[LedgerSummary]], processes: int
) -> LedgerSummary | None:
    """The shares' sums added up; None, after replacing the pool, if a worker could not
    replay its share (a process died, or could not reach the database): the request then
    replays in its own process, which reports any error of its own."""
    try:
        return merged(await shares)
    except Exception as exc:
        pool = _pools.pop(processes, None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        log.warning(
            "backtest workers failed (%s); replaying in the request's process",
            type(exc).__name__,
        )
        return None


def _connect_arguments(session: AsyncSession) -> dict[str, Any]:
    """asyncpg.connect's arguments for the database ``session`` reads."""
    url = session.get_bind().engine.url
    host: Any = url.host or url.query.get("host")
    if isinstance(host, tuple):
        host = host[0]
    return {
        "host": host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "database": url.database,
        "server_settings": {"application_name": "vouch-backtest", "timezone": "UTC"},
    }


async def partitions(session: AsyncSession, program_id: int, count: int) -> list[Partition]:
    """The program's referrals in ``count`` shares by advocate, advocates joined by a
    re-attributed referral kept in one share (union-find over the re-attributions)."""
    parent: dict[int, int] = {}

    def root(a: int) -> int:
        while a in parent:
            a = parent[a]
        return a

    for a, b in await session_fetch(session)(REATTRIBUTED_PAIRS, program_id):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    joined = sorted((a, root(a)) for a in parent if root(a) != a)
    advocates = tuple(a for a, _ in joined)
    roots = tuple(r for _, r in joined)
    return [Partition(count, i, advocates, roots) for i in range(count)]


async def _replayed_in_processes(
    session: AsyncSession,
    program_id: int,
    policy: Policy,
    start: datetime,
    end: datetime,
    processes: int,
) -> asyncio.Future[list[LedgerSummary]]:
    """Start the shares' replays in the worker pool; the future of their summaries."""
    snapshot = await session.scalar(text("SELECT pg_export_snapshot()"))
    claw = await claws_back_on_reattribution(session, program_id)
    connect = _connect_arguments(session)
    loop = asyncio.get_running_loop()
    pool = _pool(processes)
    return asyncio.gather(
        *(
            loop.run_in_executor(
                pool,
                replay_share,
                ShareJob(connect, str(snapshot), program_id, start, end, policy, claw, part),
            )
            for part in await partitions(session, program_id, processes)
        )
    )


async def backtest(
    session: AsyncSession,
    program_id: int,
    rules: Sequence[PolicyRule] | None,
    *,
    since: date,
    until: date,
    auto_approve: bool | None = None,
    processes: int = 1,
    processes_from: int = 100_000,
) -> BacktestResult:
    """Replay ``[since, until)`` (UTC days) under ``rules`` (None: the program's active rules)
    and ``auto_approve`` (None: the program's setting).

    Rewards of the period are those the replay earns in it; earlier history is replayed too,
    so tier ordinals and caps start where they stood. Writes nothing.
    """
    f = ReportFilter(program_id=program_id, since=since, until=until).checked()
    if (until - since).days > MAX_DAYS:
        raise ValidationFailed(f"a backtest covers at most {MAX_DAYS} days", field="until")
    program = await session.get(Program, program_id)
    if program is None:
        raise NotFound("no such program", field="programId")
    if rules is None:
        stored = await session.scalars(
            select(RewardRule)
            .where(RewardRule.program_id == program_id, RewardRule.active.is_(True))
            .order_by(RewardRule.id)
        )
        rules = [PolicyRule.of(r) for r in stored]
    start, end = f.bounds()
    assert start is not None
    assert end is not None
    if auto_approve is None:
        auto_approve = bool(program.settings.get("auto_approve_rewards"))
    policy = Policy(rules=tuple(rules), auto_approve=auto_approve)
    referrals = await session.scalar(
        select(func.count()).select_from(Referral).where(Referral.program_id == program_id)
    )
    proposed: LedgerSummary | None = None
    if processes > 1 and (referrals or 0) >= processes_from:
        shares = await _replayed_in_processes(session, program_id, policy, start, end, processes)
        try:
            ledger = await session_fetch(session)(_LEDGER, program_id, end)
            reports = {row.currency: row for row in await cost_and_roi(session, f)}
        except BaseException:
            shares.cancel()
            raise
        actual = summarise(row[:6] for row in ledger if start <= row[6] < end)
        proposed = await _settled(shares, processes)
    if proposed is None:
        with cycle_collection_paused():
            facts = await load_facts(session, program_id, end, policy)
            proposed = replayed(policy, facts, start, end)
            actual = summarise(row[:6] for row in facts.actual if start <= row[6] < end)
            del facts  # freed here, while the collector is paused, so it never walks them
        reports = {row.currency: row for row in await cost_and_roi(session, f)}
    currencies = []
    for currency in sorted(proposed.cost_minor.keys() | actual.cost_minor.keys() | reports.keys()):
        p, a = proposed.cost_minor.get(currency, 0), actual.cost_minor.get(currency, 0)
        row = reports.get(currency)
        revenue, customers = (row.revenue_minor, row.customers) if row else (0, 0)
        currencies.append(
            CurrencyComparison(
                currency=currency,
                proposed_cost_minor=p,
                actual_cost_minor=a,
                difference_minor=p - a,
                revenue_minor=revenue,
                customers=customers,
                proposed_cost_per_customer_minor=p // customers if customers else None,
                actual_cost_per_customer_minor=a // customers if customers else None,
                proposed_roi=rate(revenue - p, p),
                actual_roi=rate(revenue - a, a),
            )
        )
    keys = proposed.by_advocate.keys() | actual.by_advocate.keys()
    advocates = sorted(
        (
            AdvocateComparison(
                advocate_id=k[0],
                currency=k[1],
                proposed_count=proposed.by_advocate.get(k, (0, 0))[0],
                proposed_minor=proposed.by_advocate.get(k, (0, 0))[1],
                actual_count=actual.by_advocate.get(k, (0, 0))[0],
                actual_minor=actual.by_advocate.get(k, (0, 0))[1],
            )
            for k in keys
        ),
        key=lambda c: (-abs(c.proposed_minor - c.actual_minor), -c.proposed_minor, c.advocate_id),
    )[:TOP_ADVOCATES]
    return BacktestResult(
        program_id=program_id,
        since=since,
        until=until,
        rules=tuple(rules),
        proposed=proposed,
        actual=actual,
        currencies=currencies,
        advocates=advocates,
    )
