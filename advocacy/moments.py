"""Moments that earn an ask, and the guards that forbid one. Pure functions over signals/asks.

A moment is a recent signal of a kind that marks peak satisfaction: first value, a KPI
milestone, a signed renewal, an expansion, an NPS of 9-10, a 5-star rating, a support ticket
resolved well. Guards hold every ask back: a detractor answer (no ask right after a bad
experience), an open escalation, a renewal negotiation (blackout until the renewal is signed
or the blackout lapses), and a cool-down after the advocate declined an ask.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from vouch.core.errors import ValidationFailed
from vouch.models import Ask, Program, Signal
from vouch.models.enums import SignalKind


class MomentKind(StrEnum):
    FIRST_VALUE = "first_value"
    KPI_MILESTONE = "kpi_milestone"
    RENEWAL_SIGNED = "renewal_signed"
    EXPANSION = "expansion"
    NPS_PROMOTER = "nps_promoter"
    FIVE_STAR_RATING = "five_star_rating"
    SUPPORT_RESOLVED = "support_resolved"
    # Not earned by a signal: re-engaging an advocate who went quiet, or sales' own request.
    DORMANT_30 = "dormant_30"
    DORMANT_60 = "dormant_60"
    DORMANT_90 = "dormant_90"
    REFERENCE_REQUEST = "reference_request"
    MANUAL = "manual"


class GuardCode(StrEnum):
    DETRACTOR = "detractor"
    ESCALATION_OPEN = "escalation_open"
    RENEWAL_BLACKOUT = "renewal_blackout"
    DECLINE_COOLDOWN = "decline_cooldown"
    FREQUENCY_CAP = "frequency_cap"
    # Held out of a running holdout experiment that withholds automated asks.
    EXPERIMENT_HOLDOUT = "experiment_holdout"


@dataclass(frozen=True, slots=True)
class MomentConfig:
    # A moment is fresh for this long after its signal.
    lookback_days: int = 14
    decline_cooldown_days: int = 60
    renewal_blackout_days: int = 45
    # Queued asks not sent within this many days expire: the moment has passed. Longer than
    # the default 30-day cap window, so an ask that waited out the cap still goes.
    queue_ttl_days: int = 60

    def as_dict(self) -> dict[str, Any]:
        return {
            "lookback_days": self.lookback_days,
            "decline_cooldown_days": self.decline_cooldown_days,
            "renewal_blackout_days": self.renewal_blackout_days,
            "queue_ttl_days": self.queue_ttl_days,
        }


DEFAULT_MOMENTS = MomentConfig()
DORMANCY_STAGES = (30, 60, 90)


def parse_moments(raw: Mapping[str, Any] | None) -> MomentConfig:
    """The program's ``settings["moments"]`` over the defaults (whole days, 1 to 365)."""
    if not raw:
        return DEFAULT_MOMENTS
    if not isinstance(raw, Mapping):
        raise ValidationFailed("moments must be an object", field="moments")
    known = DEFAULT_MOMENTS.as_dict()
    values = dict(known)
    for key, value in raw.items():
        if key not in known:
            raise ValidationFailed(f"unknown moment setting '{key}'", field="moments")
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value != int(value)
            or not 1 <= value <= 365
        ):
            raise ValidationFailed(
                "must be a whole number of days from 1 to 365", field=f"moments.{key}"
            )
        values[key] = int(value)
    return MomentConfig(**values)


def config_for(program: Program) -> MomentConfig:
    return parse_moments((program.settings or {}).get("moments"))


@dataclass(frozen=True, slots=True)
class Moment:
    kind: MomentKind
    signal_id: int
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Guard:
    code: GuardCode
    message: str
    # When the guard lifts by itself; None when it waits for a new fact (a better answer,
    # the escalation closing).
    until: datetime | None = None


def moment_of(signal: Signal) -> MomentKind | None:
    """The moment a single signal marks, if any."""
    kind = signal.kind
    value = signal.value
    if kind == SignalKind.FIRST_VALUE:
        return MomentKind.FIRST_VALUE
    if kind == SignalKind.KPI_MILESTONE:
        return MomentKind.KPI_MILESTONE
    if kind == SignalKind.RENEWAL:
        return MomentKind.RENEWAL_SIGNED
    if kind == SignalKind.EXPANSION:
        return MomentKind.EXPANSION
    if kind == SignalKind.NPS and value is not None and value >= 9:
        return MomentKind.NPS_PROMOTER
    if kind == SignalKind.REVIEW_RATING and value is not None and value >= 5:
        return MomentKind.FIVE_STAR_RATING
    if kind == SignalKind.SUPPORT_RESOLVED:
        return MomentKind.SUPPORT_RESOLVED
    return None


def detect_moments(
    signals: Iterable[Signal], now: datetime, config: MomentConfig = DEFAULT_MOMENTS
) -> list[Moment]:
    """Moments from signals of the last ``lookback_days``, newest first."""
    since = now - timedelta(days=config.lookback_days)
    found = []
    for sig in signals:
        if not since <= sig.occurred_at <= now:
            continue
        kind = moment_of(sig)
        if kind is not None:
            found.append(Moment(kind, sig.id, sig.occurred_at))
    return sorted(found, key=lambda m: (m.occurred_at, m.signal_id), reverse=True)


def _is_negative(sig: Signal) -> bool:
    value = sig.value if sig.value is not None else 0
    if sig.kind == SignalKind.NPS:
        return value <= 6
    if sig.kind in (SignalKind.CSAT, SignalKind.REVIEW_RATING):
        return value <= 2
    return False


SURVEY_KINDS = (SignalKind.NPS, SignalKind.CSAT, SignalKind.REVIEW_RATING)


def _latest(signals: Sequence[Signal], kinds: Iterable[str]) -> Signal | None:
    wanted = set(kinds)
    best: Signal | None = None
    for sig in signals:
        if sig.kind in wanted and (
            best is None or (sig.occurred_at, sig.id) > (best.occurred_at, best.id)
        ):
            best = sig
    return best


def signal_guards(
    signals: Sequence[Signal], now: datetime, config: MomentConfig = DEFAULT_MOMENTS
) -> list[Guard]:
    """Guards that come from the advocate's own signals (up to ``now``)."""
    past = [s for s in signals if s.occurred_at <= now]
    guards: list[Guard] = []
    answer = _latest(past, SURVEY_KINDS)
    if answer is not None and _is_negative(answer):
        guards.append(
            Guard(
                GuardCode.DETRACTOR,
                f"the latest survey answer ({answer.kind} {answer.value:g}) is negative; "
                "no ask until a better one",
            )
        )
    opened = _latest(past, [SignalKind.ESCALATION_OPENED])
    closed = _latest(past, [SignalKind.ESCALATION_CLOSED])
    if opened is not None and (closed is None or closed.occurred_at < opened.occurred_at):
        guards.append(Guard(GuardCode.ESCALATION_OPEN, "a support escalation is open"))
    negotiation = _latest(past, [SignalKind.RENEWAL_NEGOTIATION])
    if negotiation is not None:
        signed = _latest(past, [SignalKind.RENEWAL])
        ends = negotiation.occurred_at + timedelta(days=config.renewal_blackout_days)
        if (signed is None or signed.occurred_at < negotiation.occurred_at) and now < ends:
            guards.append(
                Guard(
                    GuardCode.RENEWAL_BLACKOUT,
                    "a renewal is being negotiated; no asks until it is signed",
                    until=ends,
                )
            )
    return guards


def ask_guards(
    asks: Sequence[Ask], now: datetime, config: MomentConfig = DEFAULT_MOMENTS
) -> list[Guard]:
    """Guards that come from the advocate's ask history: the cool-down after a decline."""
    declined = [a.declined_at for a in asks if a.declined_at is not None and a.declined_at <= now]
    if declined:
        ends = max(declined) + timedelta(days=config.decline_cooldown_days)
        if now < ends:
            return [
                Guard(
                    GuardCode.DECLINE_COOLDOWN,
                    f"the advocate declined an ask; cool-down until {ends.date().isoformat()}",
                    until=ends,
                )
            ]
    return []


def dormancy_stage(last_action_at: datetime | None, now: datetime) -> int | None:
    """30, 60 or 90 when the advocate's last action is that many days old (the largest)."""
    if last_action_at is None:
        return None
    idle = (now - last_action_at).days
    stage = None
    for days in DORMANCY_STAGES:
        if idle >= days:
            stage = days
    return stage
