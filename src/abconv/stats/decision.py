"""The verdict: keep running, a winner, no difference, or invalid.

Checks run in this order; the first that applies decides.

1. ``invalid`` when the sample ratio mismatch check is flagged.
2. ``keep_running`` with a single variant, or while any variant has fewer
   than ``min_visitors`` visitors.
3. The method's rule on the primary goal's conversion rate.  In every
   method a winner's ``rel_lift_ci`` (``abs_diff_ci`` without a lift) must
   exclude zero, so that "winner" means the same thing whatever the method:

   * ``bayesian``: nothing before every variant has half the planned sample
     (``BAYESIAN_PLAN_SHARE``); then among the arms with ``expected_loss <=
     max_expected_loss``, the one with the highest ``prob_best`` wins (the
     control included) when ``prob_best >= chance_to_win``, or (a
     treatment) when its ``chance_to_beat_control >= chance_to_win``.
     ``no_difference`` when every arm's expected loss is at most
     ``max_expected_loss`` (whichever is kept, little is lost).
   * ``frequentist``: nothing before the planned sample size is reached in
     every variant (``plan.progress >= 1``); then the treatment with the
     largest positive difference among those with Holm-adjusted
     ``p < alpha`` wins; the control wins when every treatment is
     significantly worse; otherwise ``no_difference``.
   * ``sequential`` without daily looks in the input: the same winner rule
     at any time (always-valid p-values); ``no_difference`` once every
     treatment's confidence sequence of the relative lift lies inside
     ``(-mde, +mde)``.
   * ``sequential`` with daily looks (:mod:`abconv.stats.group_sequential`):
     a treatment wins when its statistic crossed the upper boundary at the
     last look (largest difference first); the control wins when every
     treatment crossed the lower one (the two sides spend ``UPPER_ALPHA_SHARE``
     and the rest of ``alpha``).  ``no_difference`` once the repeated
     confidence intervals of every lift lie inside ``(-mde, +mde)``, or
     when the look that reached the plan crossed nothing (the design is over).

4. The hard-goal guardrail (:mod:`abconv.stats.guardrails`): a treatment
   that won a soft primary goal ships only once every guarding hard goal
   has shown non-inferiority; no winner ships while it is likely worse on a
   hard goal (its rate, value per visitor, or events per visitor on goals
   with ``count``), nor a rate winner of a hard primary goal likely lower on
   its value or events per visitor.  For the control as winner, a hard goal
   on which some treatment is likely better blocks.  Blocked, the status is
   ``keep_running`` with the goal and its evidence in the reason.

References
----------
.. [1] Stucchio, C. (2015). Bayesian A/B testing at VWO (expected-loss rule).
.. [2] Kohavi, R., Tang, D. & Xu, Y. (2020). Trustworthy Online Controlled
   Experiments, chapters 7 (guardrail metrics) and 21 (sample ratio
   mismatch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from abconv.analysis_settings import AnalysisSettings
from abconv.stats.guardrails import WORSE_WORDS, blocking_reason, guardrails, likely_worse
from abconv.stats.planning import Plan
from abconv.stats.results import (
    Comparison,
    Decision,
    GoalResult,
    SequentialDesign,
    Srm,
    VariantResult,
)
from abconv.stats.wording import lift, loss, p_value, percent
from abconv.vocabulary import DecisionStatus, GoalKind, Method

BAYESIAN_PLAN_SHARE = 0.5
"""Share of the planned sample size every variant needs before a Bayesian verdict.

Chance to beat the control >= 0.95 is a one-sided 5 % test; read every day
from the first it names a winner in an A/A test about half the time.  From
half the plan on, the daily reads do so in 7.5 % of A/A experiments while a
true +10 % on a 3 % rate is still found by day 30 in 59 % (simulation,
``tests/decision_simulation.py``, 2,000 experiments; the limit of a
level-5 % test there is 0.56).
"""


@dataclass(frozen=True)
class Win:
    """A candidate winner on the primary goal and the evidence, in words."""

    variant: VariantResult
    evidence: str


def decide(
    settings: AnalysisSettings,
    goals: Sequence[GoalResult],
    srm: Srm,
    plan: Plan,
    design: SequentialDesign | None = None,
) -> Decision:
    """The decision for analysed goals (see the module docstring for the rules);
    ``design`` is how ``sequential`` tested the primary goal."""
    primary = next(goal for goal in goals if goal.primary)
    if srm.flag:
        return Decision(
            DecisionStatus.INVALID,
            None,
            f"Sample ratio mismatch (p {p_value(srm.p_value)}): visitors are not split as the "
            "weights say, so these results cannot be trusted. Check the assignment and "
            "bot filtering.",
        )
    if len(primary.variants) < 2:
        only = primary.variants[0].key
        return _keep_running(f"Only one variant ('{only}'): there is nothing to compare.")
    short = [v for v in primary.variants if v.visitors < settings.min_visitors]
    if short:
        names = ", ".join(f"'{v.key}' has {v.visitors:,}" for v in short)
        return _keep_running(
            f"Keep running: {names} visitors; every variant needs at least "
            f"{settings.min_visitors:,} before a verdict."
        )
    if settings.method is Method.BAYESIAN:
        verdict = _bayesian_minimum(primary, plan) or _bayesian(settings, primary)
    elif design is not None and design.design == "group_sequential":
        verdict = _group_sequential(settings, primary, design)
    else:
        verdict = _frequentist(settings, primary, plan)
    if isinstance(verdict, Decision):
        return verdict
    return _guarded(settings, goals, primary, verdict, plan)


def _bayesian_minimum(primary: GoalResult, plan: Plan) -> Decision | None:
    """``keep_running`` before every variant has half the planned sample (see the constant)."""
    if plan.progress is None:
        return _keep_running(
            f"Keep running: '{primary.control.key}' has no conversions on {primary.key} yet, "
            "so the sample size cannot be planned."
        )
    if plan.progress < BAYESIAN_PLAN_SHARE:
        needed = plan.visitors_needed_per_variant or 0
        return _keep_running(
            f"Keep running: {percent(plan.progress)} of the planned {needed:,} visitors per "
            f"variant; a Bayesian verdict waits for {percent(BAYESIAN_PLAN_SHARE)} of them, "
            "since reading it every day from the start finds differences that are not there."
        )
    return None


def _bayesian(settings: AnalysisSettings, primary: GoalResult) -> Win | Decision:
    ranked = sorted(primary.variants, key=lambda v: v.prob_best, reverse=True)
    for candidate in ranked:
        if candidate.expected_loss <= settings.max_expected_loss and _clear(primary, candidate):
            evidence = _bayesian_evidence(settings, primary, candidate)
            if evidence is not None:
                return Win(candidate, evidence)
    control = primary.control
    if all(v.expected_loss <= settings.max_expected_loss for v in primary.variants):
        return Decision(
            DecisionStatus.NO_DIFFERENCE,
            None,
            f"No meaningful difference on {primary.key}: whichever variant you keep, the "
            f"expected loss is at most {loss(settings.max_expected_loss)}. Keep '{control.key}'.",
        )
    best = ranked[0]
    return _keep_running(
        f"Keep running: '{best.key}' leads on {primary.key} with "
        f"{percent(best.prob_best)} chance to be best (needs {percent(settings.chance_to_win)}) "
        f"and expected loss {loss(best.expected_loss)} "
        f"(needs at most {loss(settings.max_expected_loss)})."
    )


def _bayesian_evidence(
    settings: AnalysisSettings, primary: GoalResult, variant: VariantResult
) -> str | None:
    """Why ``variant`` (with a small enough expected loss) wins, or ``None`` if it does not.

    It wins when it is best with ``chance_to_win``, or, as a treatment, beats
    the control with ``chance_to_win``: then the other arms that may be
    better are better by less than ``max_expected_loss`` (two equally good
    treatments must not keep the experiment running for ever).
    """
    tail = f"; expected loss {loss(variant.expected_loss)}."
    arms = len(primary.variants)
    if variant.prob_best >= settings.chance_to_win:
        if arms == 2:
            other = primary.treatments[0] if variant.control else primary.control
            return (
                f"{percent(variant.prob_best)} chance to beat '{other.key}' on {primary.key}{tail}"
            )
        return (
            f"{percent(variant.prob_best)} chance to be the best of {arms} on {primary.key}{tail}"
        )
    chance = None if variant.vs_control is None else variant.vs_control.chance_to_beat_control
    if chance is not None and chance >= settings.chance_to_win:
        return (
            f"{percent(chance)} chance to beat '{primary.control.key}' on {primary.key}, "
            f"and no other variant is clearly better{tail}"
        )
    return None


def _frequentist(settings: AnalysisSettings, primary: GoalResult, plan: Plan) -> Win | Decision:
    control = primary.control
    fixed_n = settings.method is Method.FREQUENTIST
    if fixed_n and plan.progress is None:
        return _keep_running(
            f"Keep running: '{control.key}' has no conversions on {primary.key} yet, so the "
            "sample size cannot be planned."
        )
    if fixed_n and plan.progress is not None and plan.progress < 1.0:
        return _keep_running(
            f"Keep running: {percent(plan.progress)} of the planned "
            f"{plan.visitors_needed_per_variant:,} visitors per variant; the test is only "
            "valid once they are reached."
        )
    alpha = settings.alpha
    compared = [(v, v.vs_control) for v in primary.treatments if v.vs_control is not None]
    better = [
        (v, c)
        for v, c in compared
        if _significant(c, alpha) and (c.abs_diff or 0.0) > 0.0 and _excludes_zero(c, 1.0)
    ]
    if better:
        winner, comparison = max(better, key=lambda pair: pair[1].abs_diff or 0.0)
        return Win(
            winner,
            f"{lift(comparison)} vs '{control.key}' on {primary.key} "
            f"(adjusted p {p_value(comparison.p_value_adjusted)}).",
        )
    worse = [
        c
        for _, c in compared
        if _significant(c, alpha) and (c.abs_diff or 0.0) < 0.0 and _excludes_zero(c, -1.0)
    ]
    if compared and len(worse) == len(compared):
        weakest = max(c.p_value_adjusted or 0.0 for c in worse)
        return Win(
            control,
            f"every other variant converts worse on {primary.key} "
            f"(largest adjusted p {p_value(weakest)}).",
        )
    smallest = min(
        (c.p_value_adjusted for _, c in compared if c.p_value_adjusted is not None), default=None
    )
    if fixed_n:
        return Decision(
            DecisionStatus.NO_DIFFERENCE,
            None,
            f"No significant difference on {primary.key} at the planned sample size "
            f"(smallest adjusted p {p_value(smallest)}). Keep '{control.key}'.",
        )
    if compared and all(_within_mde(c, settings.mde) for _, c in compared):
        return Decision(
            DecisionStatus.NO_DIFFERENCE,
            None,
            f"No difference on {primary.key}: every variant is within "
            f"±{percent(settings.mde)} of '{control.key}'. Keep '{control.key}'.",
        )
    return _keep_running(
        f"Keep running: no significant difference on {primary.key} yet "
        f"(smallest adjusted p {p_value(smallest)})."
    )


def _group_sequential(
    settings: AnalysisSettings, primary: GoalResult, design: SequentialDesign
) -> Win | Decision:
    """The group-sequential rule (module docstring): crossings at the look that counts."""
    control = primary.control
    tested = [
        (v, v.vs_control, look)
        for v in primary.treatments
        if v.vs_control is not None and (look := design.look(v.key)) is not None
    ]
    better = [
        (v, c, look)
        for v, c, look in tested
        if look.crossed > 0 and (c.abs_diff or 0.0) > 0.0 and _excludes_zero(c, 1.0)
    ]
    if better:
        winner, comparison, look = max(better, key=lambda row: row[1].abs_diff or 0.0)
        return Win(
            winner,
            f"{lift(comparison)} vs '{control.key}' on {primary.key} "
            f"(z {look.z:.2f} beyond the boundary {look.boundary:.2f} on {look.day}, "
            f"{percent(look.fraction)} of the plan).",
        )
    worse = [
        look
        for _, c, look in tested
        if look.crossed < 0 and (c.abs_diff or 0.0) < 0.0 and _excludes_zero(c, -1.0)
    ]
    if tested and len(worse) == len(tested):
        return Win(
            control,
            f"every other variant converts worse on {primary.key} "
            f"(beyond the group-sequential lower boundary on {worse[0].day}).",
        )
    if tested and all(look.closed for _, _, look in tested):
        day = tested[0][2].day
        return Decision(
            DecisionStatus.NO_DIFFERENCE,
            None,
            f"No significant difference on {primary.key} at the planned sample size "
            f"(reached on {day}; the group-sequential test ends there). Keep '{control.key}'.",
        )
    if tested and all(_within_mde(c, settings.mde) for _, c, _ in tested):
        return Decision(
            DecisionStatus.NO_DIFFERENCE,
            None,
            f"No difference on {primary.key}: every variant is within "
            f"±{percent(settings.mde)} of '{control.key}'. Keep '{control.key}'.",
        )
    if not tested:
        return _keep_running(f"Keep running: no variant can be compared on {primary.key} yet.")
    lead = max(tested, key=lambda row: abs(row[2].z))[2]
    side = lead.boundary if lead.z >= 0.0 else -lead.lower_boundary
    boundary = f"{side:.2f}" if math.isfinite(side) else "none left"
    return _keep_running(
        f"Keep running: no difference on {primary.key} beyond the group-sequential boundary "
        f"yet ('{lead.variant}': z {lead.z:.2f}, boundary {boundary} on {lead.day}, "
        f"{percent(lead.fraction)} of the plan)."
    )


def _guarded(
    settings: AnalysisSettings,
    goals: Sequence[GoalResult],
    primary: GoalResult,
    win: Win,
    plan: Plan,
) -> Decision:
    winner = win.variant
    if winner.control:
        harm = _control_harm(settings, goals)
        if harm is not None:
            return _keep_running(
                f"'{winner.key}' wins {primary.key} but {harm}: weigh both before deciding."
            )
        return Decision(DecisionStatus.WINNER, winner.key, f"Keep '{winner.key}': {win.evidence}")
    checks = guardrails(settings, goals, primary, winner.key, plan)
    worse_primary = _primary_harm(settings, primary, winner)
    blocked = blocking_reason(settings, primary, winner.key, checks, plan)
    if worse_primary is not None:
        blocked = (
            f"'{winner.key}' wins {primary.key} but {worse_primary} on {primary.key}: "
            f"keep '{primary.control.key}'."
        )
    if blocked is not None:
        return Decision(DecisionStatus.KEEP_RUNNING, None, blocked, checks)
    return Decision(
        DecisionStatus.WINNER, winner.key, f"Ship '{winner.key}': {win.evidence}", checks
    )


def _primary_harm(
    settings: AnalysisSettings, primary: GoalResult, winner: VariantResult
) -> str | None:
    """A primary value (count) goal whose rate won but whose value (events) per visitor
    is likely lower."""
    if primary.kind is not GoalKind.HARD or winner.vs_control is None:
        return None
    aspect = likely_worse(settings, winner.vs_control, 1.0)
    if aspect not in ("value", "count"):
        return None
    return WORSE_WORDS[aspect]


def _control_harm(settings: AnalysisSettings, goals: Sequence[GoalResult]) -> str | None:
    """How some treatment is likely better than the control on a hard goal, or ``None``."""
    for goal in goals:
        if goal.kind is not GoalKind.HARD:
            continue
        for treatment in goal.treatments:
            if treatment.vs_control is None:
                continue
            aspect = likely_worse(settings, treatment.vs_control, sign=-1.0)
            if aspect == "rate":
                return f"'{treatment.key}' is probably better on {goal.key} (hard goal)"
            if aspect == "value":
                return (
                    f"'{treatment.key}' probably earns more per visitor on {goal.key} (hard goal)"
                )
            if aspect == "count":
                return (
                    f"'{treatment.key}' probably has more conversions per visitor on {goal.key} "
                    "(hard goal)"
                )
    return None


def _clear(primary: GoalResult, candidate: VariantResult) -> bool:
    """A winner's headline lift interval excludes zero: above it for a treatment, and
    every treatment's below it for the control."""
    if candidate.vs_control is not None:
        return _excludes_zero(candidate.vs_control, 1.0)
    return all(
        t.vs_control is not None and _excludes_zero(t.vs_control, -1.0) for t in primary.treatments
    )


def _excludes_zero(comparison: Comparison, sign: float) -> bool:
    """``rel_lift_ci`` (or ``abs_diff_ci`` without a lift) lies above zero (``sign=1``) or below."""
    interval = comparison.rel_lift_ci or comparison.abs_diff_ci
    if interval is None:
        return False
    return interval[0] > 0.0 if sign > 0 else interval[1] < 0.0


def _significant(comparison: Comparison, alpha: float) -> bool:
    return comparison.p_value_adjusted is not None and comparison.p_value_adjusted < alpha


def _within_mde(comparison: Comparison, mde: float) -> bool:
    ci = comparison.rel_lift_ci
    return ci is not None and -mde < ci[0] and ci[1] < mde


def _keep_running(reason: str) -> Decision:
    return Decision(DecisionStatus.KEEP_RUNNING, None, reason)
