"""The hard-goal guardrail: may the variant the method picked be shipped?

Evidence on a soft goal (downloads, sign-ups to a newsletter) arrives days
before evidence on a rarer hard goal (purchases), so blocking a soft winner
only once a hard goal is *significantly* worse ships most harmful variants
first.  The guardrail therefore asks the opposite question: a winner on a
soft primary goal ships only once every guarding hard goal has shown that
it is *not worse* by more than ``guardrail_margin`` (a non-inferiority
check), and a winner on any goal never ships while a hard goal is likely
worse.  Each hard goal other than the primary gets a :class:`Guardrail`:

* ``passed``: non-inferiority shown, judged once the experiment has reached
  its planned sample size (``plan.progress >= 1``).  Bayesian:
  ``P(lift > -margin) >= chance_to_win``; frequentist and sequential: the
  one-sided ``1 - alpha`` lower bound of the relative lift (the fixed-n
  interval at ``2 alpha``) above ``-margin``.  A loss shown to be within
  the margin passes even when it is significant: the margin is the loss
  the file accepts (blocking it too held back 2 points more true winners
  in the simulation, and shipped no fewer harmful ones).
* ``failed``: otherwise, the variant is likely worse on the goal (rate,
  value per visitor on value goals, or events per visitor on count goals):
  ``chance_to_beat_control < 1 - chance_to_win``, or ``p_value < alpha``
  (unadjusted) with a negative difference.  Blocks.
* ``waiting``: neither yet.  Blocks a soft-goal winner.
* ``not_required``: the goal need not show non-inferiority (the winner won
  a hard primary goal, or the goal sets ``guard = false``); only a failure
  blocks.

Why fixed-n and why only from the planned sample size, in every method: a
confidence sequence cannot prove non-inferiority of a 3 % goal within a
month (blocked 72 % of true soft winners at a 12 % margin in our
simulation), and a check read daily from the first day ships a variant
that loses 15 % of purchases too often.  Read from the plan on, the 12.5 %
default ships it in about 4 % of experiments and lets 91 % of true soft
winners through (``tests/decision_simulation.py``, 2,000 experiments).

References
----------
.. [1] Kohavi, R., Tang, D. & Xu, Y. (2020). Trustworthy Online Controlled
   Experiments, chapter 7 (guardrail metrics).
.. [2] Wellek, S. (2010). Testing Statistical Hypotheses of Equivalence and
   Noninferiority, 2nd ed., chapter 2 (one-sided test against a margin).
"""

from __future__ import annotations

from collections.abc import Sequence

from abconv.analysis_settings import AnalysisSettings
from abconv.stats.bayesian import BetaPosterior, chance_of_ratio_above
from abconv.stats.frequentist import Proportion, rel_lift_interval
from abconv.stats.planning import Plan
from abconv.stats.results import Comparison, GoalResult, Guardrail, VariantResult
from abconv.stats.wording import percent
from abconv.vocabulary import GoalKind, GuardrailStatus, Method

WORSE_WORDS = {
    "rate": "is probably worse",
    "value": "probably earns less per visitor",
    "count": "probably has fewer conversions per visitor",
}
"""What a variant likely worse on a goal is worse at, by :func:`likely_worse`'s aspect."""


def guardrails(
    settings: AnalysisSettings,
    goals: Sequence[GoalResult],
    primary: GoalResult,
    winner: str,
    plan: Plan,
) -> tuple[Guardrail, ...]:
    """The guardrail of every hard goal except the primary, for treatment ``winner``."""
    required = primary.kind is GoalKind.SOFT
    return tuple(
        _guardrail(settings, goal, winner, plan, required and goal.guard)
        for goal in goals
        if goal.kind is GoalKind.HARD and not goal.primary
    )


def _guardrail(
    settings: AnalysisSettings, goal: GoalResult, winner: str, plan: Plan, required: bool
) -> Guardrail:
    control = goal.control
    treatment = next(v for v in goal.variants if v.key == winner)
    comparison = treatment.vs_control
    lower = _lower_bound(treatment, control, settings.alpha)
    chance = None
    if settings.method is Method.BAYESIAN:
        chance = chance_of_ratio_above(
            BetaPosterior.from_counts(treatment.visitors, treatment.conversions),
            BetaPosterior.from_counts(control.visitors, control.conversions),
            1.0 - settings.guardrail_margin,
        )
    lift = None if comparison is None else comparison.rel_lift
    worse_on = None if comparison is None else likely_worse(settings, comparison, 1.0)
    judged = plan.progress is not None and plan.progress >= 1.0
    if required and judged and _not_worse(settings, lower, chance):
        status = GuardrailStatus.PASSED  # a loss within the margin is what the file accepts
    elif worse_on is not None:
        status = GuardrailStatus.FAILED
    elif not required:
        status = GuardrailStatus.NOT_REQUIRED
    else:
        status = GuardrailStatus.WAITING
    return Guardrail(goal.key, status, lift, lower, chance, worse_on)


def _lower_bound(treatment: VariantResult, control: VariantResult, alpha: float) -> float | None:
    """One-sided ``1 - alpha`` lower bound of the relative lift: the fixed-n interval at 2 alpha."""
    interval = rel_lift_interval(
        Proportion(treatment.visitors, treatment.conversions),
        Proportion(control.visitors, control.conversions),
        min(2.0 * alpha, 0.99),
    )
    return None if interval is None else interval[0]


def _not_worse(settings: AnalysisSettings, lower: float | None, chance: float | None) -> bool:
    if settings.method is Method.BAYESIAN:
        return chance is not None and chance >= settings.chance_to_win
    return lower is not None and lower > -settings.guardrail_margin


def blocking_reason(
    settings: AnalysisSettings,
    primary: GoalResult,
    winner: str,
    found: Sequence[Guardrail],
    plan: Plan,
) -> str | None:
    """Why ``winner`` may not ship yet, in plain words, or ``None`` when every guardrail lets it."""
    control = primary.control.key
    gain = f"more {primary.key} with '{winner}'"
    for guardrail in found:
        if guardrail.status is GuardrailStatus.FAILED:
            how = WORSE_WORDS.get(guardrail.worse_on or "rate", "is probably worse")
            return (
                f"'{winner}' wins {primary.key} but {how} on {guardrail.goal} "
                f"(hard goal): keep '{control}'."
            )
    waiting = [g for g in found if g.status is GuardrailStatus.WAITING]
    if not waiting:
        return None
    if plan.progress is None or plan.progress < 1.0:
        names = ", ".join(g.goal for g in waiting)
        reached = "" if plan.progress is None else f" ({percent(plan.progress)} so far)"
        return (
            f"{gain.capitalize()}, but the hard goals ({names}) are judged at the planned "
            f"sample size{reached}: keep running."
        )
    first = waiting[0]
    margin = f"{settings.guardrail_margin * 100:g} %"
    if first.rel_lift_lower is None:
        return (
            f"{gain.capitalize()}, but '{control}' has no {first.goal} yet, so a drop cannot "
            "be ruled out: keep running."
        )
    down = percent(max(0.0, -first.rel_lift_lower))
    return (
        f"{gain.capitalize()}, but {first.goal} may be down up to {down} (the guardrail allows "
        f"{margin}): keep running."
    )


def likely_worse(settings: AnalysisSettings, comparison: Comparison, sign: float) -> str | None:
    """``"rate"``, ``"value"`` or ``"count"`` (per visitor, on value or count goals) or
    ``None``; ``sign=-1`` judges the control."""
    if _worse(
        settings, comparison.chance_to_beat_control, comparison.p_value, comparison.abs_diff, sign
    ):
        return "rate"
    for aspect, per_visitor in (("value", comparison.value), ("count", comparison.count)):
        if per_visitor is not None and _worse(
            settings,
            per_visitor.chance_to_beat_control,
            per_visitor.p_value,
            per_visitor.diff,
            sign,
        ):
            return aspect
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
