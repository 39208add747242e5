"""The ask policy, without a database: which ask a moment earns at a tier, how asks are
prioritised, how the one contact cap is counted, which asks expire, which one to send or show
next, and the lifecycle's allowed moves. ``advocacy.asks`` runs it against the tables; the
tests run it on plain objects (tests/advocacy/test_ask_policy.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vouch.advocacy import moments
from vouch.advocacy.moments import Guard, GuardCode, MomentKind
from vouch.core.choices import parse_choice
from vouch.models import Advocate, Ask, Program
from vouch.models.enums import ActionKind, AskStatus, AskType, Team
from vouch.models.snapshots import AskSnapshot

# What to ask for at each moment, by tier (1, 2, 3). Tier 1: high commitment (case studies,
# testimonials, community); Tier 2: referrals and reviews; Tier 3: light asks.
ASK_MATRIX: dict[MomentKind, tuple[AskType, AskType, AskType]] = {
    MomentKind.NPS_PROMOTER: (AskType.TESTIMONIAL, AskType.REFERRAL_INVITE, AskType.SOCIAL_SHARE),
    MomentKind.FIVE_STAR_RATING: (AskType.TESTIMONIAL, AskType.REVIEW, AskType.SOCIAL_SHARE),
    MomentKind.RENEWAL_SIGNED: (AskType.CASE_STUDY, AskType.REFERRAL_INVITE, AskType.SURVEY),
    MomentKind.EXPANSION: (AskType.CASE_STUDY, AskType.REFERRAL_INVITE, AskType.SOCIAL_SHARE),
    MomentKind.KPI_MILESTONE: (AskType.CASE_STUDY, AskType.REVIEW, AskType.SOCIAL_SHARE),
    MomentKind.FIRST_VALUE: (AskType.COMMUNITY_INVITE, AskType.REVIEW, AskType.SOCIAL_SHARE),
    MomentKind.SUPPORT_RESOLVED: (AskType.TESTIMONIAL, AskType.REVIEW, AskType.SURVEY),
}

# Re-engagement: a check-in at 30 days, program news at 60, "why did you drop off?" at 90.
DORMANT_ASKS: dict[int, tuple[MomentKind, AskType]] = {
    30: (MomentKind.DORMANT_30, AskType.COMMUNITY_INVITE),
    60: (MomentKind.DORMANT_60, AskType.REFERRAL_INVITE),
    90: (MomentKind.DORMANT_90, AskType.SURVEY),
}

TYPE_PRIORITY: dict[AskType, int] = {
    AskType.REFERENCE_CALL: 95,
    AskType.CASE_STUDY: 90,
    AskType.TESTIMONIAL: 85,
    AskType.REVIEW: 70,
    AskType.REFERRAL_INVITE: 65,
    AskType.COMMUNITY_INVITE: 55,
    AskType.ANONYMOUS_QUOTE: 50,
    AskType.SOCIAL_SHARE: 40,
    AskType.SURVEY: 30,
}
MOMENT_BOOST: dict[str, int] = {
    MomentKind.RENEWAL_SIGNED: 8,
    MomentKind.EXPANSION: 8,
    MomentKind.NPS_PROMOTER: 6,
    MomentKind.FIVE_STAR_RATING: 6,
    MomentKind.KPI_MILESTONE: 5,
    MomentKind.SUPPORT_RESOLVED: 4,
    MomentKind.FIRST_VALUE: 2,
    MomentKind.DORMANT_30: -10,
    MomentKind.DORMANT_60: -10,
    MomentKind.DORMANT_90: -10,
}

# Which team owns an automated ask of each type (all teams share one contact cap).
TEAM_OF: dict[AskType, Team] = {
    AskType.COMMUNITY_INVITE: Team.CUSTOMER_SUCCESS,
    AskType.SURVEY: Team.CUSTOMER_SUCCESS,
    AskType.REFERENCE_CALL: Team.SALES,
}

# The lighter ask offered when an advocate declines.
FALLBACKS: dict[AskType, AskType] = {
    AskType.CASE_STUDY: AskType.ANONYMOUS_QUOTE,
    AskType.TESTIMONIAL: AskType.ANONYMOUS_QUOTE,
    AskType.REFERENCE_CALL: AskType.ANONYMOUS_QUOTE,
    AskType.REVIEW: AskType.SURVEY,
    AskType.REFERRAL_INVITE: AskType.SOCIAL_SHARE,
    AskType.COMMUNITY_INVITE: AskType.SURVEY,
}

ACTION_OF: dict[AskType, ActionKind] = {
    AskType.REVIEW: ActionKind.REVIEW,
    AskType.TESTIMONIAL: ActionKind.TESTIMONIAL,
    AskType.CASE_STUDY: ActionKind.CASE_STUDY,
    AskType.ANONYMOUS_QUOTE: ActionKind.QUOTE,
    AskType.REFERENCE_CALL: ActionKind.REFERENCE,
    AskType.REFERRAL_INVITE: ActionKind.REFERRAL,
    AskType.SOCIAL_SHARE: ActionKind.SOCIAL_SHARE,
    AskType.COMMUNITY_INVITE: ActionKind.COMMUNITY,
    AskType.SURVEY: ActionKind.SURVEY,
}

OPEN = (AskStatus.QUEUED, AskStatus.SENT, AskStatus.ACCEPTED)
AWAITING = (AskStatus.SENT, AskStatus.ACCEPTED)
TERMINAL = (AskStatus.PUBLISHED, AskStatus.DECLINED, AskStatus.EXPIRED, AskStatus.CANCELLED)
TRANSITIONS: dict[str, frozenset[str]] = {
    AskStatus.QUEUED: frozenset({AskStatus.CANCELLED}),
    AskStatus.SENT: frozenset(
        {AskStatus.ACCEPTED, AskStatus.PUBLISHED, AskStatus.DECLINED, AskStatus.CANCELLED}
    ),
    AskStatus.ACCEPTED: frozenset({AskStatus.PUBLISHED, AskStatus.DECLINED, AskStatus.CANCELLED}),
}
HARD_GUARDS = frozenset(
    {GuardCode.DETRACTOR, GuardCode.ESCALATION_OPEN, GuardCode.EXPERIMENT_HOLDOUT}
)


def priority_of(ask_type: AskType, moment: str) -> int:
    """Type priority plus the moment's boost; moments unknown to the engine get none."""
    return TYPE_PRIORITY[ask_type] + MOMENT_BOOST.get(moment, 0)


def ask_type_for(moment: MomentKind, tier: int | None, advocate: Advocate) -> AskType | None:
    """The ask a moment earns at this tier; none without a tier or the needed consent."""
    if tier is None or moment not in ASK_MATRIX:
        return None
    ask_type = ASK_MATRIX[moment][tier - 1]
    if ask_type is AskType.REFERRAL_INVITE and not advocate.consent_referral:
        return AskType.SOCIAL_SHARE if tier > 1 else None
    return ask_type


@dataclass(frozen=True, slots=True)
class CapState:
    limit: int
    used: int
    until: datetime | None  # when a slot frees up, if the cap is reached

    @property
    def full(self) -> bool:
        return self.used >= self.limit


def cap_state(
    asks: Sequence[Ask], *, program: Program, advocate: Advocate, tier: int | None, now: datetime
) -> CapState:
    """How many of the advocate's cap slots are used (all teams, all programs)."""
    window = timedelta(days=program.frequency_cap_days)
    sent = sorted(
        a.sent_at
        for a in asks
        if a.sent_at is not None and a.fallback_of_id is None and now - window < a.sent_at <= now
    )
    limit = (
        program.tier1_cap_count
        if tier == 1 and advocate.opted_in_extra_asks
        else program.frequency_cap_count
    )
    until = sent[len(sent) - limit] + window if len(sent) >= limit else None
    return CapState(limit=limit, used=len(sent), until=until)


def cap_guard(cap: CapState) -> Guard | None:
    if not cap.full:
        return None
    assert cap.until is not None
    return Guard(
        GuardCode.FREQUENCY_CAP,
        f"the advocate already got {cap.used} ask(s) in the cap window; next slot "
        f"{cap.until.isoformat()}",
        until=cap.until,
    )


def expire_queued(asks: Sequence[Ask], now: datetime, config: moments.MomentConfig) -> int:
    ttl = timedelta(days=config.queue_ttl_days)
    expired = 0
    for ask in asks:
        if ask.status == AskStatus.QUEUED and ask.queued_at + ttl <= now:
            ask.status = AskStatus.EXPIRED
            expired += 1
    return expired


def best_queued(asks: Sequence[Ask], program_id: int | None, *, automated: bool) -> Ask | None:
    queued = [
        a
        for a in asks
        if a.status == AskStatus.QUEUED
        and (program_id is None or a.program_id == program_id)
        and (a.automated or not automated)
    ]
    queued.sort(key=lambda a: (-a.priority, a.queued_at, a.id))
    return queued[0] if queued else None


def candidate(
    advocate: Advocate,
    program: Program,
    ask_type: AskType,
    moment: MomentKind,
    now: datetime,
    trigger_key: str,
    *,
    team: Team | None = None,
) -> dict[str, Any]:
    return {
        "advocate_id": advocate.id,
        "program_id": program.id,
        "type": ask_type.value,
        "moment": moment.value,
        "team": (team or TEAM_OF.get(ask_type, Team.MARKETING)).value,
        "priority": priority_of(ask_type, moment),
        "automated": True,
        "status": AskStatus.QUEUED.value,
        "queued_at": now,
        "trigger_key": trigger_key[:128],
    }


def parse_ask_type(value: str, *, field: str = "type") -> AskType:
    return parse_choice(AskType, value, field=field, what="ask type")


def parse_team(value: str, *, field: str = "team") -> Team:
    return parse_choice(Team, value, field=field, what="team")


TARGETS = {
    "accept": AskStatus.ACCEPTED,
    "publish": AskStatus.PUBLISHED,
    "decline": AskStatus.DECLINED,
    "cancel": AskStatus.CANCELLED,
}


def pick_next(asks: Sequence[AskSnapshot]) -> AskSnapshot | None:
    """The ask to show an advocate: one awaiting their answer, else the best queued one."""
    awaiting = [a for a in asks if a.status in AWAITING]
    pool = awaiting or [a for a in asks if a.status == AskStatus.QUEUED]
    pool.sort(key=lambda a: (-a.priority, a.queued_at, a.id))
    return pool[0] if pool else None
