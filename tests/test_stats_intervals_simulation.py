"""Coverage and sequential power, simulated with a known truth.

The reference here is the truth the simulation draws from, never the code's
own output: 95 % intervals at a fixed 5,000 visitors per arm must cover it
94-96 % of the time with balanced misses, and the sequential method, read
every day for 30 days (1,000 visitors per arm per day, 3 % purchase rate,
stop at the first always-valid p < alpha), must keep an A/A below alpha;
the group-sequential design on the same daily counts keeps the level it
spends and the power its integration predicts.

Every test is seeded.  The default sizes run in a few seconds; the same
tests at ``LARGE`` size run only when asked for with ``pytest -m slow``.
Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from abconv.stats.frequentist import (
    Interval,
    Proportion,
    SampleMoments,
    fieller_lift_interval,
    mean_interval,
    rel_lift_interval,
    wald_diff_interval,
    welch_test,
    wilson_interval,
)
from abconv.stats.group_sequential import (
    UPPER_ALPHA_SHARE,
    LastLook,
    exit_probabilities,
    last_look,
    pocock_spending,
)
from abconv.stats.planning import plan
from abconv.stats.sequential import (
    DEFAULT_TUNING_VISITORS,
    always_valid_p_value,
    boundary_factor,
    tuning_visitors,
)

SEED = 20261129
ALPHA = 0.05
VISITORS = 5000  # per arm, for coverage
SMALL, LARGE = 20_000, 200_000  # simulated experiments for coverage
RATE, LIFT = 0.03, 0.10
DAYS, DAILY = 30, 1000  # sequential: looks, visitors per arm per day
Z_FALSE_FAILURE = 3.29  # one-sided 0.05 % chance that a correct method fails a check


def sizes(small: int, large: int) -> list[object]:
    return [small, pytest.param(large, marks=pytest.mark.slow)]


@pytest.fixture(autouse=True)
def _large_only_when_asked(request: pytest.FixtureRequest) -> None:
    """The ``slow`` runs are for ``-m slow``; a plain ``pytest`` keeps the default sizes."""
    if request.node.get_closest_marker("slow") and "slow" not in request.config.option.markexpr:
        pytest.skip("larger simulation: run with -m slow")


def coverage(intervals: list[Interval | None], truth: float) -> tuple[float, float, float]:
    """(coverage, share with the truth below the interval, share with it above)."""
    lows = np.array([np.nan if ci is None else ci[0] for ci in intervals])
    highs = np.array([np.nan if ci is None else ci[1] for ci in intervals])
    below, above = float(np.mean(truth < lows)), float(np.mean(truth > highs))
    return 1.0 - below - above, below, above


def check_coverage(name: str, figures: tuple[float, float, float], runs: int) -> None:
    covered, below, above = figures
    # Each side should miss alpha / 2; the slack is Z_FALSE_FAILURE binomial standard errors.
    side_slack = Z_FALSE_FAILURE * math.sqrt(ALPHA / 2 * (1 - ALPHA / 2) / runs)
    print(
        f"\n{name}: coverage {covered:.4f}, truth below {below:.4f}, above {above:.4f} ({runs:,})"
    )
    assert 0.94 <= covered <= 0.96
    assert abs(below - ALPHA / 2) <= side_slack + 0.003
    assert abs(above - ALPHA / 2) <= side_slack + 0.003


def binomial_pairs(runs: int, treatment_rate: float) -> list[tuple[Proportion, Proportion]]:
    rng = np.random.default_rng(SEED)
    treated = rng.binomial(VISITORS, treatment_rate, runs)
    control = rng.binomial(VISITORS, RATE, runs)
    return [
        (Proportion(VISITORS, int(t)), Proportion(VISITORS, int(c)))
        for t, c in zip(treated, control, strict=True)
    ]


@pytest.mark.parametrize("runs", sizes(SMALL, LARGE))
def test_wilson_rate_interval_covers(runs: int) -> None:
    pairs = binomial_pairs(runs, RATE * (1 + LIFT))
    figures = coverage([wilson_interval(c, ALPHA) for _, c in pairs], RATE)
    check_coverage("rate (Wilson)", figures, runs)


@pytest.mark.parametrize("runs", sizes(SMALL, LARGE))
def test_wald_difference_interval_covers(runs: int) -> None:
    pairs = binomial_pairs(runs, RATE * (1 + LIFT))
    figures = coverage([wald_diff_interval(t, c, ALPHA) for t, c in pairs], RATE * LIFT)
    check_coverage("difference (Wald)", figures, runs)


@pytest.mark.parametrize("lift", [0.0, LIFT, 0.3])
@pytest.mark.parametrize("runs", sizes(SMALL, LARGE))
def test_fieller_lift_interval_covers_with_balanced_misses(runs: int, lift: float) -> None:
    pairs = binomial_pairs(runs, RATE * (1 + lift))
    figures = coverage([rel_lift_interval(t, c, ALPHA) for t, c in pairs], lift)
    check_coverage(f"relative lift {lift:+.0%} (Fieller)", figures, runs)


def lognormal_value_moments(
    runs: int, sigma: float, seed: int = SEED, cubes: bool = False
) -> tuple[list[SampleMoments], float]:
    """Per-visitor value: 0 without an order, else one log-normal order (median 50)."""
    rng = np.random.default_rng(seed)
    orders = rng.binomial(VISITORS, RATE, runs)
    values = rng.lognormal(math.log(50.0), sigma, int(orders.sum()))
    owner = np.repeat(np.arange(runs), orders)
    sums = np.bincount(owner, weights=values, minlength=runs)
    squares = np.bincount(owner, weights=values**2, minlength=runs)
    third = np.bincount(owner, weights=values**3, minlength=runs)
    truth = RATE * 50.0 * math.exp(sigma**2 / 2)  # mean of a log-normal times the rate
    moments = [
        SampleMoments(VISITORS, float(s), float(q), float(c) if cubes else None)
        for s, q, c in zip(sums, squares, third, strict=True)
    ]
    return moments, truth


SKEWED_SIDE_MISS = (0.015, 0.035)
"""Each side's misses for the skew-corrected value interval (the others: 2.5 % ± slack).

Hall's correction uses the sample skewness, which a long tail makes
noisy and low, so some lopsidedness stays: 2.4 % below / 3.2 % above at
sigma 1 in the large run (Student's t: 0.9 % / 6.1 %)."""


@pytest.mark.parametrize("runs", sizes(SMALL, LARGE))
def test_value_per_visitor_interval_covers_skewed_values(runs: int) -> None:
    """Hall's interval with Σv³ (README, Statistics in brief); Student's t without it."""
    moments, truth = lognormal_value_moments(runs, 1.0, cubes=True)
    covered, below, above = coverage([mean_interval(m, ALPHA) for m in moments], truth)
    plain, _ = lognormal_value_moments(runs, 1.0)
    student = coverage([mean_interval(m, ALPHA) for m in plain], truth)
    print(
        f"\nvalue per visitor, log-normal sigma 1 ({runs:,}): Hall {covered:.4f} "
        f"(below {below:.4f}, above {above:.4f}); Student's t {student[0]:.4f} "
        f"(below {student[1]:.4f}, above {student[2]:.4f})"
    )
    assert 0.94 <= covered <= 0.96
    low, high = SKEWED_SIDE_MISS
    assert low <= below <= high and low <= above <= high
    assert abs(above - below) < abs(student[2] - student[1])


@pytest.mark.parametrize("runs", sizes(SMALL, LARGE))
def test_welch_value_difference_interval_covers_skewed_values(runs: int) -> None:
    """Two arms with the same skewed orders: the skewness of the difference mostly cancels."""
    treated, truth = lognormal_value_moments(runs, 1.0, seed=SEED + 1)
    control, truth_control = lognormal_value_moments(runs, 1.0)
    intervals = [welch_test(t, c, ALPHA) for t, c in zip(treated, control, strict=True)]
    figures = coverage([None if w is None else w.ci for w in intervals], truth - truth_control)
    check_coverage("value per visitor difference (Welch), log-normal sigma 1", figures, runs)


# --- sequential: daily looks, stop at the first significance -----------------------------


def daily_conversions(runs: int, treatment_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative conversions per day, (runs, DAYS) each, for treatment and control."""
    rng = np.random.default_rng(SEED)
    treated = rng.binomial(DAILY, treatment_rate, (runs, DAYS)).cumsum(axis=1)
    control = rng.binomial(DAILY, RATE, (runs, DAYS)).cumsum(axis=1)
    return treated, control


def first_significant_day(
    treated: np.ndarray, control: np.ndarray, tuning: Callable[[int, int], int]
) -> np.ndarray:
    """Day (1-based) of the first always-valid ``p < ALPHA``, or 0 when never.

    ``tuning(visitors_per_arm, control_conversions)`` gives ``n_star``.
    """
    runs = treated.shape[0]
    found = np.zeros(runs, dtype=int)
    for day in range(DAYS):
        n = DAILY * (day + 1)
        for run in np.flatnonzero(found == 0):
            xt, xc = int(treated[run, day]), int(control[run, day])
            pt, pc = xt / n, xc / n
            variance = (pt * (1 - pt) + pc * (1 - pc)) / n
            p_value = always_valid_p_value(pt - pc, variance, 2 * n, ALPHA, tuning(n, xc))
            if p_value is not None and p_value < ALPHA:
                found[run] = day + 1
    return found


def planned_tuning(visitors: int, control_conversions: int) -> int:
    """What :func:`abconv.stats.analysis.analyze` uses: the default plan's two arms."""
    needed = plan([visitors, visitors], visitors, control_conversions, 0.10, ALPHA, 0.8)
    return tuning_visitors(needed.visitors_needed_per_variant)


def significant_shares(treated: np.ndarray, control: np.ndarray) -> tuple[float, float]:
    """Shares of experiments significant at some look: plan-tuned, and tuned at 5,000."""
    planned = first_significant_day(treated, control, planned_tuning)
    default = first_significant_day(treated, control, lambda *_: DEFAULT_TUNING_VISITORS)
    return float(np.mean(planned > 0)), float(np.mean(default > 0))


@pytest.mark.parametrize("runs", sizes(4000, 40_000))
def test_sequential_aa_with_daily_looks_keeps_alpha(runs: int) -> None:
    treated, control = daily_conversions(runs, RATE)
    rate, default = significant_shares(treated, control)
    print(
        f"\nsequential A/A, {DAYS} daily looks: significant in {rate:.4f} plan-tuned, "
        f"{default:.4f} tuned at 5,000 ({runs:,})"
    )
    assert rate <= ALPHA and default <= ALPHA


@pytest.mark.parametrize("runs", sizes(4000, 40_000))
def test_sequential_power_for_a_true_lift(runs: int) -> None:
    treated, control = daily_conversions(runs, RATE * (1 + LIFT))
    planned, default = significant_shares(treated, control)
    print(
        f"\nsequential power, +{LIFT:.0%} on {RATE:.0%}, by day {DAYS}: "
        f"plan-tuned {planned:.4f}, tuned at 5,000 {default:.4f} ({runs:,})"
    )
    slack = Z_FALSE_FAILURE * math.sqrt(0.25 / runs)
    assert planned >= default - slack
    assert planned >= 0.20 - slack


@pytest.mark.parametrize("runs", sizes(4000, 40_000))
def test_no_tuning_of_the_mixture_reaches_the_target_power(runs: int) -> None:
    """Why the 0.40 target is out of reach of an always-valid test at 5 % (README)."""
    treated, control = daily_conversions(runs, RATE * (1 + LIFT))
    best = 0.0
    for n_star in (2_000, 10_000, 20_000, 40_000, 60_000, 106_000, 400_000):
        found = first_significant_day(treated, control, lambda *_, s=n_star: s)
        power = float(np.mean(found > 0))
        print(f"\nn_star {n_star:>7,}: power {power:.4f}")
        best = max(best, power)
    assert best < 0.40


@pytest.mark.parametrize("runs", sizes(4000, 40_000))
def test_sequential_sequences_cover_the_truth_at_every_daily_look(runs: int) -> None:
    """The difference's and the (Fieller) lift's sequences: one miss at any look counts."""
    treated, control = daily_conversions(runs, RATE * (1 + LIFT))
    missed_diff = np.zeros(runs, dtype=bool)
    missed_lift = np.zeros(runs, dtype=bool)
    for day in range(DAYS):
        n = DAILY * (day + 1)
        for run in range(runs):
            t = Proportion(n, int(treated[run, day]))
            c = Proportion(n, int(control[run, day]))
            factor = boundary_factor(2 * n, ALPHA, planned_tuning(n, c.x))
            half = math.sqrt(factor * ((t.variance or 0.0) + (c.variance or 0.0)))
            diff = t.x / n - c.x / n
            missed_diff[run] |= abs(diff - RATE * LIFT) > half
            lift_ci = fieller_lift_interval(t, c, factor)
            missed_lift[run] |= lift_ci is not None and not lift_ci[0] <= LIFT <= lift_ci[1]
    diff_rate, lift_rate = float(missed_diff.mean()), float(missed_lift.mean())
    print(
        f"\nsequences missing the truth at some of {DAYS} daily looks: "
        f"difference {diff_rate:.4f}, relative lift {lift_rate:.4f} ({runs:,})"
    )
    assert diff_rate <= ALPHA and lift_rate <= ALPHA


# --- group-sequential design: the same daily binomial counts -----------------------------


def planned_fractions(visitors_per_arm: int) -> list[float]:
    """Information fractions of the 30 daily looks for the plan at the true 3 % rate."""
    needed = plan(
        [visitors_per_arm] * 2, visitors_per_arm, round(RATE * visitors_per_arm), 0.10, ALPHA, 0.8
    )
    planned = needed.visitors_needed_per_variant or 1
    return [DAILY * (day + 1) / planned for day in range(DAYS)]


def design(fractions: list[float]) -> LastLook:
    """The analysis's design: Pocock-type spending, ``UPPER_ALPHA_SHARE`` of alpha above."""
    return last_look(fractions, ALPHA, 0.0, pocock_spending, UPPER_ALPHA_SHARE)


def first_crossing(treated: np.ndarray, control: np.ndarray) -> np.ndarray:
    """+1 / -1 for the first crossing of the design's boundaries above / below, else 0."""
    n = DAILY * np.arange(1, DAYS + 1)
    pt, pc = treated / n, control / n
    variance = (pt * (1 - pt) + pc * (1 - pc)) / n
    z = np.divide(pt - pc, np.sqrt(variance), out=np.zeros_like(pt), where=variance > 0)
    bounds = design(planned_fractions(DAILY * DAYS))
    crossed = (z >= np.array(bounds.boundaries)) | (z <= -np.array(bounds.lower))
    first = crossed.argmax(axis=1)
    sign = np.sign(z[np.arange(len(z)), first])
    result: np.ndarray = np.where(crossed.any(axis=1), sign, 0)
    return result


@pytest.mark.parametrize("runs", sizes(40_000, 400_000))
def test_group_sequential_with_binomial_counts(runs: int) -> None:
    """A/A and power of the design on binomial counts match the Brownian-motion integration."""
    fractions = planned_fractions(DAILY * DAYS)
    bounds = design(fractions)
    aa = first_crossing(*daily_conversions(runs, RATE))
    found = first_crossing(*daily_conversions(runs, RATE * (1 + LIFT)))
    se = math.sqrt(
        (RATE * (1 - RATE) + RATE * (1 + LIFT) * (1 - RATE * (1 + LIFT))) / (DAILY * DAYS)
    )
    drift = RATE * LIFT / se / math.sqrt(fractions[-1])  # E[Z] at the plan
    exits = exit_probabilities(fractions, bounds.boundaries, drift, bounds.lower)
    integrated = sum(up for up, _ in exits)
    false_rate, power = float(np.mean(aa != 0)), float(np.mean(found > 0))
    print(
        f"\ngroup-sequential (Pocock-type, {UPPER_ALPHA_SHARE:.0%} of alpha above), {DAYS} daily "
        f"looks ({runs:,}): A/A {false_rate:.4f} (above {np.mean(aa > 0):.4f}, below "
        f"{np.mean(aa < 0):.4f}; spent {pocock_spending(fractions[-1], ALPHA):.4f}), "
        f"power {power:.4f} (integration {integrated:.4f})"
    )
    slack = Z_FALSE_FAILURE * math.sqrt(0.25 / runs)
    assert false_rate <= pocock_spending(fractions[-1], ALPHA) + slack
    assert abs(power - integrated) <= slack + 0.01
