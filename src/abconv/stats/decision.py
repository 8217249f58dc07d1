"""The verdict: keep running, a winner, no difference, or invalid.

Checks run in this order; the first that applies decides.

1. ``invalid`` when the sample ratio mismatch check is flagged.
2. ``keep_running`` with a single variant, or while any variant has fewer
   than ``min_visitors`` visitors.
3. The method's rule on the primary goal's conversion rate:

   * ``bayesian``: among the arms with ``expected_loss <= max_expected_loss``,
     the one with the highest ``prob_best`` wins (the control included) when
     ``prob_best >= chance_to_win``, or (a treatment) when its
     ``chance_to_beat_control >= chance_to_win``.  With two arms both are
     the same figure.
     ``no_difference`` when every arm's expected loss is at most
     ``max_expected_loss`` (whichever is kept, little is lost).
   * ``frequentist``: nothing before the planned sample size is reached in
     every variant (``plan.progress >= 1``); then the treatment with the
     largest positive difference among those with Holm-adjusted
     ``p < alpha`` wins; the control wins when every treatment is
     significantly worse; otherwise ``no_difference``.
   * ``sequential``: the same winner rule at any time (always-valid
     p-values); ``no_difference`` once every treatment's confidence
     sequence of the relative lift lies inside ``(-mde, +mde)``.

4. Guardrail: a winner is never named if it is likely worse on a hard goal
   (any hard goal, the primary included, rates and values per visitor):
   ``chance_to_beat_control < 1 - chance_to_win`` or ``p_value < alpha``
   with a negative difference.  For the control as winner, "likely worse"
   means some treatment is likely better by the mirrored rule.  The status
   is then ``keep_running`` with the conflict in the reason.

References
----------
.. [1] Stucchio, C. (2015). Bayesian A/B testing at VWO (expected-loss rule).
.. [2] Kohavi, R., Tang, D. & Xu, Y. (2020). Trustworthy Online Controlled
   Experiments, chapters 7 (guardrail metrics) and 21 (sample ratio
   mismatch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from abconv.analysis_settings import AnalysisSettings
from abconv.stats.planning import Plan
from abconv.stats.results import Comparison, Decision, GoalResult, Srm, VariantResult
from abconv.vocabulary import DecisionStatus, GoalKind, Method


@dataclass(frozen=True)
class Win:
    """A candidate winner on the primary goal and the evidence, in words."""

    variant: VariantResult
    evidence: str


def decide(
    settings: AnalysisSettings, goals: Sequence[GoalResult], srm: Srm, plan: Plan
) -> Decision:
    """The decision for analysed goals (see the module docstring for the rules)."""
    primary = next(goal for goal in goals if goal.primary)
    if srm.flag:
        return Decision(
            DecisionStatus.INVALID,
            None,
            f"Sample ratio mismatch (p {_p(srm.p_value)}): visitors are not split as the "
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
        verdict = _bayesian(settings, primary)
    else:
        verdict = _frequentist(settings, primary, plan)
    if isinstance(verdict, Decision):
        return verdict
    return _guarded(settings, goals, primary, verdict)


def _bayesian(settings: AnalysisSettings, primary: GoalResult) -> Win | Decision:
    ranked = sorted(primary.variants, key=lambda v: v.prob_best, reverse=True)
    for candidate in ranked:
        if candidate.expected_loss <= settings.max_expected_loss:
            evidence = _bayesian_evidence(settings, primary, candidate)
            if evidence is not None:
                return Win(candidate, evidence)
    control = primary.control
    if all(v.expected_loss <= settings.max_expected_loss for v in primary.variants):
        return Decision(
            DecisionStatus.NO_DIFFERENCE,
            None,
            f"No meaningful difference on {primary.key}: whichever variant you keep, the "
            f"expected loss is at most {_loss(settings.max_expected_loss)}. Keep '{control.key}'.",
        )
    best = ranked[0]
    return _keep_running(
        f"Keep running: '{best.key}' leads on {primary.key} with "
        f"{_percent(best.prob_best)} chance to be best (needs {_percent(settings.chance_to_win)}) "
        f"and expected loss {_loss(best.expected_loss)} "
        f"(needs at most {_loss(settings.max_expected_loss)})."
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
    loss = f"; expected loss {_loss(variant.expected_loss)}."
    arms = len(primary.variants)
    if variant.prob_best >= settings.chance_to_win:
        if arms == 2:
            other = primary.treatments[0] if variant.control else primary.control
            return (
                f"{_percent(variant.prob_best)} chance to beat '{other.key}' on {primary.key}{loss}"
            )
        return (
            f"{_percent(variant.prob_best)} chance to be the best of {arms} on {primary.key}{loss}"
        )
    chance = None if variant.vs_control is None else variant.vs_control.chance_to_beat_control
    if chance is not None and chance >= settings.chance_to_win:
        return (
            f"{_percent(chance)} chance to beat '{primary.control.key}' on {primary.key}, "
            f"and no other variant is clearly better{loss}"
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
            f"Keep running: {_percent(plan.progress)} of the planned "
            f"{plan.visitors_needed_per_variant:,} visitors per variant; the test is only "
            "valid once they are reached."
        )
    alpha = settings.alpha
    compared = [(v, v.vs_control) for v in primary.treatments if v.vs_control is not None]
    better = [(v, c) for v, c in compared if _significant(c, alpha) and (c.abs_diff or 0.0) > 0.0]
    if better:
        winner, comparison = max(better, key=lambda pair: pair[1].abs_diff or 0.0)
        return Win(
            winner,
            f"{_lift(comparison)} vs '{control.key}' on {primary.key} "
            f"(adjusted p {_p(comparison.p_value_adjusted)}).",
        )
    worse = [c for _, c in compared if _significant(c, alpha) and (c.abs_diff or 0.0) < 0.0]
    if compared and len(worse) == len(compared):
        weakest = max(c.p_value_adjusted or 0.0 for c in worse)
        return Win(
            control,
            f"every other variant converts worse on {primary.key} "
            f"(largest adjusted p {_p(weakest)}).",
        )
    smallest = min(
        (c.p_value_adjusted for _, c in compared if c.p_value_adjusted is not None), default=None
    )
    if fixed_n:
        return Decision(
            DecisionStatus.NO_DIFFERENCE,
            None,
            f"No significant difference on {primary.key} at the planned sample size "
            f"(smallest adjusted p {_p(smallest)}). Keep '{control.key}'.",
        )
    if compared and all(_within_mde(c, settings.mde) for _, c in compared):
        return Decision(
            DecisionStatus.NO_DIFFERENCE,
            None,
            f"No difference on {primary.key}: every variant is within "
            f"±{_percent(settings.mde)} of '{control.key}'. Keep '{control.key}'.",
        )
    return _keep_running(
        f"Keep running: no significant difference on {primary.key} yet "
        f"(smallest adjusted p {_p(smallest)})."
    )


def _guarded(
    settings: AnalysisSettings, goals: Sequence[GoalResult], primary: GoalResult, win: Win
) -> Decision:
    winner = win.variant
    for goal in goals:
        if goal.kind is not GoalKind.HARD:
            continue
        harm = _harm(settings, goal, winner.key)
        if harm is not None:
            advice = (
                "weigh both before deciding" if winner.control else f"keep '{primary.control.key}'"
            )
            return _keep_running(
                f"'{winner.key}' wins {primary.key} but {harm} on {goal.key} (hard goal): {advice}."
            )
    verb = "Keep" if winner.control else "Ship"
    return Decision(DecisionStatus.WINNER, winner.key, f"{verb} '{winner.key}': {win.evidence}")


def _harm(settings: AnalysisSettings, goal: GoalResult, winner_key: str) -> str | None:
    """How the winner is likely worse on ``goal``, in words, or ``None``."""
    winner = next(v for v in goal.variants if v.key == winner_key)
    if winner.vs_control is not None:
        aspect = _likely_worse(settings, winner.vs_control, sign=1.0)
        if aspect is None:
            return None
        return "is probably worse" if aspect == "rate" else "probably earns less per visitor"
    for treatment in goal.treatments:
        if treatment.vs_control is not None:
            aspect = _likely_worse(settings, treatment.vs_control, sign=-1.0)
            if aspect == "rate":
                return f"'{treatment.key}' is probably better"
            if aspect == "value":
                return f"'{treatment.key}' probably earns more per visitor"
    return None


def _likely_worse(settings: AnalysisSettings, comparison: Comparison, sign: float) -> str | None:
    """``"rate"``, ``"value"`` (per visitor) or ``None``; ``sign=-1`` judges the control."""
    if _worse(
        settings, comparison.chance_to_beat_control, comparison.p_value, comparison.abs_diff, sign
    ):
        return "rate"
    value = comparison.value
    if value is not None and _worse(
        settings, value.chance_to_beat_control, value.p_value, value.diff, sign
    ):
        return "value"
    return None


def _worse(
    settings: AnalysisSettings,
    chance: float | None,
    p_value: float | None,
    diff: float | None,
    sign: float,
) -> bool:
    if chance is not None:
        chance_of_judged = chance if sign > 0 else 1.0 - chance
        if chance_of_judged < 1.0 - settings.chance_to_win:
            return True
    return p_value is not None and p_value < settings.alpha and (diff or 0.0) * sign < 0.0


def _significant(comparison: Comparison, alpha: float) -> bool:
    return comparison.p_value_adjusted is not None and comparison.p_value_adjusted < alpha


def _within_mde(comparison: Comparison, mde: float) -> bool:
    ci = comparison.rel_lift_ci
    return ci is not None and -mde < ci[0] and ci[1] < mde


def _keep_running(reason: str) -> Decision:
    return Decision(DecisionStatus.KEEP_RUNNING, None, reason)


def _percent(probability: float) -> str:
    """``0.973 -> "97 %"``; one decimal near certainty, never "100 %" for less than 1."""
    if probability >= 1.0:
        return "100 %"
    if probability >= 0.9995:
        return "> 99.9 %"
    if probability > 0.99:
        return f"{probability * 100:.1f} %"
    return f"{probability * 100:.0f} %"


def _loss(loss: float) -> str:
    """Expected loss in conversion-rate points: ``0.0002 -> "0.02 %"``."""
    return "< 0.01 %" if 0.0 < loss < 0.0001 else f"{loss * 100:.3g} %"


def _lift(comparison: Comparison) -> str:
    if comparison.rel_lift is not None:
        return f"{comparison.rel_lift * 100:+.1f} % conversion rate"
    return f"{(comparison.abs_diff or 0.0) * 100:+.2f} points conversion rate"


def _p(p_value: float | None) -> str:
    """A p-value with its relation: ``"= 0.031"``, ``"< 0.0001"`` or ``"n/a"``."""
    if p_value is None:
        return "n/a"
    return f"= {p_value:.2g}" if p_value >= 0.0001 else "< 0.0001"
