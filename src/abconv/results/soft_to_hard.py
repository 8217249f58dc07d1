"""``soft_to_hard``: does the micro-conversion lead to the macro one, and do variants change that?

For each soft goal × hard goal and each variant: of the visitors with the
soft conversion, the share who made the hard one at or after it; of the
visitors without it, the share who made the hard one; both with Wilson
intervals at the experiment's ``alpha``. Each treatment's P(hard | soft)
is compared with the control's by the pooled two-proportion z-test. The
procedures are the engine's (:mod:`abconv.stats.frequentist`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from abconv.experiments import Experiment
from abconv.stats.frequentist import Proportion, two_proportion_ztest, wilson_interval
from abconv.vocabulary import GoalKind

if TYPE_CHECKING:
    from abconv.store.counts import PairCounts, ResultCounts


def soft_to_hard(
    experiment: Experiment, counts: ResultCounts, alpha: float
) -> list[dict[str, Any]]:
    """One entry per soft goal × hard goal of the experiment, in the file's order.

    Pairs without counts are zeros. Raises ``ValueError`` when the counts
    contradict each other (more soft visitors than visitors, ...).
    """
    found = {(p.soft, p.hard, p.variant): p for p in counts.pairs}
    softs = [g.key for g in experiment.goals if g.kind is GoalKind.SOFT]
    hards = [g.key for g in experiment.goals if g.kind is GoalKind.HARD]
    entries = []
    for soft in softs:
        for hard in hards:
            arms = {
                v.key: _arms(found.get((soft, hard, v.key)), counts.visitors.get(v.key, 0))
                for v in experiment.variants
            }
            variants = [
                _variant(key, key == experiment.control, arms[key], arms[experiment.control], alpha)
                for key in arms
            ]
            control = next(v for v in variants if v["control"])
            entries.append(
                {
                    "soft": soft,
                    "hard": hard,
                    "summary": summary(soft, hard, control),
                    "variants": variants,
                }
            )
    return entries


def summary(soft: str, hard: str, control: dict[str, Any]) -> str:
    """``"guide → purchase: 21 % of 380 vs 3 % of 9,620"``: the control's two rates."""
    after = f"{_percent(control['rate_after_soft'])} of {control['soft_visitors']:,}"
    without = f"{_percent(control['rate_without_soft'])} of {control['visitors_without_soft']:,}"
    return f"{soft} → {hard}: {after} vs {without}"


def _arms(pair: PairCounts | None, visitors: int) -> tuple[Proportion, Proportion]:
    """(hard among soft visitors, hard among the other visitors)."""
    soft = pair.soft_visitors if pair else 0
    after = pair.hard_after_soft if pair else 0
    without = pair.hard_without_soft if pair else 0
    if soft > visitors:
        raise ValueError(f"soft_to_hard: {soft} visitors with the soft goal of {visitors}")
    return Proportion(soft, after), Proportion(visitors - soft, without)


def _variant(
    key: str,
    control: bool,
    arms: tuple[Proportion, Proportion],
    control_arms: tuple[Proportion, Proportion],
    alpha: float,
) -> dict[str, Any]:
    after, without = arms
    return {
        "key": key,
        "control": control,
        "soft_visitors": after.n,
        "hard_after_soft": after.x,
        "rate_after_soft": after.rate,
        "rate_after_soft_ci": _interval(wilson_interval(after, alpha)),
        "visitors_without_soft": without.n,
        "hard_without_soft": without.x,
        "rate_without_soft": without.rate,
        "rate_without_soft_ci": _interval(wilson_interval(without, alpha)),
        "vs_control": None if control else _versus(after, control_arms[0]),
    }


def _versus(treatment: Proportion, control: Proportion) -> dict[str, Any]:
    """P(hard | soft) of a treatment against the control's: difference and pooled z-test."""
    diff = None if treatment.rate is None or control.rate is None else treatment.rate - control.rate
    return {"abs_diff": diff, "p_value": two_proportion_ztest(treatment, control)}


def _interval(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else list(interval)


def _percent(rate: float | None) -> str:
    """Whole percents, ``"n/a"`` without visitors."""
    return "n/a" if rate is None else f"{rate * 100:.0f} %"
