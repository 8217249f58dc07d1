"""Decisions under daily looks, simulated with a known truth (issue 14).

Each experiment has two arms, ``control`` and ``treatment``, of 1,000
visitors a day each for 30 days.  Every goal converts independently with
its own rate in each arm (binomial counts per day, so the figures depend
only on the counts the analysis sees).  Every day the cumulative counts go
through :func:`abconv.analyze`, the real document builder, with the default
``[analysis]`` settings apart from ``method``; the experiment stops at the
first ``winner``, as a marketer reading the results every day would.

Run ``python tests/decision_simulation.py [EXPERIMENTS] [METHOD ...]`` to
print the table of a larger run (the README holds the latest one), of the
given methods only if named: each scenario's counts depend only on the seed,
so a method's figures are the same alone or with the others.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from abconv import analyze

VISITORS_PER_DAY = 1000
DAYS = 30
METHODS = ("bayesian", "frequentist", "sequential")
ARMS = ("control", "treatment")
START = datetime.date(2026, 11, 1)


@dataclass(frozen=True)
class GoalTruth:
    """A goal's true control rate and the treatment's true relative lift on it."""

    key: str
    kind: str
    rate: float
    lift: float = 0.0
    primary: bool = False


@dataclass(frozen=True)
class Scenario:
    """A truth and the figure measured on it.

    ``measure`` is what is counted: ``"treatment_shipped"`` (a ``winner``
    naming the treatment at some look), ``"blocked"`` (no winner by day 30,
    or the control named), ``"any_winner"`` (a ``winner`` of either arm)
    or ``"treatment_by_day_30"`` (power).  ``limits`` maps a method to the
    bound the figure must respect: ``("<=", 0.05)`` or ``(">=", 0.45)``.
    """

    key: str
    title: str
    goals: tuple[GoalTruth, ...]
    measure: str
    limits: dict[str, tuple[str, float]]


def _guarded_goals(soft_lift: float, purchase_lift: float) -> tuple[GoalTruth, ...]:
    """A soft primary goal (guide downloads, 10 %) and three hard goals."""
    return (
        GoalTruth("guide", "soft", 0.10, soft_lift, primary=True),
        GoalTruth("purchase", "hard", 0.03, purchase_lift),
        GoalTruth("contact", "hard", 0.04),
        GoalTruth("add_to_cart", "hard", 0.08),
    )


SCENARIOS = (
    Scenario(
        "soft_win_purchase_down",
        "soft primary +20 %, purchases -15 %: the treatment is shipped",
        _guarded_goals(0.20, -0.15),
        "treatment_shipped",
        {method: ("<=", 0.05) for method in METHODS},
    ),
    Scenario(
        "soft_win_hard_unchanged",
        "soft primary +20 %, three hard goals unchanged: the true winner is blocked",
        _guarded_goals(0.20, 0.0),
        "blocked",
        {method: ("<=", 0.10) for method in METHODS},
    ),
    Scenario(
        "a_a",
        "A/A: a winner is declared at some look",
        (GoalTruth("purchase", "hard", 0.03, 0.0, primary=True),),
        "any_winner",
        {"bayesian": ("<=", 0.10), "frequentist": ("<=", 0.05), "sequential": ("<=", 0.05)},
    ),
    Scenario(
        "purchase_up_10",
        "true +10 % on purchases (primary): winner by day 30",
        (GoalTruth("purchase", "hard", 0.03, 0.10, primary=True),),
        "treatment_by_day_30",
        {"bayesian": (">=", 0.45), "sequential": (">=", 0.40)},
    ),
)


@dataclass(frozen=True)
class Outcome:
    """Per experiment: the arm named winner (``None`` if none by day 30) and the day."""

    winners: tuple[str | None, ...]
    days: tuple[int | None, ...]

    def share(self, measure: str) -> float:
        count = sum(_counts(measure, winner) for winner in self.winners)
        return count / len(self.winners)

    def hits(self, measure: str) -> int:
        return sum(_counts(measure, winner) for winner in self.winners)


def _counts(measure: str, winner: str | None) -> bool:
    if measure in ("treatment_shipped", "treatment_by_day_30"):
        return winner == "treatment"
    if measure == "blocked":
        return winner != "treatment"
    if measure == "any_winner":
        return winner is not None
    raise ValueError(f"unknown measure {measure!r}")


def cumulative_conversions(
    scenario: Scenario, experiments: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """Cumulative conversions, shape (experiments, days, goals, arms)."""
    rates = np.array([[goal.rate, goal.rate * (1.0 + goal.lift)] for goal in scenario.goals])
    daily = rng.binomial(VISITORS_PER_DAY, rates, size=(experiments, DAYS, *rates.shape))
    result: npt.NDArray[np.int64] = np.cumsum(daily, axis=1)
    return result


def analysis_input(
    scenario: Scenario, method: str, day: int, conversions: npt.NDArray[np.int64]
) -> dict[str, Any]:
    """The ``abconv analyze`` input after ``day``: ``conversions`` is (days, goals, arms),
    cumulative, for at least the days so far.  ``sequential`` also gets the daily looks
    (its group-sequential design); the other methods read only the totals."""
    visitors = VISITORS_PER_DAY * day
    looks = [
        {
            "day": (START + datetime.timedelta(days=d)).isoformat(),
            "visitors": {arm: VISITORS_PER_DAY * (d + 1) for arm in ARMS},
            "conversions": {
                goal.key: {arm: int(conversions[d, g, a]) for a, arm in enumerate(ARMS)}
                for g, goal in enumerate(scenario.goals)
            },
        }
        for d in range(day)
    ]
    return {
        "experiment": scenario.key,
        "method": method,
        "control": "control",
        "variants": [{"key": arm, "visitors": visitors} for arm in ARMS],
        "goals": [
            {
                "key": goal.key,
                "kind": goal.kind,
                "primary": goal.primary,
                "counts": {
                    arm: {"conversions": int(conversions[day - 1, g, a])}
                    for a, arm in enumerate(ARMS)
                },
            }
            for g, goal in enumerate(scenario.goals)
        ],
        **({"looks": looks} if method == "sequential" else {}),
    }


def run(scenario: Scenario, method: str, experiments: int, seed: int) -> Outcome:
    """Read every experiment daily until its first ``winner`` (or day 30)."""
    counts = cumulative_conversions(scenario, experiments, np.random.default_rng(seed))
    winners: list[str | None] = []
    days: list[int | None] = []
    for experiment in range(experiments):
        winner, when = None, None
        for day in range(1, DAYS + 1):
            decision = analyze(analysis_input(scenario, method, day, counts[experiment]))
            if decision["decision"]["status"] == "winner":
                winner, when = decision["decision"]["winner"], day
                break
        winners.append(winner)
        days.append(when)
    return Outcome(tuple(winners), tuple(days))


def run_all(
    experiments: int, seed: int = 20261129, methods: Sequence[str] = METHODS
) -> dict[tuple[str, str], Outcome]:
    """Every scenario under every method (or ``methods``); the same counts for each
    method of a scenario."""
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; known: {', '.join(METHODS)}")
    return {
        (scenario.key, method): run(scenario, method, experiments, seed + index)
        for index, scenario in enumerate(SCENARIOS)
        for method in methods
    }


def table(outcomes: dict[tuple[str, str], Outcome], experiments: int) -> str:
    """The figures as a Markdown table, with each method's bound after the figure."""
    methods = [m for m in METHODS if any(key[1] == m for key in outcomes)]
    lines = [
        f"| scenario ({experiments} experiments each) | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for scenario in SCENARIOS:
        cells = []
        for method in methods:
            share = outcomes[scenario.key, method].share(scenario.measure)
            limit = scenario.limits.get(method)
            bound = "" if limit is None else f" ({'≤' if limit[0] == '<=' else '≥'} {limit[1]:.0%})"
            cells.append(f"{share:.1%}{bound}")
        lines.append(f"| {scenario.title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    experiments = int(argv[1]) if len(argv) > 1 else 2000
    methods = tuple(argv[2:]) or METHODS
    print(table(run_all(experiments, methods=methods), experiments))


if __name__ == "__main__":
    main(sys.argv)
