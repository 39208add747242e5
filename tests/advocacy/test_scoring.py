"""Readiness scoring: exact, deterministic, explainable, configurable."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.advocacy.conftest import NOW, days_ago, make_signal
from tests.factories import make_advocate, make_program
from vouch.advocacy.scoring import (
    DEFAULT_CONFIG,
    compute_score,
    parse_scoring,
    score_program,
)
from vouch.core.errors import ValidationFailed
from vouch.models import AdvocateScore, Signal


def sig(pk: int, kind: str, value: float | None = None, age_days: float = 0) -> Signal:
    return Signal(id=pk, advocate_id=1, kind=kind, value=value, occurred_at=days_ago(age_days))


def test_promoter_counts_most_and_only_latest_answer_counts():
    result = compute_score([sig(1, "nps", 3, age_days=100), sig(2, "nps", 10)], DEFAULT_CONFIG, NOW)
    assert result.score == 30.0
    assert [(c.signal_id, c.rule, c.points, c.note) for c in result.contributions] == [
        (2, "nps_promoter", 30.0, ""),
        (1, "nps_detractor", 0.0, "superseded by a later answer"),
    ]


def test_time_decay_halves_at_half_life():
    result = compute_score([sig(1, "renewal", 1, age_days=180)], DEFAULT_CONFIG, NOW)
    assert result.contributions[0].decay == 0.5
    assert result.score == 12.5


def test_resolved_problem_beats_no_problem_and_behaviour_adds_up():
    calm = compute_score([sig(1, "nps", 9)], DEFAULT_CONFIG, NOW)
    recovered = compute_score([sig(1, "nps", 9), sig(2, "support_resolved")], DEFAULT_CONFIG, NOW)
    assert (calm.score, recovered.score) == (30.0, 45.0)
    self_report = compute_score(
        [sig(1, "nps", 10), sig(2, "csat", 5), sig(3, "review_rating", 5)], DEFAULT_CONFIG, NOW
    )
    behaviour = compute_score(
        [sig(1, "renewal"), sig(2, "usage_milestone"), sig(3, "referral_made")],
        DEFAULT_CONFIG,
        NOW,
    )
    assert (self_report.score, behaviour.score) == (53.0, 57.0)


def test_caps_keep_recent_occurrences_and_score_is_clamped():
    purchases = [sig(i, "purchase", age_days=i) for i in range(1, 8)]
    result = compute_score(purchases, parse_scoring({"half_life_days": None}), NOW)
    assert [c.points for c in result.contributions] == [6.0, 6.0, 6.0, 6.0, 6.0, 0.0, 0.0]
    assert result.contributions[5].note == "capped at 30 for purchase"
    detractor = compute_score([sig(1, "nps", 2), sig(2, "escalation_opened")], DEFAULT_CONFIG, NOW)
    assert (detractor.raw, detractor.score) == (-50.0, 0.0)


def test_closed_escalation_no_longer_subtracts_and_future_signals_are_ignored():
    result = compute_score(
        [
            sig(1, "escalation_opened", age_days=10),
            sig(2, "escalation_closed", age_days=5),
            sig(3, "renewal", age_days=-3),
        ],
        DEFAULT_CONFIG,
        NOW,
    )
    assert result.raw == 0.0
    assert [(c.signal_id, c.note) for c in result.contributions] == [
        (2, "used by guards, not scored"),
        (1, "escalation closed"),
    ]


def test_same_inputs_same_score_in_any_order():
    signals = [
        sig(i, k, v, age_days=i * 7)
        for i, (k, v) in enumerate(
            [
                ("nps", 9),
                ("usage_depth", 0.8),
                ("renewal", None),
                ("purchase", None),
                ("sentiment", 0.5),
            ]
        )
    ]
    a = compute_score(signals, DEFAULT_CONFIG, NOW)
    b = compute_score(list(reversed(signals)), DEFAULT_CONFIG, NOW)
    assert a == b
    # 30 + 25*0.8*0.5^(7/180) + 25*0.5^(14/180) + 6*0.5^(21/180) + 10*0.5*0.5^(28/180)
    assert a.score == 83.18


def test_program_weights_override_defaults():
    config = parse_scoring({"weights": {"nps_promoter": 10, "renewal": 40}, "half_life_days": None})
    result = compute_score([sig(1, "nps", 10), sig(2, "renewal", age_days=400)], config, NOW)
    assert result.score == 50.0


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"weights": {"nps_superfan": 5}}, "scoring.weights.nps_superfan"),
        ({"weights": {"renewal": 500}}, "scoring.weights.renewal"),
        ({"weights": {"renewal": "a lot"}}, "scoring.weights.renewal"),
        ({"half_life_days": 0}, "scoring.half_life_days"),
        ({"caps": {"purchase": -1}}, "scoring.caps.purchase"),
        ({"decay": 3}, "scoring"),
        ({"weights": "heavy"}, "scoring.weights"),
        ({"caps": [1, 2]}, "scoring.caps"),
    ],
)
def test_bad_scoring_settings_are_rejected(raw, field):
    with pytest.raises(ValidationFailed) as exc:
        parse_scoring(raw)
    assert exc.value.field == field


async def test_score_program_stores_explanation(session):
    program = await make_program(session, settings={"scoring": {"half_life_days": None}})
    advocate = await make_advocate(session)
    quiet = await make_advocate(session)
    nps = await make_signal(session, advocate.id, "nps", 10, at=days_ago(3))
    await make_signal(session, advocate.id, "renewal", 1, at=days_ago(1))
    results = await score_program(session, program, NOW)
    assert results[advocate.id].score == 55.0
    assert results[quiet.id].score == 0.0
    stored = await session.scalar(
        select(AdvocateScore).where(
            AdvocateScore.advocate_id == advocate.id, AdvocateScore.program_id == program.id
        )
    )
    assert stored is not None
    assert stored.score == 55.0
    assert stored.contributions[1] == {
        "signal_id": nps.id,
        "kind": "nps",
        "rule": "nps_promoter",
        "value": 10.0,
        "occurred_at": days_ago(3).isoformat(),
        "weight": 30.0,
        "decay": 1.0,
        "points": 30.0,
        "note": "",
    }
