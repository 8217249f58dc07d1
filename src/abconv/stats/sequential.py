"""Always-valid inference: asymptotic confidence sequences and their p-values.

(When the analysis input has daily ``looks``, the primary goal is tested
with the group-sequential design of :mod:`abconv.stats.group_sequential`
instead; everything else keeps these sequences.)

With ``method = "sequential"`` the comparisons against the control are
reported with a confidence *sequence* instead of a fixed-n interval: with
probability at least ``1 - alpha`` it covers the true effect at every
sample size at once, so the results may be read every day without
inflating false positives.  The p-value is the smallest ``alpha`` whose
sequence excludes zero, i.e. the always-valid p-value paired with it.

We use the asymptotic confidence sequence of Waudby-Smith et al. with a
normal mixture, as GrowthBook does.  It only needs the estimate and its
(Wald-type) variance, so the same code serves differences of rates,
relative lifts and differences of value per visitor.  The boundary is

    half-width = sqrt(V) * sqrt(2 (N rho² + 1) / (N rho²) * log(sqrt(N rho² + 1) / alpha))

with ``V`` the variance of the estimate, ``N`` the visitors of both arms
and ``rho`` tuned so that the sequence is tightest at ``N = n_star``: the
planned total of the two arms when the experiment has a plan
(:func:`tuning_visitors`), else GrowthBook's 5,000.  The relative lift's
sequence is Fieller's set with the same boundary factor
(:func:`abconv.stats.frequentist.fieller_lift_interval`), so it excludes 0
exactly when the difference's sequence does.

References
----------
.. [1] Waudby-Smith, I., Arbour, D., Sinha, R., Kennedy, E. H. & Ramdas, A.
   (2023). Time-uniform central limit theory and asymptotic confidence
   sequences. arXiv:2103.06476, Theorem 2.2 and eq. (9).
.. [2] Howard, S. R., Ramdas, A., McAuliffe, J. & Sekhon, J. (2021).
   Time-uniform, nonparametric, nonasymptotic confidence sequences. Annals
   of Statistics 49(2), section 3.5 (the normal mixture and its tuning).
.. [3] GrowthBook documentation, "Sequential testing" (gbstats
   ``SequentialTwoSidedTreatmentEffectTest``).
"""

from __future__ import annotations

import math

from abconv.stats.frequentist import Interval

DEFAULT_TUNING_VISITORS = 5000
"""``n_star``: total visitors at which the sequence is tuned to be tightest.

GrowthBook's default; the sequence is valid at every sample size whatever
this value, it only moves where the width is smallest.
"""


def mixture_rho(alpha: float, tuning_visitors: int = DEFAULT_TUNING_VISITORS) -> float:
    """The normal-mixture parameter that minimises the width at ``tuning_visitors``.

    ``rho = sqrt((-2 log alpha + log(-2 log alpha + 1)) / n_star)``.

    References
    ----------
    Waudby-Smith et al. (2023), eq. (9); Howard et al. (2021), section 3.5.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if tuning_visitors <= 0:
        raise ValueError(f"tuning_visitors must be positive, got {tuning_visitors}")
    log_term = -2.0 * math.log(alpha)
    return math.sqrt((log_term + math.log(log_term + 1.0)) / tuning_visitors)


def tuning_visitors(visitors_needed_per_variant: int | None) -> int:
    """``n_star`` for one comparison: the planned visitors of its two arms.

    Tuned there, the sequence is tightest where the experiment is meant to
    end; without a plan (no control conversions yet) GrowthBook's default.
    The guarantee holds whatever ``n_star``; the plan moves a little as the
    control's rate settles, which the A/A simulation of the test suite covers.
    """
    if visitors_needed_per_variant is None or visitors_needed_per_variant <= 0:
        return DEFAULT_TUNING_VISITORS
    return 2 * visitors_needed_per_variant


def boundary_factor(
    visitors: int, alpha: float, tuning_visitors: int = DEFAULT_TUNING_VISITORS
) -> float:
    """``2 (N rho² + 1) / (N rho²) log(sqrt(N rho² + 1) / alpha)``: half-width² / V.

    The square of the critical value that replaces ``z_{1-alpha/2}`` at
    ``visitors`` total visitors.

    References
    ----------
    Waudby-Smith et al. (2023), Theorem 2.2.
    """
    if visitors <= 0:
        raise ValueError(f"visitors must be positive, got {visitors}")
    scaled = visitors * mixture_rho(alpha, tuning_visitors) ** 2
    return 2.0 * (scaled + 1.0) / scaled * math.log(math.sqrt(scaled + 1.0) / alpha)


def confidence_sequence(
    estimate: float,
    variance: float,
    visitors: int,
    alpha: float,
    tuning_visitors: int = DEFAULT_TUNING_VISITORS,
) -> Interval:
    """Asymptotic ``1 - alpha`` confidence sequence around ``estimate``.

    ``variance`` is the variance of the estimate (e.g. ``p_t(1-p_t)/n_t +
    p_c(1-p_c)/n_c``), ``visitors`` the total sample size behind it.

    References
    ----------
    Waudby-Smith et al. (2023), Theorem 2.2.
    """
    if variance < 0.0 or visitors <= 0:
        raise ValueError(f"need variance >= 0 and visitors > 0, got {variance}, {visitors}")
    half = math.sqrt(variance * boundary_factor(visitors, alpha, tuning_visitors))
    return (estimate - half, estimate + half)


def always_valid_p_value(
    estimate: float,
    variance: float,
    visitors: int,
    alpha: float,
    tuning_visitors: int = DEFAULT_TUNING_VISITORS,
) -> float | None:
    """The smallest level whose confidence sequence excludes zero.

    Solving ``half-width(level) = |estimate|`` for the level gives
    ``sqrt(N rho² + 1) * exp(-estimate² N rho² / (2 V (N rho² + 1)))``,
    capped at 1.  ``rho`` stays tuned with the configured ``alpha`` so that
    ``p <= alpha`` exactly when :func:`confidence_sequence` excludes zero.
    ``None`` when the variance is zero.

    References
    ----------
    Waudby-Smith et al. (2023), Theorem 2.2; Johari, R., Koomen, P., Pekelis,
    L. & Walsh, D. (2017). Peeking at A/B tests. KDD '17 (always-valid
    p-values).
    """
    if variance < 0.0 or visitors <= 0:
        raise ValueError(f"need variance >= 0 and visitors > 0, got {variance}, {visitors}")
    if variance == 0.0:
        return None
    scaled = visitors * mixture_rho(alpha, tuning_visitors) ** 2
    exponent = -(estimate**2) * scaled / (2.0 * variance * (scaled + 1.0))
    return min(1.0, math.sqrt(scaled + 1.0) * math.exp(exponent))
