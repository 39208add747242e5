"""Properties of scoring and tiering over generated inputs."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.advocacy.conftest import NOW
from vouch.advocacy.scoring import DEFAULT_CONFIG, compute_score
from vouch.advocacy.tiers import DEFAULT_TIERS, assign_tiers
from vouch.models import Signal

KINDS = {
    "nps": st.integers(0, 10).map(float),
    "csat": st.integers(1, 5).map(float),
    "review_rating": st.integers(1, 5).map(float),
    "usage_depth": st.floats(0, 1),
    "sentiment": st.floats(-1, 1),
    "renewal": st.none(),
    "purchase": st.none(),
    "escalation_opened": st.none(),
    "escalation_closed": st.none(),
    "support_resolved": st.none(),
    "referral_made": st.none(),
}

signal_st = st.sampled_from(sorted(KINDS)).flatmap(
    lambda kind: st.tuples(st.just(kind), KINDS[kind], st.integers(0, 3 * 365))
)


@settings(max_examples=200, deadline=None)
@given(st.lists(signal_st, max_size=25), st.randoms(use_true_random=False))
def test_score_is_bounded_and_order_independent(raw, rnd):
    signals = [
        Signal(id=i + 1, advocate_id=1, kind=k, value=v, occurred_at=NOW - timedelta(days=age))
        for i, (k, v, age) in enumerate(raw)
    ]
    first = compute_score(signals, DEFAULT_CONFIG, NOW)
    shuffled = list(signals)
    rnd.shuffle(shuffled)
    assert compute_score(shuffled, DEFAULT_CONFIG, NOW) == first
    assert 0.0 <= first.score <= 100.0
    assert len(first.contributions) == len(signals)
    assert round(sum(c.points for c in first.contributions), 4) == first.raw


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(1, 10_000), st.floats(0, 100), max_size=300))
def test_percentile_tiers_are_ordered_and_sized(scores):
    tiers = assign_tiers(scores, DEFAULT_TIERS)
    positive = sum(1 for s in scores.values() if s > 0)
    counts = [sum(1 for t in tiers.values() if t == n) for n in (1, 2, 3)]
    assert sum(counts) == int(positive * 0.6 + 0.5 + 1e-9)
    groups = [[scores[pk] for pk in scores if tiers[pk] == n] for n in (1, 2, 3, None)]
    for better, worse in pairwise(groups):
        if better and worse:
            assert min(better) >= max(worse)
    assert all(tiers[pk] is None for pk, s in scores.items() if s <= 0)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
setting_keys = st.sampled_from(
    [
        "weights",
        "caps",
        "half_life_days",
        "mode",
        "percentiles",
        "thresholds",
        "lookback_days",
        "review",
        "nps_promoter",
        "name",
        "min_points",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["scoring", "tiers", "moments", "points", "levels"]),
    json_values | st.dictionaries(setting_keys, json_values, max_size=4),
)
def test_any_settings_json_is_accepted_or_rejected_cleanly(part, value):
    from vouch.advocacy.configuration import _validate
    from vouch.core.errors import ValidationFailed

    error: ValidationFailed | None = None
    try:
        _validate(part, value)
    except ValidationFailed as exc:
        error = exc
    assert error is None or error.field
