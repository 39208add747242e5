"""The rewards engine and ledger.

A reward row says what was earned; ``RewardEntry`` rows say what happened to it (pending →
approved → fulfilled, or voided), one immutable entry per step, and ``Reward.state`` is the
projection of the latest entry written in the same transaction. Balances are sums over rows,
never counters.

Exactly once: ``(rule_id, referral_id, trigger_ref, round)`` is unique and rewards are
inserted with ``ON CONFLICT DO NOTHING``, so twenty identical events leave one reward.
Referrer-side evaluation also holds a transaction-scoped advisory lock per advocate, so tier
ordinals and caps are counted without races. Callers hold the referral's row lock
(``lifecycle.lock_referral``), so its reward round cannot change under an evaluation.

Rewards follow the referral: its ``reward_round`` is bumped when its credit moves to another
advocate (re-attribution) or when a deal that fell back from won is won again. In a new round
each rule may earn again, unless the same beneficiary still holds a live (non-voided) reward of
that rule and trigger from an earlier round; a reward voided by hand stays voided within its
round, so retries never resurrect it.

Holding period: a rule's ``holding_days`` keeps its rewards pending until ``held_until``;
approving earlier is refused with that date; ``release_due_rewards`` approves the due ones of
programs that auto-approve; a refund or churn inside the period voids them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, func, or_, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from vouch.attribution import reward_rules, webhooks
from vouch.core.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from vouch.core.raw_select import flush_pending, run_raw
from vouch.core.snapshot import snapshot_class, snapshots_from_json
from vouch.models import (
    AdvocateBadge,
    PointsEntry,
    Program,
    Referral,
    RevenueEvent,
    Reward,
    RewardRule,
)
from vouch.models.enums import (
    FulfilledOnReattribution,
    ModerationState,
    ReferralStatus,
    RevenueKind,
    RewardKind,
    RewardSide,
    RewardState,
    RewardTrigger,
)
from vouch.models.snapshots import ReferralSnapshot, RewardSnapshot

# Which reward states may follow which. Voiding a fulfilled reward is a clawback and is only
# allowed inside its clawback window.
REWARD_TRANSITIONS: dict[str, frozenset[str]] = {
    RewardState.PENDING: frozenset({RewardState.APPROVED, RewardState.VOIDED}),
    RewardState.APPROVED: frozenset({RewardState.FULFILLED, RewardState.VOIDED}),
    RewardState.FULFILLED: frozenset({RewardState.VOIDED}),
    RewardState.VOIDED: frozenset(),
}
EXTERNAL_KINDS = frozenset({RewardKind.CASH, RewardKind.GIFT_CARD, RewardKind.DONATION})
_LOCK_NAMESPACE = 0x5245  # "RE": advisory-lock namespace for reward evaluation
# The points badge: held while the advocate's points balance is at least this many points.
POINTS_BADGE_CODE = "points_1000"
POINTS_BADGE_AT = 1000
# Program settings (``Program.settings``) read by the engine.
AUTO_APPROVE = "auto_approve_rewards"
REATTRIBUTION_FULFILLED = "reattribution_fulfilled"
CLAW_BACK = FulfilledOnReattribution.CLAW_BACK
REATTRIBUTED = "re-attributed to another advocate"
RELEASE_ACTOR = "system:release"


def revenue_trigger_ref(event_id: int) -> str:
    """The ``Reward.trigger_ref`` of revenue-share rewards earned by one charge."""
    return f"rev:{event_id}"


def reward_payload(reward: RewardSnapshot) -> dict[str, Any]:
    return {
        "reward_id": reward.id,
        "program_id": reward.program_id,
        "referral_id": reward.referral_id,
        "advocate_id": reward.advocate_id,
        "side": reward.side,
        "kind": reward.kind,
        "amount_minor": reward.amount_minor,
        "currency": reward.currency,
        "points": reward.points,
        "state": reward.state,
        "held_until": reward.held_until.isoformat() if reward.held_until else None,
    }


_REWARD_ROW = snapshot_class(Reward)
_REWARD_COLUMNS = [column.name for column in Reward.__table__.columns]
_WRITTEN = [c for c in _REWARD_COLUMNS if c not in ("id", "review_reason")]
# Each parameter typed as its column's type: one used both as a value and in a comparison
# (side, kind) must not leave PostgreSQL to deduce two types. Without the length (an explicit
# cast to VARCHAR(16) would truncate; storing into the column refuses a value too long).
_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_SQL_TYPES = {
    c.name: re.sub(r"\(\d+\)", "", c.type.compile(dialect=_PG)) for c in Reward.__table__.columns
}


# A new reward, its first history line and its ``reward.created`` outbox event with deliveries,
# in one statement. One reward per ladder, not per rung: a referral that already holds this
# ladder's reward for this reference and round (earned on a lower rung when it qualified, say)
# is not rewarded again on the rung its win reaches; and the unique key keeps one per rule,
# referral, reference and round under concurrency. Either way no row comes back and nothing
# else is written. The payload is the event's without the reward's id, which is added here.
def _earn_sql() -> str:
    def arg(column: str) -> str:
        return f"${_WRITTEN.index(column) + 1}"

    n = len(_WRITTEN)
    announce = webhooks.enqueue_ctes(
        event_type="'reward.created'",
        payload=f"${n + 4}::jsonb || jsonb_build_object('reward_id', reward.id)",
        now="reward.created_at",
        source="reward",
    )
    return f"""
WITH reward AS (
    INSERT INTO rewards ({", ".join(_WRITTEN)})
    SELECT {", ".join(f"${i}::{_SQL_TYPES[c]}" for i, c in enumerate(_WRITTEN, start=1))}
    WHERE NOT EXISTS (
        SELECT 1 FROM rewards AS w JOIN reward_rules AS r ON r.id = w.rule_id
        WHERE w.referral_id = {arg("referral_id")} AND w.round = {arg("round")}
          AND w.trigger_ref = {arg("trigger_ref")} AND r.side = {arg("side")}
          AND r.kind = {arg("kind")} AND r.trigger = ${n + 1}
    )
    ON CONFLICT (rule_id, referral_id, trigger_ref, round) DO NOTHING
    RETURNING {", ".join(_REWARD_COLUMNS)}
), entry AS (
    INSERT INTO reward_entries (reward_id, state, at, actor, reason, amount_minor)
    SELECT id, state, created_at, ${n + 2}, ${n + 3}, amount_minor FROM reward
), {announce}
SELECT * FROM reward
"""  # noqa: S608


_EARN = _earn_sql()


async def _write_reward(
    session: AsyncSession, values: dict[str, Any], trigger: str, *, actor: str, reason: str
) -> RewardSnapshot | None:
    """Write one earned reward with its history line and webhook (``_EARN``); ``None`` when the
    referral already holds it (or its ladder's)."""
    unsaved = _REWARD_ROW(id=0, review_reason=None, **values)
    payload = reward_payload(unsaved)
    del payload["reward_id"]
    rows = await run_raw(
        session,
        _EARN,
        [
            *(values[c] for c in _WRITTEN),
            trigger,
            actor,
            reason,
            webhooks.payload_json(payload),
        ],
    )
    return _REWARD_ROW._make(rows[0]) if rows else None


# --- earning -----------------------------------------------------------------------------------


class EngineRule(reward_rules.RuleLike, Protocol):
    """A rule as the engine reads it: the ORM ``RewardRule``, or its row snapshot read in a hot
    path's own statement (``rule_snapshots``), which costs no ORM instance per rule."""

    @property
    def holding_days(self) -> int: ...


def rule_snapshots(rows: list[dict[str, Any]] | None) -> list[EngineRule]:
    """Rules from PostgreSQL's JSON for whole ``reward_rules`` rows (``json_agg(rule)``)."""
    return snapshots_from_json(RewardRule, rows)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one event earned: new rewards, and the rules skipped with the reason."""

    created: list[RewardSnapshot]
    skipped: list[tuple[int, str]]


async def active_rules(
    session: AsyncSession, program_id: int, triggers: Sequence[str]
) -> dict[str, list[RewardRule]]:
    """The program's active rules for these triggers, by trigger, in id order (one statement,
    whatever the number of triggers: a win earns the qualified and won rules together)."""
    out: dict[str, list[RewardRule]] = {t: [] for t in triggers}
    for rule in await session.scalars(_ACTIVE_RULES, {"p_id": program_id, "triggers": triggers}):
        out[rule.trigger].append(rule)
    return out


def rules_by_trigger(rules: Sequence[EngineRule]) -> dict[str, list[EngineRule]]:
    """Rules read elsewhere (in id order), by trigger, as ``active_rules`` gives them."""
    out: dict[str, list[EngineRule]] = {}
    for rule in rules:
        out.setdefault(rule.trigger, []).append(rule)
    return out


_ACTIVE_RULES = (
    select(RewardRule)
    .where(
        RewardRule.program_id == bindparam("p_id"),
        RewardRule.trigger.in_(bindparam("triggers", expanding=True)),
        RewardRule.active.is_(True),
    )
    .order_by(RewardRule.id)
)


def _reads_others(side: str, ladder: Sequence[EngineRule]) -> bool:
    """Whether evaluating ``ladder`` reads the advocate's other rewards: a rung that starts
    after the first referral (the ordinal picks the rung), or a referrer-side cap. A ladder that
    does neither needs no count and no advocate lock: nobody else counts its rewards either
    (ordinals count one ladder's, caps one capped rule's), and the unique index keeps one reward
    per rule and referral."""
    return any(r.from_nth_referral > 1 for r in ladder) or (
        side == RewardSide.REFERRER and any(r.cap_count is not None for r in ladder)
    )


async def _lock_advocate(session: AsyncSession, advocate_id: int) -> None:
    await run_raw(session, _LOCK_ADVOCATE, [_LOCK_NAMESPACE, advocate_id % 2_147_483_647])


_LOCK_ADVOCATE = "SELECT pg_advisory_xact_lock($1::integer, $2::integer)"
# How many other referrals of the advocate hold a live reward on one ladder (trigger, side,
# kind), and how many live rewards of one capped rule the advocate earned since a time: one
# statement (prebuilt; every referrer-side earn with a ladder or a cap runs it). A referrer
# reward names its advocate; a friend's (referred side) names none, so those are the rewards on
# the referrals now credited to the advocate. $1 program, $2 advocate, $3 this referral,
# $4 trigger, $5 side, $6 kind, $7 the capped rule (NULL: none, counted 0), $8 the cap's start.
_STANDING_SQL = """
SELECT (SELECT count(DISTINCT w.referral_id) FROM rewards AS w
        JOIN reward_rules AS r ON r.id = w.rule_id
        WHERE w.program_id = $1 AND {mine} AND w.referral_id <> $3
          AND w.state <> '{voided}' AND r.trigger = $4 AND r.side = $5 AND r.kind = $6),
       (SELECT count(*) FROM rewards AS c
        WHERE c.rule_id = $7 AND c.advocate_id = $2 AND c.state <> '{voided}'
          AND c.created_at >= $8)"""
_STANDING = {
    side: _STANDING_SQL.format(mine=mine, voided=RewardState.VOIDED.value)
    for side, mine in (
        (RewardSide.REFERRER.value, "w.advocate_id = $2"),
        (
            RewardSide.REFERRED.value,
            "w.referral_id IN (SELECT id FROM referrals"
            " WHERE program_id = $1 AND advocate_id = $2)",
        ),
    )
}


async def _standing(
    session: AsyncSession,
    referral: ReferralSnapshot,
    trigger: str,
    side: str,
    kind: str,
    capped_by: EngineRule | None,
    now: datetime,
) -> tuple[int, int]:
    """This referral's ordinal on the ladder and, for ``capped_by`` (a one-rung ladder's rule,
    known before the ordinal is), the rewards counting against its cap: one statement."""
    cap = capped_by if capped_by is not None and capped_by.cap_count is not None else None
    rows = await run_raw(
        session,
        _STANDING[side],
        [
            referral.program_id,
            referral.advocate_id,
            referral.id,
            trigger,
            side,
            kind,
            cap.id if cap is not None else None,
            reward_rules.cap_window_start(cap, now) if cap is not None else now,
        ],
    )
    earlier, counted = rows[0]
    return int(earlier) + 1, int(counted)  # no cap: no rule id matches, 0


_CAP_USED = f"""
SELECT count(*) FROM rewards WHERE rule_id = $1 AND advocate_id = $2
  AND state <> '{RewardState.VOIDED.value}' AND created_at >= $3"""  # noqa: S608 (a constant)


async def _capped(session: AsyncSession, rule: EngineRule, advocate_id: int, now: datetime) -> bool:
    if rule.cap_count is None:
        return False
    rows = await run_raw(
        session, _CAP_USED, [rule.id, advocate_id, reward_rules.cap_window_start(rule, now)]
    )
    return reward_rules.is_capped(rule, int(rows[0][0]))


async def on_referral_event(
    session: AsyncSession,
    referral: ReferralSnapshot,
    event: str,
    *,
    now: datetime,
    base_amount_minor: int | None = None,
    base_currency: str | None = None,
    trigger_ref: str = "",
    actor: str = "system",
    only_side: str | None = None,
    rules: Sequence[EngineRule] | None = None,
    auto_approve: bool | None = None,
) -> Evaluation:
    """Evaluate the program's active rules for ``event`` (signup, qualified, won, revenue).

    Percentage rules take ``base_amount_minor`` (the revenue or won amount); rules sharing a
    side, trigger and kind form a tier ladder and the highest rung the advocate has reached
    applies. Rewards start pending; programs with ``settings.auto_approve_rewards`` approve
    them at once unless the referral waits for moderation or the rule has a holding period
    (``release_due_rewards`` approves those when it ends). ``only_side`` limits the evaluation
    to one side (re-attribution re-earns the referrer side only). The caller holds the referral's
    row lock. ``rules`` and ``auto_approve`` (the program's setting) may be passed by a caller
    that has read them already.
    """
    trigger = RewardTrigger(event)
    if reward_rules.earns_nothing(referral.status, referral.moderation):
        return Evaluation(created=[], skipped=[])
    if rules is None:
        rules = (await active_rules(session, referral.program_id, (trigger,))).get(trigger, [])
    rules = [r for r in rules if only_side is None or r.side == only_side]
    if not rules:
        return Evaluation(created=[], skipped=[])
    ladders = reward_rules.ladders(rules)
    if any(_reads_others(side, ladder) for (side, _), ladder in ladders.items()):
        await _lock_advocate(session, referral.advocate_id)
    if auto_approve is None:
        program = await session.get(Program, referral.program_id)
        assert program is not None
        auto_approve = bool(program.settings.get(AUTO_APPROVE))
    created: list[RewardSnapshot] = []
    skipped: list[tuple[int, str]] = []
    for (side, kind), ladder in ladders.items():
        capped_by = ladder[0] if len(ladder) == 1 and side == RewardSide.REFERRER else None
        if _reads_others(side, ladder):
            ordinal, used = await _standing(session, referral, trigger, side, kind, capped_by, now)
        else:  # every ordinal picks the same rung, and nothing caps it
            ordinal, used = 1, 0
        picked = reward_rules.pick_tier(ladder, ordinal)
        if picked is None:
            skipped.extend((r.id, "tier_not_reached") for r in ladder)
            continue
        rule = picked
        if side == RewardSide.REFERRER and (
            reward_rules.is_capped(rule, used)
            if capped_by is not None
            else await _capped(session, rule, referral.advocate_id, now)
        ):
            skipped.append((rule.id, "capped"))
            continue
        earned = reward_rules.earn(
            rule,
            base_amount_minor=base_amount_minor,
            base_currency=base_currency,
            trigger_ref=trigger_ref,
        )
        if isinstance(earned, str):
            skipped.append((rule.id, earned))
            continue
        amount, currency, points = earned.amount_minor, earned.currency, earned.points
        ref = earned.trigger_ref
        beneficiary = referral.advocate_id if side == RewardSide.REFERRER else None
        if referral.reward_round > 0 and await _live_elsewhere(
            session, rule.id, referral.id, ref, beneficiary
        ):
            skipped.append((rule.id, "already_rewarded"))
            continue
        held_until = now + timedelta(days=rule.holding_days) if rule.holding_days else None
        values: dict[str, Any] = {
            "program_id": referral.program_id,
            "rule_id": rule.id,
            "referral_id": referral.id,
            "advocate_id": beneficiary,
            "side": side,
            "trigger_ref": ref,
            "kind": kind,
            "amount_minor": amount,
            "currency": currency,
            "points": points,
            "state": RewardState.PENDING,
            "clawback_until": reward_rules.clawback_until(rule, now),
            "held_until": held_until,
            "round": referral.reward_round,
            "created_at": now,
        }
        reward = await _write_reward(
            session,
            values,
            trigger.value,
            actor=actor,
            reason=f"{trigger.value} (rule '{rule.name}', referral #{ordinal})",
        )
        if reward is None:
            skipped.append((rule.id, "already_rewarded"))
            continue
        if (
            auto_approve
            and held_until is None
            and referral.moderation in (ModerationState.CLEAR, ModerationState.APPROVED)
        ):
            await _move(
                session,
                await _locked_reward(session, reward.id),
                RewardState.APPROVED,
                actor=actor,
                reason=reward_rules.AUTO_APPROVAL_REASON,
                now=now,
            )
        created.append(reward)
    return Evaluation(created=created, skipped=skipped)


async def _live_elsewhere(
    session: AsyncSession, rule_id: int, referral_id: int, ref: str, advocate_id: int | None
) -> bool:
    """Whether this beneficiary holds a live reward of this rule and trigger from any round."""
    found = await session.scalar(
        select(Reward.id)
        .where(
            Reward.rule_id == rule_id,
            Reward.referral_id == referral_id,
            Reward.trigger_ref == ref,
            Reward.advocate_id.is_not_distinct_from(advocate_id),
            Reward.state != RewardState.VOIDED,
        )
        .limit(1)
    )
    return found is not None


# Reward milestones a referral's status stands for when its rewards are earned again (a new
# round); the backtest's replay reads the same table.
STANDING: dict[str, tuple[RewardTrigger, ...]] = {
    ReferralStatus.LEAD: (RewardTrigger.SIGNUP,),
    ReferralStatus.QUALIFIED: (RewardTrigger.SIGNUP, RewardTrigger.QUALIFIED),
    ReferralStatus.OPPORTUNITY: (RewardTrigger.SIGNUP, RewardTrigger.QUALIFIED),
    ReferralStatus.WON: (
        RewardTrigger.SIGNUP,
        RewardTrigger.QUALIFIED,
        RewardTrigger.WON,
        RewardTrigger.REVENUE,
    ),
}


async def earn_again(
    session: AsyncSession,
    referral: Referral,
    *,
    now: datetime,
    actor: str,
    side: str | None = None,
    base_amount_minor: int | None = None,
    base_currency: str | None = None,
    also: Sequence[str] = (),
) -> list[RewardSnapshot]:
    """Start a new reward round and earn every milestone the referral stands at, as if the
    current advocate had been credited from the start: the ladder and caps are counted for
    them. Revenue-share rules are earned per charge that was not refunded. ``also`` adds
    triggers the caller knows were reached (those the previous advocate was rewarded for).
    The caller holds the referral's row lock.
    """
    referral.reward_round += 1
    await session.flush()
    triggers = list(STANDING.get(referral.status, ()))
    triggers += [RewardTrigger(t) for t in also if RewardTrigger(t) not in triggers]
    created: list[RewardSnapshot] = []
    for trigger in sorted(triggers, key=list(RewardTrigger).index):
        if trigger != RewardTrigger.REVENUE:
            won = trigger == RewardTrigger.WON
            result = await on_referral_event(
                session,
                referral,
                trigger,
                now=now,
                base_amount_minor=base_amount_minor if won else None,
                base_currency=base_currency if won else None,
                actor=actor,
                only_side=side,
            )
            created += result.created
            continue
        for charge in await _unrefunded_charges(session, referral.id):
            result = await on_referral_event(
                session,
                referral,
                RewardTrigger.REVENUE,
                now=now,
                base_amount_minor=charge.amount_minor,
                base_currency=charge.currency,
                trigger_ref=revenue_trigger_ref(charge.id),
                actor=actor,
                only_side=side,
            )
            created += result.created
    return created


async def _unrefunded_charges(session: AsyncSession, referral_id: int) -> list[RevenueEvent]:
    refunded = select(RevenueEvent.data["refunds_external_id"].astext).where(
        RevenueEvent.referral_id == referral_id,
        RevenueEvent.kind == RevenueKind.REFUND,
        RevenueEvent.data.has_key("refunds_external_id"),
    )
    return list(
        await session.scalars(
            select(RevenueEvent)
            .where(
                RevenueEvent.referral_id == referral_id,
                RevenueEvent.kind != RevenueKind.REFUND,
                ~RevenueEvent.external_id.in_(refunded),
            )
            .order_by(RevenueEvent.occurred_at, RevenueEvent.id)
        )
    )


# --- state changes -----------------------------------------------------------------------------


async def _locked_reward(session: AsyncSession, reward_id: int) -> Reward:
    reward = await session.scalar(
        select(Reward)
        .where(Reward.id == reward_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if reward is None:
        raise NotFound("no such reward", field="rewardId")
    return reward


# A reward's state move, its history line and its outbox event with deliveries, in one
# statement. $1 the reward, $2 the new state, $3 now, $4 actor, $5 reason, $6 fulfilment
# reference, $7 amount, $8 the event type, $9 its payload.
_MOVE = "".join(
    (
        """
WITH entry AS (
    INSERT INTO reward_entries (reward_id, state, at, actor, reason, fulfilment_ref, amount_minor)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
), moved AS (
    UPDATE rewards SET state = $2 WHERE id = $1
),""",
        webhooks.enqueue_ctes(event_type="$8::varchar", payload="$9::jsonb", now="$3"),
        "\nSELECT id FROM event",
    )
)


async def _move(
    session: AsyncSession,
    reward: Reward,
    to_state: str,
    *,
    actor: str,
    reason: str | None,
    now: datetime,
    fulfilment_ref: str | None = None,
) -> Reward:
    if to_state not in REWARD_TRANSITIONS[reward.state]:
        raise InvalidTransition(
            f"a {reward.state} reward cannot become {to_state}", field="rewardId"
        )
    if (
        reward.state == RewardState.FULFILLED
        and reward.clawback_until is not None
        and now > reward.clawback_until
    ):
        raise InvalidTransition(
            "the clawback window of this fulfilled reward has closed", field="rewardId"
        )
    await flush_pending(session)  # the caller's own changes first
    was = reward.state
    event = {
        RewardState.APPROVED: "reward.approved",
        RewardState.FULFILLED: "reward.fulfilled",
        RewardState.VOIDED: "reward.voided",
    }[RewardState(to_state)]
    set_committed_value(reward, "state", to_state)
    payload = reward_payload(reward) | {"actor": actor, "reason": reason}
    if fulfilment_ref:
        payload["fulfilment_ref"] = fulfilment_ref
    await run_raw(
        session,
        _MOVE,
        [
            reward.id,
            str(to_state),
            now,
            actor,
            reason,
            fulfilment_ref,
            reward.amount_minor,
            event,
            webhooks.payload_json(payload),
        ],
    )
    if was == RewardState.FULFILLED and to_state == RewardState.VOIDED:
        await _reverse_points(session, reward, now=now)
    return reward


def _check_reason(reason: str | None, *, required: bool) -> str | None:
    reason = reason.strip() if reason else None
    if required and not reason:
        raise ValidationFailed("a reason is required", field="reason")
    if reason is not None and len(reason) > 1000:
        raise ValidationFailed("reason must be at most 1000 characters", field="reason")
    return reason


async def approve_reward(
    session: AsyncSession, reward_id: int, *, actor: str, reason: str | None, now: datetime
) -> Reward:
    """Approve a pending reward. Refused while its referral waits for moderation."""
    reason = _check_reason(reason, required=False)
    reward = await _locked_reward(session, reward_id)
    if reward.state == RewardState.APPROVED:
        return reward
    if (
        reward.state == RewardState.PENDING
        and reward.held_until is not None
        and now < reward.held_until
    ):
        raise Conflict(
            "this reward is in its holding period; it can be approved from "
            f"{reward.held_until.isoformat()}",
            field="rewardId",
        )
    moderation = await session.scalar(
        select(Referral.moderation).where(Referral.id == reward.referral_id)
    )
    if moderation in (ModerationState.PENDING, ModerationState.REJECTED):
        raise Conflict(
            f"the referral is {'awaiting moderation' if moderation == 'pending' else 'rejected'};"
            " its rewards stay pending",
            field="rewardId",
        )
    return await _move(session, reward, RewardState.APPROVED, actor=actor, reason=reason, now=now)


async def void_reward(
    session: AsyncSession, reward_id: int, *, actor: str, reason: str | None, now: datetime
) -> Reward:
    reason = _check_reason(reason, required=True)
    reward = await _locked_reward(session, reward_id)
    if reward.state == RewardState.VOIDED:
        return reward
    return await _move(session, reward, RewardState.VOIDED, actor=actor, reason=reason, now=now)


# --- points ledger upkeep (voiding fulfilled points) --------------------------------------


async def _reverse_points(session: AsyncSession, reward: Reward, *, now: datetime) -> None:
    """A voided fulfilled points reward takes its points back (a negative ledger entry, once);
    the level follows the balance and the points badge is re-checked."""
    if reward.kind != RewardKind.POINTS or reward.advocate_id is None or reward.points == 0:
        return
    await session.execute(
        insert(PointsEntry)
        .values(
            advocate_id=reward.advocate_id,
            program_id=reward.program_id,
            points=-reward.points,
            reason="referral_reward_void",
            ref=f"reward:{reward.id}",
            at=now,
        )
        .on_conflict_do_nothing(index_elements=["advocate_id", "reason", "ref"])
    )
    await sync_points_badge(session, reward.advocate_id, now=now)


async def sync_points_badge(session: AsyncSession, advocate_id: int, *, now: datetime) -> None:
    """Hold the points badge exactly while the advocate's balance reaches its threshold."""
    balance = int(
        await session.scalar(
            select(func.coalesce(func.sum(PointsEntry.points), 0)).where(
                PointsEntry.advocate_id == advocate_id
            )
        )
        or 0
    )
    if balance >= POINTS_BADGE_AT:
        await session.execute(
            insert(AdvocateBadge)
            .values(advocate_id=advocate_id, badge=POINTS_BADGE_CODE, awarded_at=now)
            .on_conflict_do_nothing(index_elements=["advocate_id", "badge"])
        )
    else:
        await session.execute(
            delete(AdvocateBadge).where(
                AdvocateBadge.advocate_id == advocate_id, AdvocateBadge.badge == POINTS_BADGE_CODE
            )
        )


# --- clawback ----------------------------------------------------------------------------------


async def claw_back(
    session: AsyncSession,
    referral_id: int,
    *,
    at: datetime,
    actor: str,
    reason: str,
    now: datetime,
    trigger_ref: str | None = None,
) -> list[Reward]:
    """Void the referral's rewards whose clawback window or holding period still covers
    ``at``.

    Rewards earned longer ago than their window stay: the advocate keeps them.
    """
    stmt = (
        select(Reward)
        .where(
            Reward.referral_id == referral_id,
            Reward.state != RewardState.VOIDED,
            or_(
                Reward.clawback_until >= at,
                (Reward.state == RewardState.PENDING) & (Reward.held_until >= at),
            ),
        )
        .order_by(Reward.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if trigger_ref is not None:
        stmt = stmt.where(Reward.trigger_ref == trigger_ref)
    voided: list[Reward] = []
    for reward in await session.scalars(stmt):
        await _move(session, reward, RewardState.VOIDED, actor=actor, reason=reason, now=at)
        voided.append(reward)
    return voided


async def void_unfulfilled(
    session: AsyncSession,
    referral_id: int,
    *,
    side: str | None,
    actor: str,
    reason: str,
    now: datetime,
) -> list[Reward]:
    """Void every pending or approved reward of a referral (rejection, re-attribution)."""
    stmt = (
        select(Reward)
        .where(
            Reward.referral_id == referral_id,
            Reward.state.in_([RewardState.PENDING, RewardState.APPROVED]),
        )
        .order_by(Reward.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if side is not None:
        stmt = stmt.where(Reward.side == side)
    voided: list[Reward] = []
    for reward in await session.scalars(stmt):
        await _move(session, reward, RewardState.VOIDED, actor=actor, reason=reason, now=now)
        voided.append(reward)
    return voided


async def move_credit(
    session: AsyncSession,
    referral: Referral,
    previous_advocate_id: int,
    *,
    actor: str,
    now: datetime,
) -> tuple[list[Reward], list[Reward], list[RewardSnapshot]]:
    """The reward side of a re-attribution (the referral already names its new advocate).

    The previous advocate's unpaid referrer rewards are voided; a fulfilled one is clawed back
    or held for review as the program's ``reattribution_fulfilled`` setting says (held when
    its clawback window has closed); then the new advocate earns what the referral stands at,
    in a new round. Returns (voided, held for review, created).
    """
    program = await session.get(Program, referral.program_id)
    assert program is not None
    for advocate_id in sorted({previous_advocate_id, referral.advocate_id}):
        await _lock_advocate(session, advocate_id)  # in id order: no deadlock with a move back
    previous = list(
        await session.scalars(
            select(Reward)
            .where(
                Reward.referral_id == referral.id,
                Reward.advocate_id == previous_advocate_id,
                Reward.side == RewardSide.REFERRER,
                Reward.state != RewardState.VOIDED,
            )
            .order_by(Reward.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    reached = sorted(set(await _triggers_of(session, previous)))
    claw = program.settings.get(REATTRIBUTION_FULFILLED) == CLAW_BACK
    voided: list[Reward] = []
    held: list[Reward] = []
    for reward in previous:
        if reward.state != RewardState.FULFILLED or (
            claw and reward.clawback_until is not None and now <= reward.clawback_until
        ):
            await _move(
                session, reward, RewardState.VOIDED, actor=actor, reason=REATTRIBUTED, now=now
            )
            voided.append(reward)
        elif reward.review_reason is None:
            reward.review_reason = REATTRIBUTED
            await session.flush()
            await webhooks.enqueue(
                session,
                "reward.review_requested",
                reward_payload(reward) | {"actor": actor, "reason": REATTRIBUTED},
                now=now,
            )
            held.append(reward)
    created = await earn_again(
        session, referral, now=now, actor=actor, side=RewardSide.REFERRER, also=reached
    )
    return voided, held, created


async def _triggers_of(session: AsyncSession, rewards: list[Reward]) -> list[str]:
    if not rewards:
        return []
    return list(
        await session.scalars(
            select(RewardRule.trigger)
            .where(RewardRule.id.in_({r.rule_id for r in rewards}))
            .distinct()
        )
    )


# --- holding period ----------------------------------------------------------------------------


async def release_due_rewards(
    session: AsyncSession, now: datetime, *, limit: int = 1000
) -> list[Reward]:
    """Approve pending rewards whose holding period has ended, in programs that auto-approve
    (``settings.auto_approve_rewards``); returns them.

    Rewards of referrals awaiting moderation (or rejected) stay pending. Rows another worker
    is releasing are skipped, so concurrent runs approve each reward once; ``limit`` bounds
    one run. Flushes, never commits: the caller (the scheduler, ``vouch rewards release``)
    owns the transaction.
    """
    due = list(
        await session.scalars(
            select(Reward)
            .join(Program, Program.id == Reward.program_id)
            .join(Referral, Referral.id == Reward.referral_id)
            .where(
                Reward.state == RewardState.PENDING,
                Reward.held_until.is_not(None),
                Reward.held_until <= now,
                Program.settings[AUTO_APPROVE].as_boolean().is_(True),
                Referral.moderation.in_([ModerationState.CLEAR, ModerationState.APPROVED]),
            )
            .order_by(Reward.held_until, Reward.id)
            .limit(limit)
            .with_for_update(of=Reward, skip_locked=True)
            .execution_options(populate_existing=True)
        )
    )
    for reward in due:
        await _move(
            session,
            reward,
            RewardState.APPROVED,
            actor=RELEASE_ACTOR,
            reason="holding period ended",
            now=now,
        )
    return due
