"""Each moment rule and each guard, as pure functions over signals and asks."""

from __future__ import annotations

import pytest

from tests.advocacy.conftest import NOW, days_ago
from vouch.advocacy.moments import (
    GuardCode,
    MomentKind,
    ask_guards,
    detect_moments,
    dormancy_stage,
    parse_moments,
    signal_guards,
)
from vouch.core.errors import ValidationFailed
from vouch.models import Ask, Signal

_ids = iter(range(1, 10_000))


def sig(kind: str, value: float | None = None, age: float = 1) -> Signal:
    return Signal(id=next(_ids), advocate_id=1, kind=kind, value=value, occurred_at=days_ago(age))


@pytest.mark.parametrize(
    ("signal", "moment"),
    [
        (("first_value", None), MomentKind.FIRST_VALUE),
        (("kpi_milestone", 1), MomentKind.KPI_MILESTONE),
        (("renewal", None), MomentKind.RENEWAL_SIGNED),
        (("expansion", None), MomentKind.EXPANSION),
        (("nps", 9), MomentKind.NPS_PROMOTER),
        (("nps", 10), MomentKind.NPS_PROMOTER),
        (("review_rating", 5), MomentKind.FIVE_STAR_RATING),
        (("support_resolved", None), MomentKind.SUPPORT_RESOLVED),
        (("nps", 8), None),
        (("review_rating", 4), None),
        (("purchase", None), None),
        (("usage_milestone", 100), None),
    ],
)
def test_each_moment_rule(signal, moment):
    found = detect_moments([sig(*signal)], NOW)
    assert [m.kind for m in found] == ([moment] if moment else [])


def test_moments_are_fresh_only_within_lookback():
    old = sig("renewal", age=15)
    fresh = sig("expansion", age=14)
    future = sig("nps", 10, age=-1)
    assert [m.signal_id for m in detect_moments([old, fresh, future], NOW)] == [fresh.id]
    assert len(detect_moments([old], NOW, parse_moments({"lookback_days": 30}))) == 1


def test_detractor_guard_until_a_better_answer():
    assert [g.code for g in signal_guards([sig("nps", 6)], NOW)] == [GuardCode.DETRACTOR]
    assert [g.code for g in signal_guards([sig("csat", 2)], NOW)] == [GuardCode.DETRACTOR]
    assert signal_guards([sig("nps", 6, age=10), sig("nps", 9, age=2)], NOW) == []
    # A 5-star rating followed by a 1-star CSAT: the bad experience is the latest.
    guards = signal_guards([sig("review_rating", 5, age=3), sig("csat", 1, age=1)], NOW)
    assert [(g.code, g.until) for g in guards] == [(GuardCode.DETRACTOR, None)]
    assert (
        guards[0].message
        == "the latest survey answer (csat 1) is negative; no ask until a better one"
    )


def test_escalation_guard_while_open():
    assert [g.code for g in signal_guards([sig("escalation_opened", age=3)], NOW)] == [
        GuardCode.ESCALATION_OPEN
    ]
    closed = [sig("escalation_opened", age=3), sig("escalation_closed", age=1)]
    assert signal_guards(closed, NOW) == []
    reopened = [*closed, sig("escalation_opened", age=0.5)]
    assert [g.code for g in signal_guards(reopened, NOW)] == [GuardCode.ESCALATION_OPEN]


def test_renewal_blackout_until_signed_or_lapsed():
    negotiating = [sig("renewal_negotiation", age=10)]
    guards = signal_guards(negotiating, NOW)
    assert [(g.code, g.until) for g in guards] == [(GuardCode.RENEWAL_BLACKOUT, days_ago(10 - 45))]
    assert signal_guards([*negotiating, sig("renewal", age=2)], NOW) == []
    assert signal_guards([sig("renewal_negotiation", age=46)], NOW) == []


def test_decline_cooldown():
    declined = Ask(declined_at=days_ago(10))
    guards = ask_guards([declined], NOW)
    assert [(g.code, g.until) for g in guards] == [(GuardCode.DECLINE_COOLDOWN, days_ago(-50))]
    assert ask_guards([Ask(declined_at=days_ago(61))], NOW) == []
    assert ask_guards([Ask(declined_at=None)], NOW) == []


def test_dormancy_stages():
    assert [dormancy_stage(days_ago(d), NOW) for d in (0, 29, 30, 59, 60, 90, 400)] == [
        None,
        None,
        30,
        30,
        60,
        90,
        90,
    ]
    assert dormancy_stage(None, NOW) is None


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"lookback_days": 0}, "moments.lookback_days"),
        ({"lookback_days": 2.5}, "moments.lookback_days"),
        ({"cooldown": 5}, "moments"),
    ],
)
def test_bad_moment_settings(raw, field):
    with pytest.raises(ValidationFailed) as exc:
        parse_moments(raw)
    assert exc.value.field == field
