"""Figures in the words of ``decision.reason``: percentages, losses, p-values, lifts.

One place, so that every reason writes a probability or a p-value the same way.
"""

from __future__ import annotations

from abconv.stats.results import Comparison


def percent(probability: float) -> str:
    """``0.973 -> "97 %"``; one decimal near certainty, never "100 %" for less than 1."""
    if probability >= 1.0:
        return "100 %"
    if probability >= 0.9995:
        return "> 99.9 %"
    if probability > 0.99:
        return f"{probability * 100:.1f} %"
    return f"{probability * 100:.0f} %"


def loss(value: float) -> str:
    """Expected loss in conversion-rate points: ``0.0002 -> "0.02 %"``."""
    return "< 0.01 %" if 0.0 < value < 0.0001 else f"{value * 100:.3g} %"


def lift(comparison: Comparison) -> str:
    """``"+12.3 % conversion rate"``, or the difference in points without a relative lift."""
    if comparison.rel_lift is not None:
        return f"{comparison.rel_lift * 100:+.1f} % conversion rate"
    return f"{(comparison.abs_diff or 0.0) * 100:+.2f} points conversion rate"


def p_value(value: float | None) -> str:
    """A p-value with its relation: ``"= 0.031"``, ``"< 0.0001"`` or ``"n/a"``."""
    if value is None:
        return "n/a"
    return f"= {value:.2g}" if value >= 0.0001 else "< 0.0001"
