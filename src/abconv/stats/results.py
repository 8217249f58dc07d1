"""The results of an analysis as frozen values, and their JSON document.

:func:`to_document` is the one place that names the fields of the results
document (DESIGN.md, "Results document"); everything else passes these
dataclasses around.  ``None`` means "undefined for these data" and becomes
JSON ``null``; no NaN or infinity ever reaches the document.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from abconv.stats.frequentist import Interval
from abconv.stats.planning import Plan
from abconv.stats.ratio import RatioComparison, RatioEstimate
from abconv.vocabulary import DecisionStatus, GoalKind, GuardrailStatus, Method


@dataclass(frozen=True)
class ValueSummary:
    """Value per variant: total, per visitor (with its t interval), per converting
    visitor (``aov``, and as a ratio with its delta-method interval) and per order."""

    sum: float
    per_visitor: float | None
    per_visitor_ci: Interval | None
    aov: float | None
    per_converting_visitor: RatioEstimate | None = None
    per_order: RatioEstimate | None = None  # None without the events' sums


@dataclass(frozen=True)
class CountSummary:
    """Conversion events per visitor (count goals), with the mean's interval."""

    events: int
    per_visitor: float | None
    per_visitor_ci: Interval | None


@dataclass(frozen=True)
class ValueComparison:
    """Value (or events) per visitor against the control (Welch, or a confidence
    sequence); on value goals also the ratio metrics (delta method, fixed-n)."""

    diff: float | None
    diff_ci: Interval | None
    p_value: float | None
    chance_to_beat_control: float | None
    per_converting_visitor: RatioComparison | None = None
    per_order: RatioComparison | None = None


@dataclass(frozen=True)
class Comparison:
    """A treatment's conversion rate against the control's."""

    abs_diff: float | None
    abs_diff_ci: Interval | None
    rel_lift: float | None
    rel_lift_ci: Interval | None
    p_value: float | None
    p_value_adjusted: float | None
    chance_to_beat_control: float | None
    value: ValueComparison | None
    count: ValueComparison | None = None  # events per visitor, on count goals


@dataclass(frozen=True)
class VariantResult:
    key: str
    control: bool
    visitors: int
    conversions: int
    rate: float | None
    rate_ci: Interval | None
    prob_best: float
    expected_loss: float
    value: ValueSummary | None
    vs_control: Comparison | None
    count: CountSummary | None = None


@dataclass(frozen=True)
class GoalResult:
    key: str
    kind: GoalKind
    primary: bool
    variants: tuple[VariantResult, ...]
    guard: bool = True
    count: bool = False

    @property
    def control(self) -> VariantResult:
        return next(variant for variant in self.variants if variant.control)

    @property
    def treatments(self) -> tuple[VariantResult, ...]:
        return tuple(variant for variant in self.variants if not variant.control)


@dataclass(frozen=True)
class Srm:
    """Sample ratio mismatch check; ``p_value`` is ``None`` with one variant or no visitors."""

    p_value: float | None
    flag: bool


@dataclass(frozen=True)
class Guardrail:
    """A hard goal's check of the variant about to be shipped (README, "Decision rules").

    ``rel_lift_lower`` is the one-sided ``1 - alpha`` lower bound of the
    relative lift (fixed-n); ``chance_not_worse`` is the Bayesian
    ``P(lift > -guardrail_margin)``, ``None`` for the other methods.  Both
    are ``None`` when the lift is undefined (no control conversions).
    ``worse_on`` (``"rate"``, ``"value"`` or ``"count"``, for the reason only) says what a
    ``failed`` guardrail found worse.
    """

    goal: str
    status: GuardrailStatus
    rel_lift: float | None
    rel_lift_lower: float | None
    chance_not_worse: float | None
    worse_on: str | None = None


@dataclass(frozen=True)
class Decision:
    """``guardrails``: one per hard goal other than the primary, for the treatment
    the method picked; empty when no treatment was picked."""

    status: DecisionStatus
    winner: str | None
    reason: str
    guardrails: tuple[Guardrail, ...] = ()


@dataclass(frozen=True)
class SequentialLook:
    """A treatment's group-sequential test on the primary goal at the look that counts.

    ``z`` is the Wald statistic of the difference there, ``boundary`` and
    ``lower_boundary`` the upper and lower critical values the design gives
    that look (the treatment wins at ``z >= boundary``, the control at ``z <=
    -lower_boundary``), ``fraction`` its information fraction (of the plan),
    ``p_value`` the design's (stage-wise) p-value.
    ``closed``: the experiment has outrun its plan and this is the look that
    reached it (the verdict that stands).
    """

    variant: str
    day: str
    looks: int
    fraction: float
    z: float
    boundary: float
    p_value: float
    closed: bool
    lower_boundary: float

    @property
    def crossed(self) -> int:
        """``1`` above the upper boundary, ``-1`` below the lower one, else ``0``."""
        if self.z >= self.boundary:
            return 1
        return -1 if self.z <= -self.lower_boundary else 0


@dataclass(frozen=True)
class SequentialDesign:
    """How ``method = "sequential"`` tested the primary goal.

    ``design`` is ``"group_sequential"`` (daily looks in the input and a
    plan) or ``"confidence_sequence"``; ``spending`` names the spending
    function of a group-sequential design, ``upper_alpha_share`` the share of
    ``alpha`` it spends on "the treatment wins", and ``looks`` holds its test
    of each treatment.
    """

    design: str
    spending: str | None = None
    looks: tuple[SequentialLook, ...] = ()
    upper_alpha_share: float | None = None

    def look(self, variant: str) -> SequentialLook | None:
        return next((look for look in self.looks if look.variant == variant), None)


@dataclass(frozen=True)
class Results:
    experiment: str
    method: Method
    alpha: float
    srm: Srm
    goals: tuple[GoalResult, ...]
    decision: Decision
    plan: Plan
    sequential: SequentialDesign | None = None


def to_document(results: Results) -> dict[str, Any]:
    """The JSON-ready results document: plain dicts, lists, str, int, float, bool, None."""
    return {
        "experiment": results.experiment,
        "method": str(results.method),
        "alpha": _number(results.alpha),
        "srm": {"p_value": _number(results.srm.p_value), "flag": results.srm.flag},
        "goals": [_goal(goal) for goal in results.goals],
        "decision": {
            "status": str(results.decision.status),
            "winner": results.decision.winner,
            "reason": results.decision.reason,
            "guardrails": [_guardrail(g) for g in results.decision.guardrails],
        },
        "plan": {
            "visitors_needed_per_variant": results.plan.visitors_needed_per_variant,
            "progress": _number(results.plan.progress),
        },
        "sequential": None if results.sequential is None else _sequential(results.sequential),
    }


def _sequential(design: SequentialDesign) -> dict[str, Any]:
    return {
        "design": design.design,
        "spending": design.spending,
        "upper_alpha_share": _number(design.upper_alpha_share),
        "looks": [
            {
                "variant": look.variant,
                "day": look.day,
                "looks": look.looks,
                "information_fraction": _number(look.fraction),
                "z": _number(look.z),
                "boundary": _number(look.boundary),
                "lower_boundary": _number(look.lower_boundary),
                "closed": look.closed,
            }
            for look in design.looks
        ],
    }


def _guardrail(guardrail: Guardrail) -> dict[str, Any]:
    return {
        "goal": guardrail.goal,
        "status": str(guardrail.status),
        "rel_lift": _number(guardrail.rel_lift),
        "rel_lift_lower": _number(guardrail.rel_lift_lower),
        "chance_not_worse": _number(guardrail.chance_not_worse),
    }


def _goal(goal: GoalResult) -> dict[str, Any]:
    return {
        "key": goal.key,
        "kind": str(goal.kind),
        "primary": goal.primary,
        "count": goal.count,
        "variants": [_variant(variant) for variant in goal.variants],
    }


def _variant(variant: VariantResult) -> dict[str, Any]:
    value = variant.value
    return {
        "key": variant.key,
        "control": variant.control,
        "visitors": variant.visitors,
        "conversions": variant.conversions,
        "rate": _number(variant.rate),
        "rate_ci": _interval(variant.rate_ci),
        "prob_best": _number(variant.prob_best),
        "expected_loss": _number(variant.expected_loss),
        "value": None
        if value is None
        else {
            "sum": _number(value.sum),
            "per_visitor": _number(value.per_visitor),
            "per_visitor_ci": _interval(value.per_visitor_ci),
            "aov": _number(value.aov),
            "per_converting_visitor": _ratio(value.per_converting_visitor),
            "per_order": _ratio(value.per_order),
        },
        "count": None
        if variant.count is None
        else {
            "events": variant.count.events,
            "per_visitor": _number(variant.count.per_visitor),
            "per_visitor_ci": _interval(variant.count.per_visitor_ci),
        },
        "vs_control": None if variant.vs_control is None else _comparison(variant.vs_control),
    }


def _ratio(estimate: RatioEstimate | None) -> dict[str, Any] | None:
    if estimate is None:
        return None
    return {"ratio": _number(estimate.ratio), "ci": _interval(estimate.ci)}


def _ratio_comparison(comparison: RatioComparison | None) -> dict[str, Any] | None:
    if comparison is None:
        return None
    return {
        "diff": _number(comparison.diff),
        "diff_ci": _interval(comparison.diff_ci),
        "rel_lift": _number(comparison.rel_lift),
        "rel_lift_ci": _interval(comparison.rel_lift_ci),
        "p_value": _number(comparison.p_value),
    }


def _per_visitor_comparison(value: ValueComparison) -> dict[str, Any]:
    return {
        "diff": _number(value.diff),
        "diff_ci": _interval(value.diff_ci),
        "p_value": _number(value.p_value),
        "chance_to_beat_control": _number(value.chance_to_beat_control),
    }


def _comparison(comparison: Comparison) -> dict[str, Any]:
    value = comparison.value
    return {
        "abs_diff": _number(comparison.abs_diff),
        "abs_diff_ci": _interval(comparison.abs_diff_ci),
        "rel_lift": _number(comparison.rel_lift),
        "rel_lift_ci": _interval(comparison.rel_lift_ci),
        "p_value": _number(comparison.p_value),
        "p_value_adjusted": _number(comparison.p_value_adjusted),
        "chance_to_beat_control": _number(comparison.chance_to_beat_control),
        "value": None
        if value is None
        else {
            **_per_visitor_comparison(value),
            "per_converting_visitor": _ratio_comparison(value.per_converting_visitor),
            "per_order": _ratio_comparison(value.per_order),
        },
        "count": None if comparison.count is None else _per_visitor_comparison(comparison.count),
    }


def _number(value: float | None) -> float | None:
    """A plain finite float, or ``None`` (also for a non-finite value, as a last guard)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _interval(interval: Interval | None) -> list[float] | None:
    if interval is None:
        return None
    low, high = _number(interval[0]), _number(interval[1])
    return None if low is None or high is None else [low, high]
