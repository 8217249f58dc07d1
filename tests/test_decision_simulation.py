"""The decision rules hold up under daily looks (issue 14), in a simulation with a known truth.

The default run reads ``DEFAULT_EXPERIMENTS`` experiments per scenario and
method (under a minute on two idle cores); ``pytest -m slow`` adds the larger
run behind the README's table (``FULL_EXPERIMENTS``).  Run with ``-s`` to see the table.
``sequential`` reads the daily looks, so it is the group-sequential design
(:mod:`abconv.stats.group_sequential`).

Tolerance: a figure bounded above by b fails only when its count exceeds
the 99.9 % quantile of Binomial(experiments, b), and a figure bounded below
only when its count falls under the 0.1 % quantile, so a rule whose true
figure sits exactly on the bound fails at most 0.1 % of runs.  The seed is
fixed, so a given run is deterministic.
"""

from __future__ import annotations

import pytest
from scipy import stats

from tests.decision_simulation import METHODS, SCENARIOS, Outcome, run_all, table

DEFAULT_EXPERIMENTS = 100
FULL_EXPERIMENTS = 2000
FALSE_FAILURE = 0.001


def within(outcome: Outcome, measure: str, limit: tuple[str, float]) -> bool:
    """Whether the count is compatible with the bound (see the module docstring)."""
    hits, n = outcome.hits(measure), len(outcome.winners)
    relation, bound = limit
    if relation == "<=":
        return bool(hits <= stats.binom.ppf(1.0 - FALSE_FAILURE, n, bound))
    return bool(hits >= stats.binom.ppf(FALSE_FAILURE, n, bound))


def check(
    outcomes: dict[tuple[str, str], Outcome],
    experiments: int,
    only: set[tuple[str, str]] | None = None,
) -> None:
    """Every bounded figure (or those in ``only``) within its tolerance."""
    print("\n" + table(outcomes, experiments))
    failures = [
        f"{scenario.key}/{method}: {outcomes[scenario.key, method].share(scenario.measure):.1%} "
        f"against {limit[0]} {limit[1]:.0%}"
        for scenario in SCENARIOS
        for method in METHODS
        if (limit := scenario.limits.get(method)) is not None
        and (only is None or (scenario.key, method) in only)
        and not within(outcomes[scenario.key, method], scenario.measure, limit)
    ]
    assert not failures, failures


@pytest.fixture(scope="module")
def default_run() -> dict[tuple[str, str], Outcome]:
    return run_all(DEFAULT_EXPERIMENTS)


SEQUENTIAL_POWER = ("purchase_up_10", "sequential")
"""The asymmetric group-sequential design finds a true +10 % by day 30 in 43.8 % by
numerical integration (README, 'Sequential testing')."""


def test_every_figure_holds_in_the_default_run(default_run: dict[tuple[str, str], Outcome]) -> None:
    check(default_run, DEFAULT_EXPERIMENTS)


def test_the_tolerance_fails_a_rule_clearly_over_its_bound() -> None:
    """The check is not vacuous: 15 % against a 5 % bound fails at the default size."""
    hits = DEFAULT_EXPERIMENTS * 15 // 100
    misses = DEFAULT_EXPERIMENTS - hits
    outcome = Outcome(("treatment",) * hits + (None,) * misses, (1,) * hits + (None,) * misses)
    assert not within(outcome, "treatment_shipped", ("<=", 0.05))
    assert within(outcome, "treatment_shipped", ("<=", 0.25))


@pytest.mark.slow
def test_every_figure_holds_in_the_full_run(request: pytest.FixtureRequest) -> None:
    if "slow" not in request.config.option.markexpr:
        pytest.skip("the full decision simulation (about 30 minutes): run with -m slow")
    outcomes = run_all(FULL_EXPERIMENTS)
    check(outcomes, FULL_EXPERIMENTS)
    # The tolerance would pass a true power of about 37 % against 40 %: the full run's
    # figure itself must meet the 40 %.
    power = outcomes[SEQUENTIAL_POWER].share("treatment_by_day_30")
    assert power >= 0.40, f"sequential power {power:.1%}: update the README and issue note"
