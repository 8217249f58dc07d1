"""Confidence sequences: closed form, p-value duality, and an A/A peeking simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from abconv.stats import analyze
from abconv.stats.frequentist import Proportion, two_proportion_ztest
from abconv.stats.sequential import (
    DEFAULT_TUNING_VISITORS,
    always_valid_p_value,
    confidence_sequence,
    mixture_rho,
    tuning_visitors,
)
from tests.test_stats_frequentist import fieller_by_root_finding

SEED = 1234567
ALPHA = 0.05
SIMULATIONS = 2000
DAYS = 30
VISITORS_PER_DAY = 300  # per arm
RATE = 0.05
# Binomial standard error of a false positive rate near alpha over SIMULATIONS runs;
# 3.29 of them is a one-sided false failure rate of 0.05 %.
SLACK = 3.29 * math.sqrt(ALPHA * (1 - ALPHA) / SIMULATIONS)


def test_mixture_rho_closed_form() -> None:
    # source: Waudby-Smith et al. (2023) eq. (9): rho² = (-2 ln a + ln(-2 ln a + 1)) / n*
    expected = math.sqrt((-2 * math.log(0.05) + math.log(-2 * math.log(0.05) + 1)) / 5000)
    assert mixture_rho(0.05, 5000) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("estimate", "variance", "visitors"), [(0.01, 4e-5, 2000), (-3.0, 2.5, 150)]
)
def test_confidence_sequence_closed_form(estimate: float, variance: float, visitors: int) -> None:
    rho2 = mixture_rho(ALPHA) ** 2
    scaled = visitors * rho2
    # source: Waudby-Smith et al. (2023) Theorem 2.2, written with the variance of the estimate
    half = math.sqrt(variance * 2 * (scaled + 1) / scaled * math.log(math.sqrt(scaled + 1) / ALPHA))
    got = confidence_sequence(estimate, variance, visitors, ALPHA)
    assert got == pytest.approx((estimate - half, estimate + half))


def test_sequence_is_wider_than_the_fixed_interval() -> None:
    low, high = confidence_sequence(0.0, 1e-4, 10_000, ALPHA)
    assert high - low > 2 * 1.96 * 0.01


@pytest.mark.parametrize("estimate", [0.0, 0.001, 0.01, 0.02, 0.05, -0.03])
def test_p_value_is_dual_to_the_sequence(estimate: float) -> None:
    variance, visitors = 1e-4, 8000
    p_value = always_valid_p_value(estimate, variance, visitors, ALPHA)
    assert p_value is not None and 0.0 <= p_value <= 1.0
    low, high = confidence_sequence(estimate, variance, visitors, ALPHA)
    assert (p_value < ALPHA) == (low > 0.0 or high < 0.0)


def test_p_value_at_the_boundary_equals_alpha() -> None:
    low, _ = confidence_sequence(0.0, 1e-4, 5000, ALPHA)
    assert always_valid_p_value(-low, 1e-4, 5000, ALPHA) == pytest.approx(ALPHA)


def test_zero_variance_and_misuse() -> None:
    assert always_valid_p_value(0.1, 0.0, 100, ALPHA) is None
    assert confidence_sequence(0.1, 0.0, 100, ALPHA) == (0.1, 0.1)
    with pytest.raises(ValueError):
        confidence_sequence(0.0, 1.0, 0, ALPHA)
    with pytest.raises(ValueError):
        mixture_rho(1.5)


def simulate_daily_counts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative conversions of two identical arms, one row per experiment, one column per day."""
    rng = np.random.default_rng(SEED)
    daily = rng.binomial(VISITORS_PER_DAY, RATE, size=(2, SIMULATIONS, DAYS))
    cumulative = daily.cumsum(axis=2)
    visitors = VISITORS_PER_DAY * np.arange(1, DAYS + 1)
    return cumulative[0], cumulative[1], visitors


def test_aa_peeking_sequential_keeps_alpha_and_ztest_does_not() -> None:
    treatment, control, visitors = simulate_daily_counts()
    pt, pc = treatment / visitors, control / visitors
    variance = (pt * (1 - pt) + pc * (1 - pc)) / visitors
    sequential_hit = np.zeros(SIMULATIONS, dtype=bool)
    ztest_hit = np.zeros(SIMULATIONS, dtype=bool)
    for sim in range(SIMULATIONS):
        for day in range(DAYS):
            n = int(visitors[day])
            p_seq = always_valid_p_value(
                float(pt[sim, day] - pc[sim, day]), float(variance[sim, day]), 2 * n, ALPHA
            )
            sequential_hit[sim] |= p_seq is not None and p_seq < ALPHA
            p_z = two_proportion_ztest(
                Proportion(n, int(treatment[sim, day])), Proportion(n, int(control[sim, day]))
            )
            ztest_hit[sim] |= p_z is not None and p_z < ALPHA
    # Stated tolerance: alpha + 3.29 binomial standard errors (SLACK ≈ 0.016).
    assert sequential_hit.mean() <= ALPHA + SLACK
    assert ztest_hit.mean() > ALPHA + SLACK  # peeking 30 times inflates it (≈ 0.2 here)


def fleiss_visitors_per_arm(baseline: float, mde: float, alpha: float, power: float) -> int:
    """Reference: Fleiss, Levin & Paik (2003) eq. (4.14), without continuity correction."""
    p1, p2 = baseline, baseline * (1 + mde)
    mean = (p1 + p2) / 2
    spread = stats.norm.ppf(1 - alpha / 2) * math.sqrt(2 * mean * (1 - mean)) + stats.norm.ppf(
        power
    ) * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(spread**2 / (p2 - p1) ** 2)


def closed_form_factor(visitors: int, tuning: int) -> float:
    """Reference: Waudby-Smith et al. (2023) Theorem 2.2 with eq. (9)'s rho, squared / V."""
    log_term = -2 * math.log(ALPHA)
    scaled = visitors * (log_term + math.log(log_term + 1)) / tuning
    return 2 * (scaled + 1) / scaled * math.log(math.sqrt(scaled + 1) / ALPHA)


def test_analyze_reports_the_sequential_figures() -> None:
    data = {
        "experiment": "aa",
        "method": "sequential",
        "variants": [{"key": "a", "visitors": 4000}, {"key": "b", "visitors": 4000}],
        "goals": [{"key": "buy", "counts": {"a": {"conversions": 200}, "b": {"conversions": 250}}}],
    }
    comparison = analyze(data)["goals"][0]["variants"][1]["vs_control"]
    pt, pc = 250 / 4000, 200 / 4000
    variance = (pt * (1 - pt) + pc * (1 - pc)) / 4000
    # The sequence is tuned to the plan: both arms of the planned per-arm sample size.
    tuning = 2 * fleiss_visitors_per_arm(pc, 0.10, ALPHA, 0.8)
    factor = closed_form_factor(8000, tuning)
    half = math.sqrt(variance * factor)
    assert comparison["abs_diff_ci"] == pytest.approx([pt - pc - half, pt - pc + half])
    # source: the duality p = sqrt(s + 1) exp(-d² s / (2 V (s + 1))), s = N rho²
    scaled = 8000 * (-2 * math.log(ALPHA) + math.log(-2 * math.log(ALPHA) + 1)) / tuning
    expected_p = math.sqrt(scaled + 1) * math.exp(
        -((pt - pc) ** 2) * scaled / (2 * variance * (scaled + 1))
    )
    assert comparison["p_value"] == pytest.approx(min(1.0, expected_p))
    lift_ci = comparison["rel_lift_ci"]
    # source: Fieller's set with the boundary factor as critical², found by root finding
    assert lift_ci == pytest.approx(
        list(fieller_by_root_finding(4000, 250, 4000, 200, math.sqrt(factor))), abs=1e-9
    )
    fixed = analyze({**data, "method": "frequentist"})["goals"][0]["variants"][1]["vs_control"]
    assert comparison["p_value"] > fixed["p_value"]


def test_sequential_tuning_falls_back_without_a_plan() -> None:
    assert tuning_visitors(None) == DEFAULT_TUNING_VISITORS == 5000
    assert tuning_visitors(26_000) == 52_000


def test_sequential_lift_interval_agrees_with_the_difference() -> None:
    """A sequential winner's lift interval excludes 0 whenever its difference's does."""
    rng = np.random.default_rng(SEED)
    checked = 0
    for _ in range(300):
        n = int(rng.integers(500, 40_000))
        xc = int(rng.binomial(n, 0.03))
        xt = int(rng.binomial(n, 0.03 * rng.uniform(0.8, 1.4)))
        data = {
            "experiment": "lift",
            "method": "sequential",
            "variants": [{"key": "a", "visitors": n}, {"key": "b", "visitors": n}],
            "goals": [
                {"key": "buy", "counts": {"a": {"conversions": xc}, "b": {"conversions": xt}}}
            ],
        }
        comparison = analyze(data)["goals"][0]["variants"][1]["vs_control"]
        diff_ci, lift_ci, p_value = (
            comparison["abs_diff_ci"],
            comparison["rel_lift_ci"],
            comparison["p_value"],
        )
        if lift_ci is None or p_value is None:
            continue
        checked += 1
        diff_excludes = diff_ci[0] > 0 or diff_ci[1] < 0
        assert (lift_ci[0] > 0 or lift_ci[1] < 0) == diff_excludes
        assert (p_value < ALPHA) == diff_excludes
        if diff_excludes:
            assert (lift_ci[0] > 0) == (comparison["abs_diff"] > 0)
    assert checked > 250
