"""Bayesian figures against Monte Carlo, a closed form and scipy.

Monte Carlo uses 2,000,000 draws per arm: the standard error of a
probability is at most 0.00035, so the ±0.002 tolerance is > 5.6 standard
errors (false failure rate < 1e-7 per figure).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import integrate, special, stats

from abconv.stats.bayesian import BetaPosterior, compare_beta_posteriors, normal_chance_to_beat

SEED = 8675309
DRAWS = 2_000_000
TOLERANCE = 0.002

ARMS = [
    [(1000, 50), (1000, 65), (1000, 55)],
    [(0, 0), (10, 0)],
    [(100, 100), (100, 99)],
    [(1_000_000, 10_000), (100, 2), (5000, 60)],
    [(1000, 0), (1000, 1000)],
    [(200, 20), (200, 20), (3, 3), (50, 4), (400, 45)],
    [(10_000, 1), (10_000, 0)],
]


def monte_carlo(arms: list[tuple[int, int]]) -> tuple[list[float], list[float], list[float]]:
    """Chance to beat arm 0, probability best and expected loss from seeded draws."""
    rng = np.random.default_rng(SEED)
    draws = np.array([rng.beta(1 + x, 1 + n - x, DRAWS) for n, x in arms])
    best = draws.max(axis=0)
    beat = [float(np.mean(draws[i] > draws[0])) for i in range(len(arms))]
    prob_best = [float(np.mean(draws.argmax(axis=0) == i)) for i in range(len(arms))]
    loss = [float(np.mean(best - draws[i])) for i in range(len(arms))]
    return beat, prob_best, loss


@pytest.mark.parametrize("arms", ARMS)
def test_quadrature_matches_monte_carlo(arms: list[tuple[int, int]]) -> None:
    result = compare_beta_posteriors([BetaPosterior.from_counts(n, x) for n, x in arms], 0)
    beat, prob_best, loss = monte_carlo(arms)  # source: seeded Monte Carlo, 2e6 draws
    assert result.chance_to_beat_control[0] is None
    assert result.chance_to_beat_control[1:] == pytest.approx(beat[1:], abs=TOLERANCE)
    assert result.prob_best == pytest.approx(prob_best, abs=TOLERANCE)
    # expected loss: MC standard error < 2e-4 here; tolerance 5e-4 absolute or 1 % relative
    for got, expected in zip(result.expected_loss, loss, strict=True):
        assert got == pytest.approx(expected, abs=5e-4, rel=0.01)
    assert sum(result.prob_best) == pytest.approx(1.0, abs=1e-9)


def miller_chance_to_beat(a_t: int, b_t: int, a_c: int, b_c: int) -> float:
    """P(p_t > p_c) in closed form for integer a_t.

    Source: Miller (2015), "Formulas for Bayesian A/B testing".
    """
    i = np.arange(a_t)
    terms = (
        special.betaln(a_c + i, b_c + b_t)
        - np.log(b_t + i)
        - special.betaln(1 + i, b_t)
        - special.betaln(a_c, b_c)
    )
    return float(np.exp(terms).sum())


@pytest.mark.parametrize(
    ("treatment", "control"),
    [
        ((1000, 65), (1000, 50)),
        ((100, 3), (120, 3)),
        ((5000, 260), (5000, 250)),
        ((50, 0), (40, 1)),
    ],
)
def test_two_arm_chance_matches_closed_form(
    treatment: tuple[int, int], control: tuple[int, int]
) -> None:
    (nt, xt), (nc, xc) = treatment, control
    result = compare_beta_posteriors(
        [BetaPosterior.from_counts(nc, xc), BetaPosterior.from_counts(nt, xt)], 0
    )
    # source: Evan Miller's exact sum for P(p_B > p_A) with Beta(1 + x, 1 + n - x)
    expected = miller_chance_to_beat(1 + xt, 1 + nt - xt, 1 + xc, 1 + nc - xc)
    assert result.chance_to_beat_control[1] == pytest.approx(expected, abs=5e-4)
    assert result.prob_best[1] == pytest.approx(expected, abs=5e-4)


def test_single_arm_is_best_and_loses_nothing() -> None:
    result = compare_beta_posteriors([BetaPosterior.from_counts(30, 4)], 0)
    assert result.prob_best == (1.0,)
    assert result.expected_loss == (0.0,)
    assert result.chance_to_beat_control == (None,)


def test_identical_arms_split_evenly() -> None:
    posterior = BetaPosterior.from_counts(2000, 100)
    result = compare_beta_posteriors([posterior, posterior, posterior], 1)
    assert result.prob_best == pytest.approx([1 / 3] * 3, abs=1e-6)
    assert result.chance_to_beat_control[0] == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("arms", [ARMS[0], ARMS[3], ARMS[5]], ids=["3-arms", "far-apart", "5-arms"])
def test_quadrature_matches_scipy_adaptive_quadrature(arms: list[tuple[int, int]]) -> None:
    result = compare_beta_posteriors([BetaPosterior.from_counts(n, x) for n, x in arms], 0)
    beat, best, loss = beta_quadrature(arms)
    # Tolerance: the module's documented accuracy, 1e-4 (a loss is in rate units, also
    # an integral of probabilities: off by 2.6e-5 with Beta(4, 1) among the 5 arms).
    assert result.chance_to_beat_control[1:] == pytest.approx(beat[1:], abs=1e-4)
    assert result.prob_best == pytest.approx(best, abs=1e-4)
    assert result.expected_loss == pytest.approx(loss, abs=1e-4)


def beta_quadrature(arms: list[tuple[int, int]]) -> tuple[list[float], list[float], list[float]]:
    """Chance to beat arm 0, probability best and expected loss of Beta(1 + x, 1 + n - x)
    arms by scipy.integrate.quad, independent of the module's shared grid.

    Source: P(i beats 0) = ∫ f_i F_0; P(i best) = ∫ f_i Π_{j≠i} F_j; E[max_j p_j] =
    ∫ (1 - Π_j F_j) over [0, 1], and the loss of choosing i is E[max_j p_j] - E[p_i].
    Integrated over where any posterior has mass (beyond 1e-15 of its tails)."""
    posteriors = [stats.beta(1 + x, 1 + n - x) for n, x in arms]
    low = min(p.ppf(1e-15) for p in posteriors)
    high = max(p.isf(1e-15) for p in posteriors)
    # Breakpoints at each posterior's bulk, so that quad sees every narrow peak.
    peaks = sorted({float(q) for p in posteriors for q in p.ppf([0.001, 0.5, 0.999])})

    def integral(function: Any) -> float:
        return float(integrate.quad(function, low, high, points=peaks, limit=1000, epsabs=1e-12)[0])

    def others(t: float, i: int) -> float:
        return math.prod(p.cdf(t) for j, p in enumerate(posteriors) if j != i)

    beat = [integral(lambda t, p=p: p.pdf(t) * posteriors[0].cdf(t)) for p in posteriors]
    best = [integral(lambda t, i=i, p=p: p.pdf(t) * others(t, i)) for i, p in enumerate(posteriors)]
    top = low + integral(lambda t: 1 - math.prod(p.cdf(t) for p in posteriors))
    return beat, best, [top - p.mean() for p in posteriors]


def test_posterior_moments() -> None:
    posterior = BetaPosterior.from_counts(10, 3)
    assert (posterior.a, posterior.b) == (4.0, 8.0)
    assert posterior.mean == pytest.approx(stats.beta(4, 8).mean())  # source: scipy beta
    assert posterior.sd == pytest.approx(stats.beta(4, 8).std())
    with pytest.raises(ValueError):
        BetaPosterior.from_counts(10, 11)
    with pytest.raises(ValueError):
        compare_beta_posteriors([], 0)


@pytest.mark.parametrize(("diff", "se"), [(1.0, 0.5), (-0.2, 0.3), (0.0, 1.0)])
def test_normal_chance_to_beat(diff: float, se: float) -> None:
    # source: scipy norm.cdf(diff / se) (flat prior, normal likelihood)
    assert normal_chance_to_beat(diff, se) == pytest.approx(stats.norm.cdf(diff / se))


def test_normal_chance_undefined_without_spread() -> None:
    assert normal_chance_to_beat(1.0, 0.0) is None
    assert not math.isnan(normal_chance_to_beat(0.0, 1e-300) or 0.0)
