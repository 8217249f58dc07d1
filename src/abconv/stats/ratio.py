"""Ratio metrics by the delta method: ``Σ m / Σ d`` over the visitors of a variant.

The visitor is the unit of randomisation, so a metric counted per order
(value per order: ``m`` a visitor's value, ``d`` their orders) is a ratio of
two per-visitor sums, and its orders are not independent draws. Treating
them as such understates the variance; the delta method does not
(Deng et al. 2018). ``R = m̄ / d̄`` over the ``n`` visitors, and

    Var(R) ≈ (s_m² - 2 R s_md + R² s_d²) / (n d̄²)

with the sample variances and covariance of the per-visitor ``m`` and
``d`` (``n - 1`` denominators). Variants are independent, so a difference
adds their variances; its interval and p-value are normal (Wald). The
relative lift ``R_t / R_c - 1`` takes the same expansion on the log scale,
``Var(log(R_t / R_c)) ≈ Var_t / R_t² + Var_c / R_c²``, and its interval is
``exp(log(R_t / R_c) ± z se) - 1``: on the linear scale its misses were
lopsided (2,000 simulated experiments, ``tests/test_stats_ratio.py``: 1.0
to 1.3 % below the truth, 3.0 to 3.7 % above), on the log scale they split
evenly (2.2 to 2.4 % each side).

Undefined figures are ``None``: a ratio without any denominator, a
variance with fewer than two visitors, a p-value with no spread.

References
----------
.. [1] Deng, A., Knoblich, U. & Lu, J. (2018). Applying the Delta Method in
   Metric Analytics: A Practical Guide with Novel Ideas. KDD 2018, 233-242
   (section 2, the ratio of two means and the percent change).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from abconv.stats.frequentist import Interval, critical_z, two_sided_normal_p_value


@dataclass(frozen=True)
class RatioMoments:
    """Per-visitor sums of a numerator ``m`` and a denominator ``d`` over ``n`` visitors
    (visitors with neither count too: they add to ``n`` only)."""

    n: int
    m_sum: float
    m_sum_squares: float
    d_sum: float
    d_sum_squares: float
    md_sum: float  # Σ m·d

    def __post_init__(self) -> None:
        if self.n < 0 or self.d_sum < 0 or self.m_sum_squares < 0 or self.d_sum_squares < 0:
            raise ValueError(f"need n, Σd, Σm² and Σd² >= 0, got {self}")

    @property
    def ratio(self) -> float | None:
        """``Σ m / Σ d``; ``None`` without a denominator."""
        return self.m_sum / self.d_sum if self.d_sum > 0 else None

    @property
    def variance(self) -> float | None:
        """The delta-method variance of :attr:`ratio`; ``None`` for n < 2 or no ratio."""
        ratio = self.ratio
        if ratio is None or self.n < 2:
            return None
        n = self.n
        var_m = (self.m_sum_squares - self.m_sum**2 / n) / (n - 1)
        var_d = (self.d_sum_squares - self.d_sum**2 / n) / (n - 1)
        cov = (self.md_sum - self.m_sum * self.d_sum / n) / (n - 1)
        mean_d = self.d_sum / n
        spread = var_m - 2.0 * ratio * cov + ratio * ratio * var_d
        return max(spread, 0.0) / (n * mean_d * mean_d)


@dataclass(frozen=True)
class RatioEstimate:
    """One variant's ratio and its Wald interval."""

    ratio: float | None
    ci: Interval | None


@dataclass(frozen=True)
class RatioComparison:
    """A treatment's ratio against the control's."""

    diff: float | None
    diff_ci: Interval | None
    rel_lift: float | None
    rel_lift_ci: Interval | None
    p_value: float | None


def ratio_estimate(moments: RatioMoments, alpha: float) -> RatioEstimate:
    """``R ± z sqrt(Var(R))``; the interval is ``None`` when the variance is."""
    ratio, variance = moments.ratio, moments.variance
    if ratio is None or variance is None:
        return RatioEstimate(ratio, None)
    half = critical_z(alpha) * math.sqrt(variance)
    return RatioEstimate(ratio, (ratio - half, ratio + half))


def ratio_comparison(
    treatment: RatioMoments, control: RatioMoments, alpha: float
) -> RatioComparison:
    """Difference and relative lift of the treatment's ratio over the control's."""
    z = critical_z(alpha)
    r_t, r_c = treatment.ratio, control.ratio
    v_t, v_c = treatment.variance, control.variance
    if r_t is None or r_c is None:
        return RatioComparison(None, None, None, None, None)
    diff = r_t - r_c
    lift = r_t / r_c - 1.0 if r_c > 0 else None
    if v_t is None or v_c is None:
        return RatioComparison(diff, None, lift, None, None)
    se = math.sqrt(v_t + v_c)
    p_value = two_sided_normal_p_value(diff / se) if se > 0 else None
    lift_ci = None
    if lift is not None and r_t > 0:
        log_se = math.sqrt(v_t / r_t**2 + v_c / r_c**2)
        log_lift = math.log(r_t / r_c)
        lift_ci = (math.exp(log_lift - z * log_se) - 1.0, math.exp(log_lift + z * log_se) - 1.0)
    return RatioComparison(diff, (diff - z * se, diff + z * se), lift, lift_ci, p_value)
