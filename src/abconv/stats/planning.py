"""Sample-size planning for a two-sided two-proportion test.

The baseline is the control's current rate on the primary goal, the
alternative a relative change of ``mde``.  With several treatment arms the
level is Bonferroni-split (``alpha / arms``), the first step of the Holm
procedure the analysis uses, so the plan keeps its power under that
correction.

References
----------
.. [1] Fleiss, J. L., Levin, B. & Paik, M. C. (2003). Statistical Methods for
   Rates and Proportions, 3rd ed., eq. (4.14) without the continuity
   correction.
.. [2] Chow, S.-C., Shao, J. & Wang, H. (2008). Sample Size Calculations in
   Clinical Research, 2nd ed., section 4.2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from abconv.stats.frequentist import critical_z, normal_quantile


@dataclass(frozen=True)
class Plan:
    """Visitors each variant needs, and how far the smallest variant has come.

    Both are ``None`` when the baseline rate is undefined or 0 (no control
    visitors or no control conversions yet): a relative effect of zero
    cannot be planned for.  ``progress`` is capped at 1.0.
    """

    visitors_needed_per_variant: int | None
    progress: float | None


def alternative_rate(baseline: float, mde: float) -> float:
    """The rate the test should detect: ``baseline (1 + mde)``.

    When that exceeds 1 (e.g. a baseline of 0.95 and mde 0.10) the decrease
    ``baseline (1 - mde)`` is planned for instead, floored at 0: the test is
    two-sided, so either direction is a difference it must find.
    """
    if not 0.0 <= baseline <= 1.0 or mde <= 0.0:
        raise ValueError(f"need 0 <= baseline <= 1 and mde > 0, got {baseline}, {mde}")
    upward = baseline * (1.0 + mde)
    return upward if upward <= 1.0 else max(0.0, baseline * (1.0 - mde))


def two_proportion_sample_size(baseline: float, mde: float, alpha: float, power: float) -> int:
    """Per-arm sample size to detect ``baseline -> alternative_rate(baseline, mde)``.

    ``n = (z_{1-alpha/2} sqrt(2 p̄ q̄) + z_power sqrt(p1 q1 + p2 q2))² / (p2 - p1)²``
    with ``p̄`` the mean of the two rates, rounded up.  ``baseline`` must be
    positive.

    References
    ----------
    Fleiss, Levin & Paik (2003), eq. (4.14).
    """
    if baseline <= 0.0:
        raise ValueError(f"baseline must be > 0, got {baseline}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    p1, p2 = baseline, alternative_rate(baseline, mde)
    mean = (p1 + p2) / 2.0
    spread = critical_z(alpha) * math.sqrt(2.0 * mean * (1.0 - mean)) + normal_quantile(
        power
    ) * math.sqrt(p1 * (1.0 - p1) + p2 * (1.0 - p2))
    return math.ceil(spread**2 / (p2 - p1) ** 2)


def plan(
    visitors: Sequence[int],
    control_visitors: int,
    control_conversions: int,
    mde: float,
    alpha: float,
    power: float,
) -> Plan:
    """The plan of an experiment whose variants have ``visitors`` so far.

    ``alpha`` is divided by the number of treatment arms (Bonferroni).

    References
    ----------
    Fleiss, Levin & Paik (2003), eq. (4.14).
    """
    if control_visitors == 0 or control_conversions == 0:
        return Plan(None, None)
    arms = max(1, len(visitors) - 1)
    needed = two_proportion_sample_size(
        control_conversions / control_visitors, mde, alpha / arms, power
    )
    return Plan(needed, min(1.0, min(visitors) / needed))
