"""GrowthBook's Bayesian engine on the counts of the decision simulation (README figures).

Not part of abconv and not a dependency: run it in a separate environment
with ``gbstats`` installed (``python -m venv /tmp/gbvenv && /tmp/gbvenv/bin/pip
install gbstats``), from the repository root:

    /tmp/gbvenv/bin/python bench/gbstats_decisions.py [EXPERIMENTS]

It draws the counts of the A/A and "+10 % on purchases" scenarios as
``tests/decision_simulation.py`` does (1,000 visitors per arm per day, 3 %,
30 daily looks) and applies GrowthBook's default reading: a variation wins
or loses once its chance to win is above 95 % or below 5 % (relative effect,
improper flat prior, ``EffectBayesianABTest``).  The guardrail scenarios
have no counterpart there.
"""

from __future__ import annotations

import sys

import numpy as np
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
from gbstats.models.statistics import ProportionStatistic

VISITORS_PER_DAY = 1000
DAYS = 30
RATE = 0.03
THRESHOLD = 0.95


def first_call(control: np.ndarray, treatment: np.ndarray) -> str | None:
    """``"treatment"``, ``"control"`` or ``None``: the first look past the threshold."""
    for day in range(DAYS):
        n = VISITORS_PER_DAY * (day + 1)
        test = EffectBayesianABTest(
            ProportionStatistic(n=n, sum=int(control[day])),
            ProportionStatistic(n=n, sum=int(treatment[day])),
            EffectBayesianConfig(),
        )
        chance = test.compute_result().chance_to_win
        if chance >= THRESHOLD:
            return "treatment"
        if chance <= 1.0 - THRESHOLD:
            return "control"
    return None


def share(lift: float, experiments: int, seed: int, counted: set[str]) -> float:
    rng = np.random.default_rng(seed)
    rates = np.array([RATE, RATE * (1.0 + lift)])
    daily = rng.binomial(VISITORS_PER_DAY, rates, size=(experiments, DAYS, 2))
    counts = np.cumsum(daily, axis=1)
    calls = [first_call(counts[e, :, 0], counts[e, :, 1]) for e in range(experiments)]
    return sum(call in counted for call in calls) / experiments


def main(argv: list[str]) -> None:
    experiments = int(argv[1]) if len(argv) > 1 else 2000
    a_a = share(0.0, experiments, 1, {"treatment", "control"})
    power = share(0.10, experiments, 2, {"treatment"})
    print(f"A/A: a winner is declared at some look: {a_a:.1%}")
    print(f"true +10 % on purchases: winner by day 30: {power:.1%}")


if __name__ == "__main__":
    main(sys.argv)
