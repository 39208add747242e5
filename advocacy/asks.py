"""Asks: matched to tier and moment, queued, sent under one frequency cap, answered.

Lifecycle: queued -> sent -> accepted -> published, or declined (with a fallback ask: an
anonymous quote instead of a named case study), or cancelled / expired.

One contact policy: every ask sent to an advocate counts against the same cap, whichever
team (marketing, sales, customer success) or program sent it: at most
``program.frequency_cap_days``-window ``frequency_cap_count`` asks, or ``tier1_cap_count`` for a
Tier 1 advocate who opted into more. A fallback offered in answer to a decline is part of the
same conversation and does not count. When several asks qualify, the highest priority is sent
and the rest wait queued.

Every function that may send locks the advocate's row first (``SELECT ... FOR UPDATE``), so
two workers evaluating the same advocate at once serialise and the second sees the first's
ask: the cap holds under concurrency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy import ask_policy, experiments, moments
from vouch.advocacy.actions import RecordedAction, check_url, create_action
from vouch.advocacy.ask_policy import (
    ACTION_OF,
    AWAITING,
    DORMANT_ASKS,
    FALLBACKS,
    HARD_GUARDS,
    OPEN,
    TRANSITIONS,
    ask_type_for,
    cap_guard,
    cap_state,
    parse_ask_type,
    parse_team,
    pick_next,
    priority_of,
)
from vouch.advocacy.moments import Guard, GuardCode, MomentKind
from vouch.advocacy.signals import signals_of
from vouch.core.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from vouch.models import AdvocacyAction, Advocate, AdvocateScore, Ask, Program, Signal
from vouch.models.enums import AskStatus, AskType, ProgramStatus, SignalKind
from vouch.models.snapshots import AskSnapshot


@dataclass(frozen=True, slots=True)
class Evaluation:
    advocate_id: int
    program_id: int
    queued: list[Ask]
    sent: Ask | None
    expired: int
    guards: list[Guard] = field(default_factory=list)


async def lock_advocate(
    session: AsyncSession, advocate_id: int, *, field: str = "advocateId"
) -> Advocate:
    """The advocate's row, locked until the transaction ends: the per-advocate contact lock."""
    advocate = await session.scalar(
        select(Advocate)
        .where(Advocate.id == advocate_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if advocate is None:
        raise NotFound("no such advocate", field=field)
    if advocate.erased_at is not None:
        raise Conflict("this advocate's data was erased; they cannot be asked", field=field)
    return advocate


async def active_program(
    session: AsyncSession, program_id: int, *, field: str = "programId"
) -> Program:
    program = await session.get(Program, program_id)
    if program is None:
        raise NotFound("no such program", field=field)
    if program.status != ProgramStatus.ACTIVE:
        raise DomainError(
            f"the program is {program.status}, not active", field=field, code=ErrorCode.INACTIVE
        )
    return program


async def asks_of(session: AsyncSession, advocate_id: int) -> list[Ask]:
    return list(
        await session.scalars(
            select(Ask)
            .where(Ask.advocate_id == advocate_id)
            .order_by(Ask.id)
            .execution_options(populate_existing=True)
        )
    )


async def tier_in(session: AsyncSession, advocate_id: int, program_id: int) -> int | None:
    return await session.scalar(
        select(AdvocateScore.tier).where(
            AdvocateScore.advocate_id == advocate_id, AdvocateScore.program_id == program_id
        )
    )


async def _last_action_at(session: AsyncSession, advocate_id: int) -> datetime | None:
    return await session.scalar(
        select(func.max(AdvocacyAction.occurred_at)).where(
            AdvocacyAction.advocate_id == advocate_id
        )
    )


async def evaluate_asks(
    session: AsyncSession, advocate_id: int, program_id: int, *, now: datetime
) -> Evaluation:
    """Queue the asks the advocate's moments (and dormancy) earn in this program, then send the
    highest-priority queued automated ask if no guard or cap holds it back.

    Idempotent: a moment queues its ask once (natural key), and a second evaluation right
    after the first finds the cap used.
    """
    advocate = await lock_advocate(session, advocate_id)
    program = await active_program(session, program_id)
    config = moments.config_for(program)
    signals = await signals_of(session, advocate_id, until=now)
    asks = await asks_of(session, advocate_id)
    expired = ask_policy.expire_queued(asks, now, config)
    tier = await tier_in(session, advocate_id, program_id)
    guards = moments.signal_guards(signals, now, config) + moments.ask_guards(asks, now, config)
    held_out = await experiments.withholds_asks(session, advocate_id, program_id, now=now)
    if held_out is not None:
        guards.append(
            Guard(
                GuardCode.EXPERIMENT_HOLDOUT,
                f"held out of the experiment '{held_out.experiment_name}': no automated asks",
            )
        )
    candidates: list[dict[str, Any]] = []
    if not any(g.code in HARD_GUARDS for g in guards):
        for moment in moments.detect_moments(signals, now, config):
            ask_type = ask_type_for(moment.kind, tier, advocate)
            if ask_type is not None:
                candidates.append(
                    ask_policy.candidate(
                        advocate,
                        program,
                        ask_type,
                        moment.kind,
                        now,
                        f"moment:{program.id}:{moment.signal_id}",
                    )
                )
        last_action = await _last_action_at(session, advocate_id)
        stage = moments.dormancy_stage(last_action, now)
        if stage is not None and last_action is not None:
            moment_kind, ask_type = DORMANT_ASKS[stage]
            if ask_type is AskType.REFERRAL_INVITE and not advocate.consent_referral:
                ask_type = AskType.SOCIAL_SHARE
            candidates.append(
                ask_policy.candidate(
                    advocate,
                    program,
                    ask_type,
                    moment_kind,
                    now,
                    f"dormant:{program.id}:{stage}:{last_action.isoformat()}",
                )
            )
    queued: list[Ask] = []
    if candidates:
        new_ids = list(
            await session.scalars(
                insert(Ask)
                .values(candidates)
                .on_conflict_do_nothing(index_elements=["advocate_id", "trigger_key"])
                .returning(Ask.id)
            )
        )
        if new_ids:
            queued = list(
                await session.scalars(select(Ask).where(Ask.id.in_(new_ids)).order_by(Ask.id))
            )
            asks.extend(queued)
    cap = cap_state(asks, program=program, advocate=advocate, tier=tier, now=now)
    capped = cap_guard(cap)
    if capped is not None:
        guards.append(capped)
    sent = None
    if not guards:
        sent = ask_policy.best_queued(asks, program.id, automated=True)
        if sent is not None:
            sent.status = AskStatus.SENT
            sent.sent_at = now
    await session.flush()
    return Evaluation(
        advocate_id=advocate_id,
        program_id=program_id,
        queued=queued,
        sent=sent,
        expired=expired,
        guards=guards,
    )


async def create_ask(
    session: AsyncSession,
    *,
    advocate_id: int,
    program_id: int,
    ask_type: str,
    team: str,
    now: datetime,
    priority: int | None = None,
    request_key: str | None = None,
) -> Ask:
    """Queue a manual ask from a team. It waits in the same queue under the same cap.

    ``request_key`` makes a retried request a no-op.
    """
    parsed_type = parse_ask_type(ask_type)
    parsed_team = parse_team(team)
    if priority is not None and not 0 <= priority <= 100:
        raise ValidationFailed("priority must be between 0 and 100", field="priority")
    if parsed_type is AskType.REFERENCE_CALL:
        raise ValidationFailed(
            "reference calls are reserved for an opportunity (reserveReference)", field="type"
        )
    if request_key is not None and not 1 <= len(request_key) <= 100:
        raise ValidationFailed("idempotencyKey must be 1 to 100 characters", field="idempotencyKey")
    advocate = await lock_advocate(session, advocate_id)
    program = await active_program(session, program_id)
    values = ask_policy.candidate(
        advocate,
        program,
        parsed_type,
        MomentKind.MANUAL,
        now,
        f"manual:{request_key}" if request_key else "",
        team=parsed_team,
    )
    values.update(
        automated=False,
        priority=priority if priority is not None else priority_of(parsed_type, MomentKind.MANUAL),
        trigger_key=values["trigger_key"] or None,
    )
    stmt = insert(Ask).values(**values)
    if request_key:
        stmt = stmt.on_conflict_do_nothing(index_elements=["advocate_id", "trigger_key"])
    new_id = await session.scalar(stmt.returning(Ask.id))
    if new_id is None:
        existing = await session.scalar(
            select(Ask).where(
                Ask.advocate_id == advocate_id, Ask.trigger_key == values["trigger_key"]
            )
        )
        assert existing is not None
        return existing
    return await session.get_one(Ask, new_id)


async def _lock_ask(session: AsyncSession, ask_id: int) -> Ask:
    ask = await session.get(Ask, ask_id)
    if ask is None:
        raise NotFound("no such ask", field="id")
    await lock_advocate(session, ask.advocate_id, field="id")
    locked = await session.scalar(
        select(Ask)
        .where(Ask.id == ask_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert locked is not None
    return locked


async def blocking_guards(
    session: AsyncSession, advocate: Advocate, program: Program, now: datetime
) -> list[Guard]:
    """Everything that holds an ask to this advocate back right now, including the cap."""
    config = moments.config_for(program)
    signals = await signals_of(session, advocate.id, until=now)
    asks = await asks_of(session, advocate.id)
    tier = await tier_in(session, advocate.id, program.id)
    guards = moments.signal_guards(signals, now, config) + moments.ask_guards(asks, now, config)
    capped = cap_guard(cap_state(asks, program=program, advocate=advocate, tier=tier, now=now))
    if capped is not None:
        guards.append(capped)
    return guards


def raise_for(guards: Sequence[Guard], *, field: str = "id") -> None:
    if not guards:
        return
    first = guards[0]
    code = ErrorCode.CAPPED if first.code is GuardCode.FREQUENCY_CAP else ErrorCode.CONFLICT
    raise DomainError(f"cannot ask now: {first.message}", field=field, code=code)


async def send_ask(session: AsyncSession, ask_id: int, *, now: datetime) -> Ask:
    """Send one queued ask now (a team's manual send), if no guard or the cap forbids it."""
    ask = await _lock_ask(session, ask_id)
    if ask.status == AskStatus.SENT:
        return ask  # a retried send
    if ask.status != AskStatus.QUEUED:
        raise InvalidTransition(
            f"only a queued ask can be sent; this one is {ask.status}", field="id"
        )
    if ask.program_id is None:
        raise Conflict("the ask's program was deleted", field="id")
    advocate = await lock_advocate(session, ask.advocate_id, field="id")
    program = await active_program(session, ask.program_id, field="id")
    raise_for(await blocking_guards(session, advocate, program, now))
    ask.status = AskStatus.SENT
    ask.sent_at = now
    await session.flush()
    return ask


@dataclass(frozen=True, slots=True)
class Transition:
    ask: Ask
    fallback: Ask | None = None
    action: RecordedAction | None = None


async def transition_ask(
    session: AsyncSession,
    ask_id: int,
    *,
    to: AskStatus,
    now: datetime,
    reason: str | None = None,
    fallback: bool = True,
    url: str | None = None,
) -> Transition:
    """Move an ask along its lifecycle. Repeating the same transition is a no-op.

    Publishing records the advocacy action (with its points); declining offers the fallback
    ask, if the type has one and ``fallback`` is set.
    """
    if reason is not None and len(reason) > 500:
        raise ValidationFailed("reason must be at most 500 characters", field="reason")
    checked_url = check_url(url)
    ask = await _lock_ask(session, ask_id)
    if ask.status == to:
        return Transition(ask)
    if to not in TRANSITIONS.get(ask.status, frozenset()):
        raise InvalidTransition(f"an ask that is {ask.status} cannot become {to}", field="to")
    ask_type = AskType(ask.type)
    if (
        ask_type is AskType.REFERENCE_CALL
        and ask.opportunity_id is not None
        and to == AskStatus.PUBLISHED
    ):
        raise InvalidTransition(
            "record a reference call's outcome with completeReservation", field="to"
        )
    program = await session.get(Program, ask.program_id) if ask.program_id else None
    result = Transition(ask)
    if to == AskStatus.ACCEPTED:
        ask.accepted_at = now
    elif to == AskStatus.PUBLISHED:
        ask.accepted_at = ask.accepted_at or now
        ask.published_at = now
        action = await create_action(
            session,
            advocate_id=ask.advocate_id,
            program=program,
            kind=ACTION_OF[ask_type],
            occurred_at=now,
            ask_id=ask.id,
            url=checked_url,
            opportunity_ids=[ask.opportunity_id] if ask.opportunity_id else [],
        )
        result = Transition(ask, action=action)
    elif to == AskStatus.DECLINED:
        ask.declined_at = now
        ask.decline_reason = reason
        lighter = FALLBACKS.get(ask_type)
        if fallback and lighter is not None:
            offered = Ask(
                advocate_id=ask.advocate_id,
                program_id=ask.program_id,
                type=lighter.value,
                moment=ask.moment,
                team=ask.team,
                priority=priority_of(lighter, ask.moment),
                automated=False,
                status=AskStatus.SENT,
                queued_at=now,
                sent_at=now,
                fallback_of_id=ask.id,
                trigger_key=f"fallback:{ask.id}",
            )
            session.add(offered)
            result = Transition(ask, fallback=offered)
    ask.status = to
    await session.flush()
    return result


@dataclass(frozen=True, slots=True)
class NextBestAsk:
    advocate_id: int
    ask: AskSnapshot | None
    reason: str  # awaiting_response | ready | waiting | nothing_queued
    guards: list[Guard]
    eligible_at: datetime | None


async def next_best_ask(
    session: AsyncSession, advocate_id: int, *, program_id: int | None, now: datetime
) -> NextBestAsk:
    """What to put in front of this advocate next, and whether it can be sent now."""
    advocate = await session.get(Advocate, advocate_id)
    if advocate is None:
        raise NotFound("no such advocate", field="advocateId")
    asks = [
        a
        for a in await asks_of(session, advocate_id)
        if a.status in OPEN and (program_id is None or a.program_id == program_id)
    ]
    best = pick_next(asks)
    if best is None:
        # Nothing to send, but name what would hold a new ask back (e.g. an open escalation).
        program = await session.get(Program, program_id) if program_id is not None else None
        if program is not None:
            guards = await blocking_guards(session, advocate, program, now)
        else:
            guards = moments.signal_guards(await signals_of(session, advocate.id, until=now), now)
        return NextBestAsk(advocate_id, None, "nothing_queued", guards, None)
    if best.status in AWAITING:
        return NextBestAsk(advocate_id, best, "awaiting_response", [], None)
    program = await session.get(Program, best.program_id) if best.program_id else None
    if program is None:
        return NextBestAsk(advocate_id, best, "waiting", [], None)
    guards = await blocking_guards(session, advocate, program, now)
    if not guards:
        return NextBestAsk(advocate_id, best, "ready", [], now)
    untils = [g.until for g in guards]
    eligible = None if any(u is None for u in untils) else max(u for u in untils if u is not None)
    return NextBestAsk(advocate_id, best, "waiting", guards, eligible)


async def expire_due(session: AsyncSession, *, now: datetime) -> tuple[int, int]:
    """For the periodic task: expire queued asks whose moment passed, and lapsed reference
    reservations. Returns (asks expired, reservations expired)."""
    expired_asks = 0
    programs = list(await session.scalars(select(Program).order_by(Program.id)))
    for program in programs:
        ttl = timedelta(days=moments.config_for(program).queue_ttl_days)
        done = await session.execute(
            update(Ask)
            .where(
                Ask.program_id == program.id,
                Ask.status == AskStatus.QUEUED,
                Ask.queued_at <= now - ttl,
            )
            .values(status=AskStatus.EXPIRED)
            .returning(Ask.id)
        )
        expired_asks += len(done.all())
    lapsed = await session.execute(
        update(Ask)
        .where(
            Ask.type == AskType.REFERENCE_CALL,
            Ask.status.in_(AWAITING),
            Ask.reserved_until.is_not(None),
            Ask.reserved_until <= now,
        )
        .values(status=AskStatus.EXPIRED)
        .returning(Ask.id)
    )
    return expired_asks, len(lapsed.all())


async def advocates_due(session: AsyncSession, program_id: int, *, now: datetime) -> list[int]:
    """Who a scheduled run should evaluate in this program: tiered advocates with a fresh
    moment signal or a queued ask, and advocates whose last action is 30+ days old (dormancy).
    Evaluating someone with nothing new is a harmless no-op, so this errs on the side of more.
    """
    program = await session.get(Program, program_id)
    if program is None:
        raise NotFound("no such program", field="programId")
    config = moments.config_for(program)
    moment_kinds = [
        SignalKind.FIRST_VALUE,
        SignalKind.KPI_MILESTONE,
        SignalKind.RENEWAL,
        SignalKind.EXPANSION,
        SignalKind.NPS,
        SignalKind.REVIEW_RATING,
        SignalKind.SUPPORT_RESOLVED,
    ]
    tiered = select(AdvocateScore.advocate_id).where(
        AdvocateScore.program_id == program_id, AdvocateScore.tier.is_not(None)
    )
    fresh = select(Signal.advocate_id).where(
        Signal.kind.in_(moment_kinds),
        Signal.occurred_at > now - timedelta(days=config.lookback_days),
        Signal.occurred_at <= now,
        Signal.advocate_id.in_(tiered),
    )
    waiting = select(Ask.advocate_id).where(
        Ask.program_id == program_id, Ask.status == AskStatus.QUEUED
    )
    dormant = (
        select(AdvocacyAction.advocate_id)
        .group_by(AdvocacyAction.advocate_id)
        .having(
            func.max(AdvocacyAction.occurred_at) <= now - timedelta(days=moments.DORMANCY_STAGES[0])
        )
    )
    due = fresh.union(waiting, dormant).subquery()
    rows = await session.scalars(
        select(Advocate.id)
        .where(Advocate.id.in_(select(due.c[0])), Advocate.erased_at.is_(None))
        .order_by(Advocate.id)
    )
    return list(rows)
