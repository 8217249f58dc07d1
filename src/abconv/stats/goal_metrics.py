"""A goal's per-visitor metrics beyond the conversion rate, from its analysis input.

Events per visitor (goals with ``count``) as :class:`SampleMoments` for
Welch's test; on value goals the two ratio metrics (:mod:`abconv.stats.ratio`),
value per converting visitor and value per order, each as ``Σ m / Σ d`` over
the variant's visitors.
"""

from __future__ import annotations

from abconv.stats.frequentist import SampleMoments
from abconv.stats.inputs import GoalInput
from abconv.stats.ratio import RatioComparison, RatioMoments, ratio_comparison

Ratios = tuple[RatioMoments, RatioMoments | None]
"""Per converting visitor; per order (``None`` without the events' sums)."""
RatioComparisons = tuple[RatioComparison, RatioComparison | None]


def events_per_visitor(visitors: int, goal: GoalInput, index: int) -> SampleMoments | None:
    """Conversion events per visitor (every exposed visitor, 0 without the goal)."""
    counts = goal.counts[index]
    if not goal.count or counts.events is None or counts.events_sum_squares is None:
        return None
    return SampleMoments(visitors, counts.events, counts.events_sum_squares)


def ratio_moments(visitors: int, goal: GoalInput, index: int) -> Ratios | None:
    """Value per converting visitor (the denominator: 1 for a converting visitor, so
    Σ d = Σ d² = conversions and Σ m·d = Σ m) and, with the events' sums, value per
    order (the denominator: the visitor's events); ``None`` without values."""
    c = goal.counts[index]
    if c.value_sum is None or c.value_sum_squares is None:
        return None
    x = float(c.conversions)
    per_visitor = RatioMoments(visitors, c.value_sum, c.value_sum_squares, x, x, c.value_sum)
    if c.events is None or c.events_sum_squares is None or c.value_events_sum is None:
        return per_visitor, None
    per_order = RatioMoments(
        visitors, c.value_sum, c.value_sum_squares, c.events, c.events_sum_squares,
        c.value_events_sum,
    )  # fmt: skip
    return per_visitor, per_order


def ratio_comparisons(
    treatment: Ratios | None, control: Ratios | None, alpha: float
) -> RatioComparisons | None:
    """The ratio metrics against the control's: per converting visitor, per order."""
    if treatment is None or control is None:
        return None
    per_order = None
    if treatment[1] is not None and control[1] is not None:
        per_order = ratio_comparison(treatment[1], control[1], alpha)
    return ratio_comparison(treatment[0], control[0], alpha), per_order
