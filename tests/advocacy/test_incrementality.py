"""The holdout statistics on generated populations with a known true effect (no database).

Deterministic: one master seed draws every population, so the coverage counts are the same on
every run; the bounds are the ones a correct 95% interval meets with overwhelming probability.
"""

from __future__ import annotations

import numpy as np
import pytest

from vouch.advocacy.experiments import assign, assignment_key
from vouch.advocacy.incrementality import (
    Verdict,
    assess,
    required_per_group,
    sample_ratio,
    welch_lift,
)

MASTER_SEED = 20261204
RUNS = 1_000


def _populations(rng, effect: float, n_treatment: int, n_holdout: int):
    """Revenue-like outcomes: most advocates bring nothing, the rest a skewed amount.

    Holdout mean = 0.3 * 2 * 50 = 30; treatment scales the amount so the true difference of
    means is exactly ``effect``.
    """
    share, shape, scale = 0.3, 2.0, 50.0
    base = share * shape * scale
    t_scale = scale * (base + effect) / base
    holdout = (rng.random(n_holdout) < share) * rng.gamma(shape, scale, n_holdout)
    treatment = (rng.random(n_treatment) < share) * rng.gamma(shape, t_scale, n_treatment)
    return treatment, holdout


@pytest.mark.parametrize("effect", [0.0, 6.0])
def test_the_95_interval_covers_the_true_effect_about_95_percent_of_the_time(effect):
    rng = np.random.default_rng(MASTER_SEED)
    covered = 0
    for _ in range(RUNS):
        treatment, holdout = _populations(rng, effect, 1_800, 200)
        lift = welch_lift(treatment, holdout)
        covered += lift.absolute_low <= effect <= lift.absolute_high
    assert 0.93 <= covered / RUNS <= 0.97


def test_zero_effect_runs_rarely_claim_a_lift():
    rng = np.random.default_rng(MASTER_SEED + 1)
    srm = sample_ratio(1_800, 200, 0.1)
    claims = 0
    for _ in range(RUNS):
        treatment, holdout = _populations(rng, 0.0, 1_800, 200)
        verdict = assess(
            treatment, holdout, holdout_share=0.1, min_detectable_lift=0.5, srm=srm
        ).verdict
        claims += verdict in (Verdict.POSITIVE_LIFT, Verdict.NEGATIVE_LIFT)
    assert claims / RUNS <= 0.06


def test_a_real_lift_is_found_once_the_sample_is_large_enough():
    rng = np.random.default_rng(MASTER_SEED + 2)
    treatment, holdout = _populations(rng, 15.0, 9_000, 1_000)
    result = assess(
        treatment,
        holdout,
        holdout_share=0.1,
        min_detectable_lift=0.5,
        srm=sample_ratio(9_000, 1_000, 0.1),
    )
    assert result.sample_reached
    assert result.verdict is Verdict.POSITIVE_LIFT
    assert result.lift.absolute_low > 0
    assert result.lift.relative is not None
    assert result.lift.relative_low is not None
    assert result.lift.relative_high is not None
    assert result.lift.relative_low < result.lift.relative < result.lift.relative_high


def test_no_winner_is_called_before_the_minimum_sample():
    # A huge observed difference on 20 advocates: the interval may exclude zero, the verdict
    # still waits for the sample the stated detectable effect needs.
    treatment = [0.0] * 15 + [500.0] * 3
    holdout = [0.0, 10.0]
    result = assess(
        treatment,
        holdout,
        holdout_share=0.1,
        min_detectable_lift=0.1,
        srm=sample_ratio(18, 2, 0.1),
    )
    assert result.verdict is Verdict.INSUFFICIENT_SAMPLE
    assert not result.sample_reached
    assert result.required_holdout is not None
    assert result.required_holdout > 2


def test_welch_interval_matches_the_textbook_formula():
    treatment = [1.0, 2.0, 3.0, 4.0, 10.0]
    holdout = [1.0, 1.0, 2.0]
    lift = welch_lift(treatment, holdout)
    vt, vh = np.var(treatment, ddof=1), np.var(holdout, ddof=1)
    se = np.sqrt(vt / 5 + vh / 3)
    df = (vt / 5 + vh / 3) ** 2 / ((vt / 5) ** 2 / 4 + (vh / 3) ** 2 / 2)
    assert lift.absolute == pytest.approx(4.0 - 4 / 3)
    assert lift.standard_error == pytest.approx(se)
    assert lift.degrees_of_freedom == pytest.approx(df)
    from scipy import stats

    q = stats.t.ppf(0.975, df)
    assert lift.absolute_low == pytest.approx(lift.absolute - q * se)
    assert lift.absolute_high == pytest.approx(lift.absolute + q * se)


def test_required_sample_follows_the_normal_approximation():
    # sd 1 in both groups, effect 0.2, 50/50: n = (1.96 + 0.8416)^2 * 2 / 0.04 = 392.4 -> 393
    assert required_per_group(1.0, 1.0, 0.2, holdout_share=0.5) == (393, 393)
    # 10% holdout: 9 treated per held-out advocate
    required = required_per_group(1.0, 1.0, 0.2, holdout_share=0.1)
    assert required is not None
    treated, held = required
    assert held == 219
    assert treated == 1_963
    assert required_per_group(1.0, 1.0, 0.0, holdout_share=0.1) is None


def test_sample_ratio_mismatch_is_flagged_only_when_the_split_drifts():
    assert not sample_ratio(900, 100, 0.1).mismatch
    drifted = sample_ratio(850, 150, 0.1)
    assert drifted.mismatch
    assert drifted.observed_holdout_share == 0.15


def test_assignment_is_deterministic_and_balanced_within_each_tier():
    newcomers = [(pk, 1 + pk % 3, assignment_key(7, pk)) for pk in range(1, 301)]
    first = assign(1_000, {}, newcomers)
    assert first == assign(1_000, {}, list(reversed(newcomers)))
    for stratum in (1, 2, 3):
        groups = [g for _, s, g in first if s == stratum]
        assert len(groups) == 100
        assert groups.count("holdout") == 10
    # Later arrivals continue each tier's count: the running split stays within one advocate.
    counts = dict.fromkeys((1, 2, 3), (100, 10))
    later = [(pk, 2, assignment_key(7, pk)) for pk in range(301, 321)]
    added = assign(1_000, counts, later)
    assert sum(g == "holdout" for _, _, g in added) == 2
