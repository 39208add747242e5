"""The referral state machine: lead → qualified → opportunity → won | lost; won → churned or
refunded (or back to lost when a deal is reopened and lost); rejected only through moderation.

Every transition appends a ``ReferralEvent`` (from, to, at, source, actor), announces
``referral.status_changed`` through the outbox, and runs the reward side effects: reaching
qualified or won earns the rules for those triggers, falling back from won (lost, churned,
refunded) claws back rewards still inside their clawback window or holding period, and
winning again after such a fall (a reopened deal) earns again in a new reward round, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from vouch.attribution import rewards, rollups, webhooks
from vouch.core.choices import parse_choice
from vouch.core.errors import InvalidTransition, NotFound, ValidationFailed
from vouch.core.raw_select import flush_pending, run_raw
from vouch.core.snapshot import copy_to_loaded, snapshot_class
from vouch.models import Referral, ReferralEvent
from vouch.models.enums import ModerationState, ReferralStatus, RewardTrigger
from vouch.models.snapshots import ReferralEventSnapshot, ReferralSnapshot

S = ReferralStatus
TRANSITIONS: dict[str, frozenset[str]] = {
    S.LEAD: frozenset({S.QUALIFIED, S.OPPORTUNITY, S.WON, S.LOST, S.REJECTED}),
    S.QUALIFIED: frozenset({S.OPPORTUNITY, S.WON, S.LOST, S.REJECTED}),
    S.OPPORTUNITY: frozenset({S.WON, S.LOST, S.REJECTED}),
    S.WON: frozenset({S.LOST, S.CHURNED, S.REFUNDED}),
    # A lost deal can be reopened in the CRM.
    S.LOST: frozenset({S.OPPORTUNITY, S.WON, S.REJECTED}),
    S.CHURNED: frozenset(),
    S.REFUNDED: frozenset(),
    S.REJECTED: frozenset(),
}
# Reaching a status implies having passed these reward milestones.
MILESTONES: dict[str, tuple[RewardTrigger, ...]] = {
    S.QUALIFIED: (RewardTrigger.QUALIFIED,),
    S.OPPORTUNITY: (RewardTrigger.QUALIFIED,),
    S.WON: (RewardTrigger.QUALIFIED, RewardTrigger.WON),
}
REVERSALS = frozenset({S.LOST, S.CHURNED, S.REFUNDED})
MODERATION_SOURCE = "moderation"
MAX_SOURCE = 64
MAX_ACTOR = 128


def referral_payload(referral: ReferralSnapshot) -> dict[str, Any]:
    return {
        "referral_id": referral.id,
        "program_id": referral.program_id,
        "advocate_id": referral.advocate_id,
        "link_id": referral.link_id,
        "status": referral.status,
        "moderation": referral.moderation,
        "source": referral.source,
    }


# Built once (the hot write paths run them on every conversion, stage move and payment).
_LOCK = (
    select(Referral)
    .where(Referral.id == bindparam("r_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)
_EVENT_ROW = snapshot_class(ReferralEvent)
_REFERRAL_ROW = snapshot_class(Referral)
# A status move: the referral's new status, its lifecycle event (returned whole), and
# ``referral.status_changed`` in the outbox with its deliveries, in one statement. $1 referral,
# $2 new status, $3 now, $4 old status, $5 source, $6 actor, $7 detail, $8 payload.
_MOVE = "".join(
    (
        """
WITH moved AS (
    UPDATE referrals SET status = $2::varchar, updated_at = $3 WHERE id = $1
), moved_event AS (
    INSERT INTO referral_events (referral_id, from_status, to_status, at, source, actor, detail)
    VALUES ($1, $4, $2::varchar, $3, $5, $6, $7::jsonb)
    RETURNING """,
        ", ".join(column.name for column in ReferralEvent.__table__.columns),
        "\n),",
        webhooks.enqueue_ctes(
            event_type="'referral.status_changed'", payload="$8::jsonb", now="$3"
        ),
        "\nSELECT * FROM moved_event",
    )
)


@dataclass(frozen=True, slots=True)
class Transition:
    referral: ReferralSnapshot  # as it now is
    event: ReferralEventSnapshot | None  # None when the referral already had that status

    @property
    def changed(self) -> bool:
        return self.event is not None


async def lock_referral(session: AsyncSession, referral_id: int) -> Referral:
    """Load the referral with a row lock: concurrent transitions of one referral queue here."""
    referral = await session.scalar(_LOCK, {"r_id": referral_id})
    if referral is None:
        raise NotFound("no such referral", field="referralId")
    return referral


def parse_status(value: str, *, field: str = "status") -> ReferralStatus:
    return parse_choice(ReferralStatus, value, field=field, what="referral status")


# A new referral's first event (∅ → lead), the fraud flags its screen found (which hold it for
# moderation), its rollup rows and its ``referral.created`` outbox event with deliveries: one
# statement, on the claim's hot path. $1 referral, $2 flags (empty: no update), $3 moderation,
# $4 now, $5 source, $6 actor, $7 payload, $8 event type.
_FIRST_EVENT = """
WITH flagged AS (
    UPDATE referrals SET flags = $2::varchar[], moderation = $3, updated_at = $4
    WHERE id = $1 AND cardinality($2::varchar[]) > 0
), first_event AS (
    INSERT INTO referral_events (referral_id, from_status, to_status, at, source, actor, detail)
    VALUES ($1, NULL, 'lead', $4, $5, $6, '{}'::jsonb)
),"""
_ANNOUNCE = "".join(
    (
        _FIRST_EVENT,
        rollups.add_contributions_ctes("ARRAY[$1::bigint]"),
        ",",
        webhooks.enqueue_ctes(event_type="$8::varchar", payload="$7::jsonb", now="$4"),
        "\nSELECT id FROM event",
    )
)


async def announce_new_referral(
    session: AsyncSession,
    referral: ReferralSnapshot,
    found: list[str],
    *,
    source: str,
    actor: str | None,
    now: datetime,
) -> tuple[list[str], str]:
    """Record a new lead (written already, flags not yet): its fraud flags, first event, rollup
    rows and webhook, in one prebuilt statement. Flags hold it for moderation. Returns the
    referral's flags and moderation state as they now are."""
    assert referral.status == S.LEAD
    moderation = referral.moderation
    flags = list(referral.flags or [])
    if found:
        flags = sorted(set(flags) | set(found))
        if moderation in (ModerationState.CLEAR, ModerationState.APPROVED):
            moderation = ModerationState.PENDING
    payload = referral_payload(referral) | {"moderation": str(moderation)}
    await run_raw(
        session,
        _ANNOUNCE,
        [
            referral.id,
            flags if found else [],
            str(moderation),
            now,
            source[:MAX_SOURCE],
            actor[:MAX_ACTOR] if actor else None,
            webhooks.payload_json(payload),
            "referral.created",
        ],
    )
    return flags, str(moderation)


async def on_referral_created(
    session: AsyncSession, referral: Referral, *, source: str, actor: str | None, now: datetime
) -> None:
    """The first event of a new referral (∅ → lead), its webhook, and signup rewards.

    For referrals written through the ORM (imports, tests); the claim flow announces its own
    with ``announce_new_referral`` and earns with the rules it has already read."""
    await session.flush()
    await announce_new_referral(session, referral, [], source=source, actor=actor, now=now)
    await rewards.on_referral_event(session, referral, RewardTrigger.SIGNUP, now=now)


async def transition(
    session: AsyncSession,
    referral_id: int,
    to_status: str,
    *,
    source: str,
    actor: str | None,
    now: datetime,
    detail: dict[str, Any] | None = None,
    won_amount_minor: int | None = None,
    won_currency: str | None = None,
    locked: Referral | ReferralSnapshot | None = None,
    rules: Mapping[str, Sequence[rewards.EngineRule]] | None = None,
    auto_approve: bool | None = None,
) -> Transition:
    """Move a referral to ``to_status``; a no-op if it is already there.

    ``won_amount_minor`` is the base for percentage rules triggered by won. ``locked`` is the
    referral when the caller has already read it under its row lock in this transaction (an
    ORM object loaded ``FOR UPDATE`` with ``populate_existing``, or a row snapshot read ``FOR
    UPDATE``), which saves locking it again. ``rules`` (the program's active rules by trigger,
    covering the milestones of ``to_status``) and ``auto_approve`` (its setting) may be passed
    by a caller that read them with the referral.
    """
    target = parse_status(to_status)
    if not source or len(source) > MAX_SOURCE:
        raise ValidationFailed(f"source must be 1 to {MAX_SOURCE} characters", field="source")
    if target == S.REJECTED and source != MODERATION_SOURCE:
        raise InvalidTransition(
            "a referral is rejected through moderation, not by a status change",
            field="status",
        )
    referral: Referral | ReferralSnapshot = (
        locked
        if locked is not None and locked.id == referral_id
        else await lock_referral(session, referral_id)
    )
    current = referral.status
    if current == target:
        return Transition(referral=referral, event=None)
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"a {current} referral cannot become {target}", field="status")
    await flush_pending(session)  # the caller's own changes first, as before any statement
    # A rejected referral counts nowhere in the reports.
    before = await rollups.contributions(session, [referral.id]) if target == S.REJECTED else {}
    rows = await run_raw(
        session,
        _MOVE,
        [
            referral.id,
            str(target),
            now,
            current,
            source,
            actor[:MAX_ACTOR] if actor else None,
            webhooks.payload_json(detail or {}),
            webhooks.payload_json(
                referral_payload(referral)
                | {"status": str(target), "from_status": current, "to_status": str(target)}
            ),
        ],
    )
    event = _EVENT_ROW._make(rows[0])
    if isinstance(referral, Referral):
        set_committed_value(referral, "status", target)
        set_committed_value(referral, "updated_at", now)
    else:
        referral = _REFERRAL_ROW._make(
            [getattr(referral, name) for name in _REFERRAL_ROW._fields]
        )._replace(status=str(target), updated_at=now)
        copy_to_loaded(session, Referral, referral)  # a caller's loaded object sees the move
    if target == S.REJECTED:
        after = await rollups.contributions(session, [referral.id])
        await rollups.apply(session, rollups.difference(after, before))
    label = actor or source
    if target == S.REJECTED:
        await rewards.void_unfulfilled(
            session, referral.id, side=None, actor=label, reason="referral rejected", now=now
        )
    elif target in REVERSALS and current == S.WON:
        await rewards.claw_back(
            session,
            referral.id,
            at=now,
            actor=label,
            reason=f"referral {target} after won",
            now=now,
        )
    elif (
        target == S.WON and current in (S.LOST, S.OPPORTUNITY) and await _won_before(session, event)
    ):
        # A reopened deal won again: a new reward round earns what the referral stands at
        # (rewards still live from before are not earned twice).
        await rewards.earn_again(
            session,
            referral
            if isinstance(referral, Referral)
            else await lock_referral(session, referral.id),  # held already: not a second wait
            now=now,
            actor=label,
            base_amount_minor=won_amount_minor,
            base_currency=won_currency,
        )
    elif triggers := MILESTONES.get(target, ()):
        if rules is None:
            rules = await rewards.active_rules(session, referral.program_id, triggers)
        for trigger in triggers:
            await rewards.on_referral_event(
                session,
                referral,
                trigger,
                now=now,
                base_amount_minor=won_amount_minor if trigger == RewardTrigger.WON else None,
                base_currency=won_currency if trigger == RewardTrigger.WON else None,
                actor=label,
                rules=rules.get(trigger, []),
                auto_approve=auto_approve,
            )
    return Transition(referral=referral, event=event)


async def _won_before(session: AsyncSession, event: ReferralEventSnapshot) -> bool:
    """Whether the referral was won before ``event`` (an earlier transition to won)."""
    return bool(await run_raw(session, _WON_BEFORE, [event.referral_id, event.id]))


# Prebuilt (every deal won from opportunity or lost runs it). $1 the referral, $2 the event.
_WON_BEFORE = (
    "SELECT id FROM referral_events"  # noqa: S608 (a constant only)
    f" WHERE referral_id = $1 AND to_status = '{S.WON.value}' AND id < $2 LIMIT 1"
)


async def events_for(
    session: AsyncSession, referral_ids: list[int]
) -> dict[int, list[ReferralEvent]]:
    rows = await session.scalars(
        select(ReferralEvent)
        .where(ReferralEvent.referral_id.in_(referral_ids))
        .order_by(ReferralEvent.at, ReferralEvent.id)
    )
    out: dict[int, list[ReferralEvent]] = {i: [] for i in referral_ids}
    for row in rows:
        out[row.referral_id].append(row)
    return out
