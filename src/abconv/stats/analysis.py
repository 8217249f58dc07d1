"""Builds the results document from aggregated counts: ``analyze(data) -> dict``.

Every figure is computed whatever the method; ``method`` changes only how
the comparisons against the control are tested (``frequentist``: fixed-n
Wald/z/Welch; ``sequential``: confidence sequences and always-valid
p-values, or, with daily ``looks`` in the input, a group-sequential design
on the primary goal; ``bayesian`` reports the fixed-n figures too) and how
the decision is taken.  ``rate_ci`` and ``per_visitor_ci`` are always fixed-n intervals.

References
----------
See the modules that implement each procedure: :mod:`frequentist`,
:mod:`bayesian`, :mod:`sequential`, :mod:`group_sequential`, :mod:`planning`,
:mod:`decision`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from abconv.analysis_settings import AnalysisSettings
from abconv.stats import group_sequential, sequential
from abconv.stats.bayesian import BetaPosterior, compare_beta_posteriors, normal_chance_to_beat
from abconv.stats.decision import decide
from abconv.stats.frequentist import (
    Interval,
    Proportion,
    SampleMoments,
    fieller_lift_interval,
    holm_adjust,
    mean_interval,
    rel_lift,
    rel_lift_interval,
    srm_test,
    two_proportion_ztest,
    wald_diff_interval,
    welch_test,
    wilson_interval,
)
from abconv.stats.goal_metrics import (
    RatioComparisons,
    Ratios,
    events_per_visitor,
    ratio_comparisons,
    ratio_moments,
)
from abconv.stats.inputs import AnalysisInput, GoalInput, Look, parse_input
from abconv.stats.planning import Plan, plan
from abconv.stats.ratio import ratio_estimate
from abconv.stats.results import (
    Comparison,
    CountSummary,
    GoalResult,
    Results,
    SequentialDesign,
    SequentialLook,
    Srm,
    ValueComparison,
    ValueSummary,
    VariantResult,
    to_document,
)
from abconv.vocabulary import Method

SRM_THRESHOLD = 0.001
"""``srm.flag`` is set when the chi-square p-value is below this."""


def analyze(data: dict[str, Any]) -> dict[str, Any]:
    """The results document (DESIGN.md) for the ``abconv analyze`` input ``data``.

    Raises ``ValueError`` naming the field when ``data`` is malformed.  The
    document holds only JSON types and passes ``json.dumps(...,
    allow_nan=False)``; undefined figures are ``None``.
    """
    return to_document(analyze_input(parse_input(data)))


def analyze_input(parsed: AnalysisInput) -> Results:
    """The analysis of validated input, as :class:`Results` values."""
    experiment_plan = _plan(parsed)
    tuning = sequential.tuning_visitors(experiment_plan.visitors_needed_per_variant)
    design = _sequential_design(parsed, experiment_plan)
    goals = tuple(_goal_result(parsed, goal, tuning, design) for goal in parsed.goals)
    srm_p = srm_test(
        [variant.visitors for variant in parsed.variants],
        [variant.weight for variant in parsed.variants],
    )
    srm = Srm(srm_p, srm_p is not None and srm_p < SRM_THRESHOLD)
    settings = parsed.settings
    decision = decide(settings, goals, srm, experiment_plan, design)
    return Results(
        parsed.experiment,
        settings.method,
        settings.alpha,
        srm,
        goals,
        decision,
        experiment_plan,
        design,
    )


def _sequential_design(parsed: AnalysisInput, experiment_plan: Plan) -> SequentialDesign | None:
    """The group-sequential test of each treatment when the input has daily looks and a
    plan; else the confidence sequence.  ``None`` for the other methods."""
    if parsed.settings.method is not Method.SEQUENTIAL:
        return None
    if not parsed.looks or experiment_plan.visitors_needed_per_variant is None:
        return SequentialDesign("confidence_sequence")
    # The plan as of the last look, so that reading within the day changes nothing.
    settings, last, control = parsed.settings, parsed.looks[-1], parsed.control
    planned = plan(
        list(last.visitors),
        last.visitors[control],
        last.conversions[parsed.primary.key][control],
        settings.mde,
        settings.alpha,
        settings.power,
    ).visitors_needed_per_variant
    if planned is None:
        return SequentialDesign("confidence_sequence")
    treatments = [i for i in range(len(parsed.variants)) if i != parsed.control]
    alpha = parsed.settings.alpha / max(1, len(treatments))  # Bonferroni, as the plan
    found = [_sequential_look(parsed, i, planned, alpha) for i in treatments]
    looks = tuple(look for look in found if look is not None)
    if len(looks) != len(treatments):
        return SequentialDesign("confidence_sequence")
    return SequentialDesign(
        "group_sequential",
        group_sequential.DEFAULT_SPENDING,
        looks,
        group_sequential.UPPER_ALPHA_SHARE,
    )


def _sequential_look(
    parsed: AnalysisInput, treatment: int, planned: int, alpha: float
) -> SequentialLook | None:
    """The design's test of one treatment at its last look (or at the look that reached
    the plan, once the experiment has outrun it); ``None`` without information."""
    control, goal = parsed.control, parsed.primary.key
    fractions: list[float] = []
    kept: list[Look] = []
    closed = False
    for look in parsed.looks:
        n_t, n_c = look.visitors[treatment], look.visitors[control]
        if n_t == 0 or n_c == 0:
            continue
        fraction = 2.0 / (1.0 / n_t + 1.0 / n_c) / planned  # harmonic mean of the arms
        if fractions and fraction <= fractions[-1]:
            continue  # no new information: not a look
        if fractions and fractions[-1] >= 1.0:
            closed = True  # the design ended at the look that reached the plan
            break
        fractions.append(fraction)
        kept.append(look)
    if not kept:
        return None
    last = kept[-1]
    counts = last.conversions[goal]
    z = _wald_z(
        Proportion(last.visitors[treatment], counts[treatment]),
        Proportion(last.visitors[control], counts[control]),
    )
    spending = group_sequential.SPENDING[group_sequential.DEFAULT_SPENDING]
    result = group_sequential.last_look(
        fractions, alpha, z, spending, group_sequential.UPPER_ALPHA_SHARE
    )
    return SequentialLook(
        parsed.variants[treatment].key,
        last.day.isoformat(),
        len(kept),
        fractions[-1],
        z,
        result.boundary,
        result.p_value,
        closed,
        result.lower_boundary,
    )


def _wald_z(treatment: Proportion, control: Proportion) -> float:
    """The unpooled Wald statistic of ``p_t - p_c``; 0 when its variance is 0."""
    variance = (treatment.variance or 0.0) + (control.variance or 0.0)
    if variance <= 0.0:
        return 0.0
    return ((treatment.rate or 0.0) - (control.rate or 0.0)) / math.sqrt(variance)


def _plan(parsed: AnalysisInput) -> Plan:
    settings = parsed.settings
    control = parsed.variants[parsed.control]
    return plan(
        [variant.visitors for variant in parsed.variants],
        control.visitors,
        parsed.primary.counts[parsed.control].conversions,
        settings.mde,
        settings.alpha,
        settings.power,
    )


def _goal_result(
    parsed: AnalysisInput, goal: GoalInput, tuning: int, design: SequentialDesign | None
) -> GoalResult:
    """One goal's figures; ``tuning`` is ``n_star`` of the confidence sequences,
    ``design`` the group-sequential tests of the primary goal, if any."""
    settings, control = parsed.settings, parsed.control
    proportions = [
        Proportion(variant.visitors, counts.conversions)
        for variant, counts in zip(parsed.variants, goal.counts, strict=True)
    ]
    visitors = [variant.visitors for variant in parsed.variants]
    moments = [_moments(n, goal, i) for i, n in enumerate(visitors)]
    events = [events_per_visitor(n, goal, i) for i, n in enumerate(visitors)]
    ratios = [ratio_moments(n, goal, i) for i, n in enumerate(visitors)]
    bayes = compare_beta_posteriors(
        [BetaPosterior.from_counts(p.n, p.x) for p in proportions], control
    )
    comparisons: list[Comparison | None] = [
        None
        if i == control
        else _comparison(
            proportions[i],
            proportions[control],
            moments[i],
            moments[control],
            bayes.chance_to_beat_control[i],
            settings,
            tuning,
            None if design is None or not goal.primary else design.look(parsed.variants[i].key),
            _metric_comparison(events[i], events[control], settings, tuning),
            ratio_comparisons(ratios[i], ratios[control], settings.alpha),
        )
        for i in range(len(proportions))
    ]
    comparisons = _with_holm(comparisons)
    variants = tuple(
        VariantResult(
            key=variant.key,
            control=i == control,
            visitors=proportions[i].n,
            conversions=proportions[i].x,
            rate=proportions[i].rate,
            rate_ci=wilson_interval(proportions[i], settings.alpha),
            prob_best=bayes.prob_best[i],
            expected_loss=bayes.expected_loss[i],
            value=_value_summary(moments[i], proportions[i].x, ratios[i], settings.alpha),
            vs_control=comparisons[i],
            count=_count_summary(events[i], settings.alpha),
        )
        for i, variant in enumerate(parsed.variants)
    )
    return GoalResult(goal.key, goal.kind, goal.primary, variants, goal.guard, goal.count)


def _moments(visitors: int, goal: GoalInput, index: int) -> SampleMoments | None:
    counts = goal.counts[index]
    if counts.value_sum is None or counts.value_sum_squares is None:
        return None
    return SampleMoments(
        visitors, counts.value_sum, counts.value_sum_squares, counts.value_sum_cubes
    )


def _metric_comparison(
    treatment: SampleMoments | None,
    control: SampleMoments | None,
    settings: AnalysisSettings,
    tuning: int,
) -> ValueComparison | None:
    if treatment is None or control is None:
        return None
    return _value_comparison(treatment, control, settings, tuning)


def _comparison(
    treatment: Proportion,
    control: Proportion,
    treatment_value: SampleMoments | None,
    control_value: SampleMoments | None,
    chance: float | None,
    settings: AnalysisSettings,
    tuning: int,
    look: SequentialLook | None = None,
    count: ValueComparison | None = None,
    ratios: RatioComparisons | None = None,
) -> Comparison:
    """``look``: the group-sequential test that replaces the confidence sequence;
    ``count``: events per visitor; ``ratios``: the value goal's ratio metrics."""
    diff = None if treatment.rate is None or control.rate is None else treatment.rate - control.rate
    lift = rel_lift(treatment, control)
    value = _metric_comparison(treatment_value, control_value, settings, tuning)
    if value is not None and ratios is not None:
        value = replace(value, per_converting_visitor=ratios[0], per_order=ratios[1])
    if look is not None:
        abs_ci, lift_ci = _repeated_intervals(
            treatment, control, look.boundary, look.lower_boundary
        )
        p_value: float | None = look.p_value
    elif settings.method is Method.SEQUENTIAL:
        visitors = treatment.n + control.n
        diff_variance = None
        if treatment.variance is not None and control.variance is not None:
            diff_variance = treatment.variance + control.variance
        abs_ci, p_value = _sequential(diff, diff_variance, visitors, settings.alpha, tuning)
        lift_ci = (
            None
            if visitors == 0
            else fieller_lift_interval(
                treatment, control, sequential.boundary_factor(visitors, settings.alpha, tuning)
            )
        )
    else:
        abs_ci = wald_diff_interval(treatment, control, settings.alpha)
        lift_ci = rel_lift_interval(treatment, control, settings.alpha)
        p_value = two_proportion_ztest(treatment, control)
    return Comparison(diff, abs_ci, lift, lift_ci, p_value, None, chance, value, count)


def _repeated_intervals(
    treatment: Proportion, control: Proportion, upper: float, lower: float
) -> tuple[Interval | None, Interval | None]:
    """Repeated confidence intervals at the look's critical values (Jennison & Turnbull
    2000, chapter 9): every difference (lift) whose test the design would not reject
    there, ``[d - c_u se, d + c_l se]`` and Fieller's set between the ``T = c_u`` and
    ``T = -c_l`` roots.  They lie above 0 exactly when ``z >= c_u`` on these counts,
    below it exactly when ``z <= -c_l``.  ``None`` when a side has nothing to spend
    at that look."""
    variance = (treatment.variance or 0.0) + (control.variance or 0.0)
    if not (math.isfinite(upper) and math.isfinite(lower)) or treatment.n == 0 or control.n == 0:
        return None, None
    diff = (treatment.rate or 0.0) - (control.rate or 0.0)
    se = math.sqrt(variance)
    low_end = fieller_lift_interval(treatment, control, upper**2)
    high_end = fieller_lift_interval(treatment, control, lower**2)
    lift_ci = None if low_end is None or high_end is None else (low_end[0], high_end[1])
    return (diff - upper * se, diff + lower * se), lift_ci


def _sequential(
    estimate: float | None, variance: float | None, visitors: int, alpha: float, tuning: int
) -> tuple[Interval | None, float | None]:
    """Confidence sequence and always-valid p-value, or ``(None, None)`` if undefined."""
    if estimate is None or variance is None:
        return None, None
    return (
        sequential.confidence_sequence(estimate, variance, visitors, alpha, tuning),
        sequential.always_valid_p_value(estimate, variance, visitors, alpha, tuning),
    )


def _value_comparison(
    treatment: SampleMoments, control: SampleMoments, settings: AnalysisSettings, tuning: int
) -> ValueComparison:
    mean_t, mean_c = treatment.mean, control.mean
    diff = None if mean_t is None or mean_c is None else mean_t - mean_c
    welch = welch_test(treatment, control, settings.alpha)
    if welch is None:
        return ValueComparison(diff, None, None, None)
    chance = normal_chance_to_beat(welch.diff, welch.std_error)
    if settings.method is Method.SEQUENTIAL:
        visitors = treatment.n + control.n
        ci, p_value = _sequential(welch.diff, welch.std_error**2, visitors, settings.alpha, tuning)
        return ValueComparison(welch.diff, ci, p_value, chance)
    return ValueComparison(welch.diff, welch.ci, welch.p_value, chance)


def _with_holm(comparisons: list[Comparison | None]) -> list[Comparison | None]:
    """Fill ``p_value_adjusted``: Holm over the treatment arms of one goal."""
    treatments = [c for c in comparisons if c is not None]
    adjusted = iter(holm_adjust([c.p_value for c in treatments]))
    return [None if c is None else replace(c, p_value_adjusted=next(adjusted)) for c in comparisons]


def _value_summary(
    moments: SampleMoments | None, conversions: int, ratios: Ratios | None, alpha: float
) -> ValueSummary | None:
    if moments is None:
        return None
    aov = moments.sum / conversions if conversions else None
    per_visitor = None if ratios is None else ratio_estimate(ratios[0], alpha)
    per_order = None if ratios is None or ratios[1] is None else ratio_estimate(ratios[1], alpha)
    return ValueSummary(
        moments.sum, moments.mean, mean_interval(moments, alpha), aov, per_visitor, per_order
    )


def _count_summary(events: SampleMoments | None, alpha: float) -> CountSummary | None:
    if events is None:
        return None
    return CountSummary(int(events.sum), events.mean, mean_interval(events, alpha))
