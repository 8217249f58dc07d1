"""Frequentist procedures on sufficient statistics, one function per method.

Every function takes counts (or sums) and returns plain Python floats.  A
figure the data cannot define (no visitors, a standard error of zero under
a division) is ``None``, never NaN; intervals follow their formula and
collapse to a point when the variance is zero.  Misuse (negative counts,
``alpha`` outside ``(0, 1)``) raises ``ValueError``.

References
----------
.. [1] Wilson, E. B. (1927). Probable inference, the law of succession, and
   statistical inference. JASA 22(158), 209-212.
.. [2] Agresti, A. & Caffo, B. (2000). Simple and effective confidence
   intervals for proportions and differences of proportions. The American
   Statistician 54(4), 280-288.
.. [3] Holm, S. (1979). A simple sequentially rejective multiple test
   procedure. Scandinavian Journal of Statistics 6(2), 65-70.
.. [4] Fieller, E. C. (1954). Some problems in interval estimation. JRSS B
   16(2), 175-185.
.. [5] Welch, B. L. (1947). The generalization of "Student's" problem when
   several different population variances are involved. Biometrika 34,
   28-35.
.. [6] Hall, P. (1992). On the removal of skewness by transformation. JRSS B
   54(1), 221-228.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

Interval = tuple[float, float]


@dataclass(frozen=True)
class Proportion:
    """Binary sufficient statistics: ``n`` visitors, ``x`` of them converted."""

    n: int
    x: int

    def __post_init__(self) -> None:
        if self.n < 0 or self.x < 0 or self.x > self.n:
            raise ValueError(f"need 0 <= x <= n, got x={self.x}, n={self.n}")

    @property
    def rate(self) -> float | None:
        """``x / n``; ``None`` without visitors."""
        return self.x / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """Variance of the estimated rate, ``p (1 - p) / n``; ``None`` when n = 0."""
        p = self.rate
        return None if p is None else p * (1.0 - p) / self.n


@dataclass(frozen=True)
class SampleMoments:
    """Sufficient statistics of a numeric metric: count, sum, sum of squares (and of cubes)."""

    n: int
    sum: float
    sum_squares: float
    sum_cubes: float | None = None

    @property
    def mean(self) -> float | None:
        """Sample mean; ``None`` when n = 0."""
        return self.sum / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """Unbiased sample variance (n - 1 denominator), never negative; ``None`` when n < 2."""
        if self.n < 2:
            return None
        spread = self.sum_squares - self.sum * self.sum / self.n
        return max(spread, 0.0) / (self.n - 1)

    @property
    def skewness(self) -> float | None:
        """Sample skewness ``g1 = m3 / m2^{3/2}`` (central moments over n, scipy's
        ``skew(bias=True)``); ``None`` without ``sum_cubes``, when n < 3 or m2 = 0.

        ``n m3 = Σx³ - 3 x̄ Σx² + 2 n x̄³`` and ``n m2 = Σx² - n x̄²``.
        """
        mean = self.mean
        if self.sum_cubes is None or mean is None or self.n < 3:
            return None
        second = (self.sum_squares - self.sum * mean) / self.n
        if second <= 0.0:
            return None
        third = (self.sum_cubes - 3.0 * mean * self.sum_squares + 2.0 * self.n * mean**3) / self.n
        return float(third / second**1.5)


def normal_quantile(probability: float) -> float:
    """Quantile of the standard normal distribution."""
    return float(special.ndtri(probability))


def normal_cdf(z: float) -> float:
    """Cumulative distribution function of the standard normal distribution."""
    return float(special.ndtr(z))


def two_sided_normal_p_value(z: float) -> float:
    """``2 P(Z > |z|)`` for a standard normal Z."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def critical_z(alpha: float) -> float:
    """The two-sided critical value ``z_{1 - alpha/2}``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return normal_quantile(1.0 - alpha / 2.0)


def wilson_interval(p: Proportion, alpha: float) -> Interval | None:
    """Wilson score interval for a binomial rate at level ``1 - alpha``.

    Stays inside [0, 1] and behaves at 0/n and n/n, unlike the Wald
    interval.  ``None`` when n = 0.

    References
    ----------
    Wilson (1927); the same figures as statsmodels
    ``proportion_confint(x, n, alpha, method="wilson")``.
    """
    if p.n == 0:
        return None
    z = critical_z(alpha)
    rate = p.x / p.n
    denominator = 1.0 + z * z / p.n
    centre = (rate + z * z / (2.0 * p.n)) / denominator
    half = z * math.sqrt(rate * (1.0 - rate) / p.n + z * z / (4.0 * p.n * p.n)) / denominator
    low = 0.0 if p.x == 0 else max(0.0, centre - half)
    high = 1.0 if p.x == p.n else min(1.0, centre + half)
    return (low, high)


def wald_diff_interval(treatment: Proportion, control: Proportion, alpha: float) -> Interval | None:
    """Unpooled Wald interval for ``p_t - p_c`` at level ``1 - alpha``.

    ``d ± z sqrt(p_t (1 - p_t) / n_t + p_c (1 - p_c) / n_c)``; ``None`` when
    either arm has no visitors.

    References
    ----------
    Agresti & Caffo (2000), eq. (1).
    """
    variance = _difference_variance(treatment, control)
    if variance is None:
        return None
    diff = _rate(treatment) - _rate(control)
    half = critical_z(alpha) * math.sqrt(variance)
    return (diff - half, diff + half)


def rel_lift_variance(treatment: Proportion, control: Proportion) -> float | None:
    """Delta-method variance of ``p_t / p_c - 1``; ``None`` if n = 0 or p_c = 0.

    ``Var ≈ Var(p_t) / p_c² + p_t² Var(p_c) / p_c⁴`` (first-order Taylor
    expansion of the ratio, independent arms).  No longer behind
    ``rel_lift_ci`` (see :func:`rel_lift_interval`); kept for callers that
    need a standard error of the lift.

    References
    ----------
    Casella, G. & Berger, R. L. (2002). Statistical Inference, 2nd ed.,
    section 5.5.4 (the delta method).
    """
    if treatment.n == 0 or control.n == 0 or control.x == 0:
        return None
    pt, pc = _rate(treatment), _rate(control)
    var_t, var_c = pt * (1.0 - pt) / treatment.n, pc * (1.0 - pc) / control.n
    return var_t / pc**2 + pt**2 * var_c / pc**4


def rel_lift(treatment: Proportion, control: Proportion) -> float | None:
    """Relative lift ``p_t / p_c - 1``; ``None`` when either rate is undefined or p_c = 0."""
    if treatment.n == 0 or control.n == 0 or control.x == 0:
        return None
    return _rate(treatment) / _rate(control) - 1.0


def rel_lift_interval(treatment: Proportion, control: Proportion, alpha: float) -> Interval | None:
    """Fieller interval for the relative lift ``p_t / p_c - 1`` at level ``1 - alpha``.

    See :func:`fieller_lift_interval`; the critical value is ``z_{1-alpha/2}``.
    Its misses are balanced on both sides (the delta method's were not), and
    it excludes 0 exactly when :func:`wald_diff_interval` does.

    References
    ----------
    Fieller (1954).
    """
    return fieller_lift_interval(treatment, control, critical_z(alpha) ** 2)


def fieller_lift_interval(
    treatment: Proportion, control: Proportion, critical_squared: float
) -> Interval | None:
    """Every lift ``L`` whose hypothesis ``p_t = (1 + L) p_c`` the Wald test keeps.

    With ``R = 1 + L``, ``c² = critical_squared`` and the unpooled variances
    ``v = p (1 - p) / n``, the set ``(p_t - R p_c)² <= c² (v_t + R² v_c)`` is
    the interval between the roots of ``A R² - 2 B R + C = 0`` with
    ``A = p_c² - c² v_c``, ``B = p_t p_c``, ``C = p_t² - c² v_t``.  At
    ``R = 1`` the inequality is the Wald test of the difference, so the
    interval excludes 0 exactly when the difference's interval with the
    same critical value does.  ``critical_squared`` is ``z²`` for a fixed-n
    interval, the squared boundary factor for a confidence sequence.

    ``None`` when the lift is undefined (an arm without visitors, no control
    conversions) or when ``A <= 0``: the control's rate is not significantly
    above zero and the set is unbounded.  The low end is floored at -1 (a
    rate cannot be negative).

    References
    ----------
    Fieller, E. C. (1954). Some problems in interval estimation. JRSS B
    16(2), 175-185; Franz, V. H. (2007). Ratios: a short guide to confidence
    limits and proper use. arXiv:0710.2024, section 3.
    """
    if critical_squared <= 0.0:
        raise ValueError(f"critical_squared must be positive, got {critical_squared}")
    if treatment.n == 0 or control.n == 0 or control.x == 0:
        return None
    pt, pc = _rate(treatment), _rate(control)
    var_t, var_c = pt * (1.0 - pt) / treatment.n, pc * (1.0 - pc) / control.n
    a = pc * pc - critical_squared * var_c
    if a <= 0.0:
        return None
    b, const = pt * pc, pt * pt - critical_squared * var_t
    # b² - a const = critical² (a v_t + v_c p_t²) >= 0 when a > 0: the roots are real.
    root = math.sqrt(max(b * b - a * const, 0.0))
    return (max(-1.0, (b - root) / a - 1.0), (b + root) / a - 1.0)


def two_proportion_ztest(treatment: Proportion, control: Proportion) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test.

    ``z = (p_t - p_c) / sqrt(p (1 - p) (1/n_t + 1/n_c))`` with the pooled
    rate ``p``.  ``None`` when an arm has no visitors or when the pooled
    rate is 0 or 1 (both arms identical: the test is undefined).

    References
    ----------
    Agresti, A. (2013). Categorical Data Analysis, 3rd ed., section 3.1;
    statsmodels ``proportions_ztest`` (``prop_var=False``).
    """
    if treatment.n == 0 or control.n == 0:
        return None
    pooled = (treatment.x + control.x) / (treatment.n + control.n)
    variance = pooled * (1.0 - pooled) * (1.0 / treatment.n + 1.0 / control.n)
    if variance <= 0.0:
        return None
    return two_sided_normal_p_value((_rate(treatment) - _rate(control)) / math.sqrt(variance))


def holm_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values; ``None`` entries stay ``None``.

    The family is the non-``None`` p-values.  Sorted ascending, the i-th
    (0-based) of m gets ``max_{j <= i} min(1, (m - j) p_(j))``.

    References
    ----------
    Holm (1979); statsmodels ``multipletests(method="holm")``.
    """
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class WelchResult:
    """Welch's comparison of means: ``diff`` = treatment minus control.

    ``std_error`` and ``df`` are those of the difference.  ``p_value`` is
    ``None`` when the standard error is zero (both arms constant).
    """

    diff: float
    std_error: float
    df: float | None
    ci: Interval
    p_value: float | None


def welch_test(
    treatment: SampleMoments, control: SampleMoments, alpha: float
) -> WelchResult | None:
    """Welch's unequal-variance t-test and interval for ``mean_t - mean_c``.

    ``t = d / sqrt(s_t²/n_t + s_c²/n_c)`` with Welch–Satterthwaite degrees of
    freedom.  ``None`` when an arm has fewer than two observations.

    References
    ----------
    Welch (1947); scipy ``ttest_ind_from_stats(..., equal_var=False)``.
    """
    mean_t, mean_c = treatment.mean, control.mean
    var_t, var_c = treatment.variance, control.variance
    if mean_t is None or mean_c is None or var_t is None or var_c is None:
        return None
    critical_z(alpha)  # validates alpha
    share_t, share_c = var_t / treatment.n, var_c / control.n
    diff, std_error = mean_t - mean_c, math.sqrt(share_t + share_c)
    if std_error == 0.0:
        return WelchResult(diff, 0.0, None, (diff, diff), None)
    df = (share_t + share_c) ** 2 / (share_t**2 / (treatment.n - 1) + share_c**2 / (control.n - 1))
    half = float(special.stdtrit(df, 1.0 - alpha / 2.0)) * std_error
    p_value = 2.0 * float(special.stdtr(df, -abs(diff) / std_error))
    return WelchResult(diff, std_error, df, (diff - half, diff + half), min(1.0, p_value))


def mean_interval(moments: SampleMoments, alpha: float) -> Interval | None:
    """Interval for a mean: skewness-corrected when ``sum_cubes`` is known, else Student's t.

    Student's ``mean ± t_{n-1} s / sqrt(n)`` misses a skewed mean (order
    values per visitor: mostly zeros, a long right tail) lopsidedly, the
    truth falling above it more often than below.  With the sum of cubes,
    :func:`hall_mean_interval` corrects that.  ``None`` when n < 2.

    References
    ----------
    Student (1908). The probable error of a mean. Biometrika 6(1), 1-25;
    Hall, P. (1992). On the removal of skewness by transformation. JRSS B
    54(1), 221-228.
    """
    mean, variance = moments.mean, moments.variance
    if mean is None or variance is None:
        return None
    critical_z(alpha)
    critical = float(special.stdtrit(moments.n - 1, 1.0 - alpha / 2.0))
    skewness = moments.skewness
    if skewness is not None:
        return hall_mean_interval(
            mean, math.sqrt(variance / moments.n), skewness, moments.n, critical
        )
    half = critical * math.sqrt(variance / moments.n)
    return (mean - half, mean + half)


def hall_mean_interval(
    mean: float, std_error: float, skewness: float, n: int, critical: float
) -> Interval:
    """Hall's skewness-removing transformation of the t statistic, inverted.

    With ``T = (x̄ - mu) / se``, ``a = skewness / (3 sqrt(n))`` and
    ``b = skewness / (6 sqrt(n))``, ``g(T) = ((1 + a T)³ - 1) / (3 a) + b``
    is close to standard normal to order ``1/n`` (the ``n^{-1/2}`` skewness
    term of T's Edgeworth expansion cancels), and ``g`` is increasing, so
    ``-c <= g(T) <= c`` gives ``mu`` between ``x̄ - g⁻¹(c) se`` and
    ``x̄ - g⁻¹(-c) se`` with ``g⁻¹(y) = (cbrt(1 + 3 a (y - b)) - 1) / a``.

    References
    ----------
    Hall, P. (1992). On the removal of skewness by transformation. JRSS B
    54(1), 221-228; Zhou, X.-H. & Dinh, P. (2005). Nonparametric confidence
    intervals for the one- and two-sample problems. Biostatistics 6(2),
    187-200, section 2.
    """
    a = skewness / (3.0 * math.sqrt(n))
    b = skewness / (6.0 * math.sqrt(n))

    def inverse(y: float) -> float:
        if a == 0.0:
            return y - b
        return (float(np.cbrt(1.0 + 3.0 * a * (y - b))) - 1.0) / a

    return (mean - inverse(critical) * std_error, mean - inverse(-critical) * std_error)


def srm_test(visitors: Sequence[int], weights: Sequence[float]) -> float | None:
    """p-value of the chi-square goodness-of-fit test of visitors against weights.

    Sample ratio mismatch check: expected counts are ``total * w / sum(w)``.
    ``None`` with fewer than two variants or no visitors at all.

    References
    ----------
    Pearson, K. (1900); Fabijan, A. et al. (2019). Diagnosing sample ratio
    mismatch in online controlled experiments. KDD '19.
    """
    if len(visitors) != len(weights):
        raise ValueError("visitors and weights differ in length")
    if any(w <= 0 for w in weights):
        raise ValueError("weights must be positive")
    total, weight_total = sum(visitors), sum(weights)
    if len(visitors) < 2 or total == 0:
        return None
    statistic = 0.0
    for observed, weight in zip(visitors, weights, strict=True):
        expected = total * weight / weight_total
        statistic += (observed - expected) ** 2 / expected
    return float(special.chdtrc(len(visitors) - 1, statistic))


def _rate(p: Proportion) -> float:
    return p.x / p.n


def _difference_variance(treatment: Proportion, control: Proportion) -> float | None:
    var_t, var_c = treatment.variance, control.variance
    return None if var_t is None or var_c is None else var_t + var_c
