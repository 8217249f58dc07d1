"""Builds the results document from aggregated counts: ``analyze(data) -> dict``.

Every figure is computed whatever the method; ``method`` changes only how
the comparisons against the control are tested (``frequentist``: fixed-n
Wald/z/Welch; ``sequential``: confidence sequences and always-valid
p-values; ``bayesian`` reports the fixed-n figures too) and how the decision
is taken.  ``rate_ci`` and ``per_visitor_ci`` are always fixed-n intervals.

References
----------
See the modules that implement each procedure: :mod:`frequentist`,
:mod:`bayesian`, :mod:`sequential`, :mod:`planning`, :mod:`decision`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from abconv.analysis_settings import AnalysisSettings
from abconv.stats import sequential
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
from abconv.stats.inputs import AnalysisInput, GoalInput, parse_input
from abconv.stats.planning import Plan, plan
from abconv.stats.results import (
    Comparison,
    GoalResult,
    Results,
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
    goals = tuple(_goal_result(parsed, goal, tuning) for goal in parsed.goals)
    srm_p = srm_test(
        [variant.visitors for variant in parsed.variants],
        [variant.weight for variant in parsed.variants],
    )
    srm = Srm(srm_p, srm_p is not None and srm_p < SRM_THRESHOLD)
    settings = parsed.settings
    decision = decide(settings, goals, srm, experiment_plan)
    return Results(
        parsed.experiment, settings.method, settings.alpha, srm, goals, decision, experiment_plan
    )


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


def _goal_result(parsed: AnalysisInput, goal: GoalInput, tuning: int) -> GoalResult:
    """One goal's figures; ``tuning`` is ``n_star`` of the confidence sequences."""
    settings, control = parsed.settings, parsed.control
    proportions = [
        Proportion(variant.visitors, counts.conversions)
        for variant, counts in zip(parsed.variants, goal.counts, strict=True)
    ]
    moments = [_moments(variant.visitors, goal, i) for i, variant in enumerate(parsed.variants)]
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
            value=_value_summary(moments[i], proportions[i].x, settings.alpha),
            vs_control=comparisons[i],
        )
        for i, variant in enumerate(parsed.variants)
    )
    return GoalResult(goal.key, goal.kind, goal.primary, variants, goal.guard)


def _moments(visitors: int, goal: GoalInput, index: int) -> SampleMoments | None:
    counts = goal.counts[index]
    if counts.value_sum is None or counts.value_sum_squares is None:
        return None
    return SampleMoments(visitors, counts.value_sum, counts.value_sum_squares)


def _comparison(
    treatment: Proportion,
    control: Proportion,
    treatment_value: SampleMoments | None,
    control_value: SampleMoments | None,
    chance: float | None,
    settings: AnalysisSettings,
    tuning: int,
) -> Comparison:
    diff = None if treatment.rate is None or control.rate is None else treatment.rate - control.rate
    lift = rel_lift(treatment, control)
    value = (
        None
        if treatment_value is None or control_value is None
        else _value_comparison(treatment_value, control_value, settings, tuning)
    )
    if settings.method is Method.SEQUENTIAL:
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
    return Comparison(diff, abs_ci, lift, lift_ci, p_value, None, chance, value)


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
    moments: SampleMoments | None, conversions: int, alpha: float
) -> ValueSummary | None:
    if moments is None:
        return None
    aov = moments.sum / conversions if conversions else None
    return ValueSummary(moments.sum, moments.mean, mean_interval(moments, alpha), aov)
