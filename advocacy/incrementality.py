"""The statistics of a holdout experiment, as pure functions (no database).

* Lift: difference of the groups' means with Welch's standard error and the
  Welch-Satterthwaite degrees of freedom (``scipy.stats.ttest_ind(equal_var=False)``), its 95%
  interval from Student's t; relative lift = difference / holdout mean, its interval by the
  delta method with the same degrees of freedom.
* Power: the sample each group needs to detect the stated relative lift at a two-sided 5% level
  with 80% power, from the observed variances and the planned split (normal approximation).
* Sample-ratio mismatch: a chi-square goodness-of-fit test of the groups' sizes against the
  planned split; p < 0.001 flags it.
* Verdict: a winner is called only once the minimum sample is reached, without a sample-ratio
  mismatch, and when the interval excludes zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType


def _numpy() -> ModuleType:
    """NumPy and SciPy are imported on first use: importing them costs a server worker more
    than a second of start-up, and only reports need them."""
    import numpy

    return numpy


def _stats() -> Any:  # scipy ships no type information
    from scipy import stats

    return stats


CONFIDENCE = 0.95
POWER = 0.80
SRM_ALPHA = 0.001


class Verdict(StrEnum):
    INSUFFICIENT_SAMPLE = "insufficient_sample"
    SAMPLE_RATIO_MISMATCH = "sample_ratio_mismatch"
    NO_DETECTABLE_LIFT = "no_detectable_lift"
    POSITIVE_LIFT = "positive_lift"
    NEGATIVE_LIFT = "negative_lift"


@dataclass(frozen=True, slots=True)
class Lift:
    """Treatment minus holdout for one per-advocate outcome."""

    n_treatment: int
    n_holdout: int
    mean_treatment: float
    mean_holdout: float
    absolute: float
    absolute_low: float
    absolute_high: float
    relative: float | None  # None when the holdout mean is zero
    relative_low: float | None
    relative_high: float | None
    standard_error: float
    degrees_of_freedom: float
    p_value: float

    @property
    def excludes_zero(self) -> bool:
        return self.absolute_low > 0 or self.absolute_high < 0


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def welch_lift(
    treatment: Sequence[float], holdout: Sequence[float], *, confidence: float = CONFIDENCE
) -> Lift:
    """Difference of means with Welch's interval; needs two or more advocates per group."""
    np, stats = _numpy(), _stats()
    t = np.asarray(treatment, dtype=float)
    h = np.asarray(holdout, dtype=float)
    nt, nh = len(t), len(h)
    mt = float(t.mean()) if nt else 0.0
    mh = float(h.mean()) if nh else 0.0
    diff = mt - mh
    if nt < 2 or nh < 2:
        return Lift(nt, nh, mt, mh, diff, -math.inf, math.inf, None, None, None, math.inf, 0, 1)
    vt, vh = float(t.var(ddof=1)), float(h.var(ddof=1))
    se = math.sqrt(vt / nt + vh / nh)
    if se == 0.0:
        # Both groups constant: the difference is exact.
        return Lift(nt, nh, mt, mh, diff, diff, diff, *_relative(mt, mh, diff, diff), 0.0, 0, 1)
    result = stats.ttest_ind(t, h, equal_var=False)
    df = float(result.df)
    low, high = result.confidence_interval(confidence)
    quantile = float(stats.t.ppf(0.5 + confidence / 2, df))
    relative = rel_low = rel_high = None
    if mh != 0.0:
        relative = mt / mh - 1.0
        # Delta method for the ratio of two independent means.
        rel_se = math.sqrt(vt / nt / mh**2 + mt**2 * vh / nh / mh**4)
        rel_low, rel_high = relative - quantile * rel_se, relative + quantile * rel_se
    return Lift(
        nt,
        nh,
        mt,
        mh,
        diff,
        float(low),
        float(high),
        relative,
        rel_low,
        rel_high,
        se,
        df,
        _finite(float(result.pvalue)),
    )


def _relative(
    mt: float, mh: float, low: float, high: float
) -> tuple[float | None, float | None, float | None]:
    if mh == 0.0:
        return None, None, None
    return mt / mh - 1.0, low / mh, high / mh


def required_per_group(
    sd_treatment: float,
    sd_holdout: float,
    effect: float,
    *,
    holdout_share: float,
    alpha: float = 1 - CONFIDENCE,
    power: float = POWER,
) -> tuple[int, int] | None:
    """(treatment, holdout) sizes needed to detect an absolute ``effect`` with the planned split.

    None when the effect is zero (nothing to detect) or no variance was observed yet.
    """
    if effect == 0.0 or (sd_treatment == 0.0 and sd_holdout == 0.0):
        return None
    stats = _stats()
    ratio = (1 - holdout_share) / holdout_share  # treated advocates per held-out one
    z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    n_holdout = z**2 * (sd_treatment**2 / ratio + sd_holdout**2) / effect**2
    return math.ceil(n_holdout * ratio), math.ceil(n_holdout)


@dataclass(frozen=True, slots=True)
class SampleRatio:
    expected_holdout_share: float
    observed_holdout_share: float
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_ALPHA


def sample_ratio(n_treatment: int, n_holdout: int, holdout_share: float) -> SampleRatio:
    """Chi-square test of the observed group sizes against the planned split."""
    total = n_treatment + n_holdout
    if total == 0:
        return SampleRatio(holdout_share, 0.0, 1.0)
    stats = _stats()
    expected = [total * (1 - holdout_share), total * holdout_share]
    p = float(stats.chisquare([n_treatment, n_holdout], f_exp=expected).pvalue)
    return SampleRatio(holdout_share, n_holdout / total, _finite(p) if total else 1.0)


@dataclass(frozen=True, slots=True)
class Assessment:
    """One outcome's lift with the guard rails applied."""

    lift: Lift
    required_treatment: int | None
    required_holdout: int | None
    verdict: Verdict

    @property
    def sample_reached(self) -> bool:
        return (
            self.required_treatment is not None
            and self.required_holdout is not None
            and self.lift.n_treatment >= self.required_treatment
            and self.lift.n_holdout >= self.required_holdout
        )


def assess(
    treatment: Sequence[float],
    holdout: Sequence[float],
    *,
    holdout_share: float,
    min_detectable_lift: float,
    srm: SampleRatio,
) -> Assessment:
    """Lift, the minimum sample for ``min_detectable_lift`` (relative) and the verdict."""
    np = _numpy()
    lift = welch_lift(treatment, holdout)
    required = None
    if lift.n_treatment >= 2 and lift.n_holdout >= 2:
        required = required_per_group(
            float(np.std(treatment, ddof=1)),
            float(np.std(holdout, ddof=1)),
            min_detectable_lift * lift.mean_holdout,
            holdout_share=holdout_share,
        )
    reached = required is not None and (
        lift.n_treatment >= required[0] and lift.n_holdout >= required[1]
    )
    if srm.mismatch:
        verdict = Verdict.SAMPLE_RATIO_MISMATCH
    elif not reached:
        verdict = Verdict.INSUFFICIENT_SAMPLE
    elif lift.absolute_low > 0:
        verdict = Verdict.POSITIVE_LIFT
    elif lift.absolute_high < 0:
        verdict = Verdict.NEGATIVE_LIFT
    else:
        verdict = Verdict.NO_DETECTABLE_LIFT
    return Assessment(
        lift=lift,
        required_treatment=required[0] if required else None,
        required_holdout=required[1] if required else None,
        verdict=verdict,
    )
