"""Sample-size planning against statsmodels and its own power."""

from __future__ import annotations

import math

import pytest
from statsmodels.stats.proportion import (
    power_proportions_2indep,
    samplesize_proportions_2indep_onetail,
)

from abconv.stats.planning import Plan, alternative_rate, plan, two_proportion_sample_size


@pytest.mark.parametrize(
    ("baseline", "mde", "alpha", "power"),
    [
        (0.05, 0.10, 0.05, 0.8),
        (0.2, 0.05, 0.05, 0.9),
        (0.01, 0.5, 0.1, 0.8),
        (0.5, 0.2, 0.01, 0.95),
    ],
)
def test_sample_size_matches_statsmodels(
    baseline: float, mde: float, alpha: float, power: float
) -> None:
    diff = baseline * mde
    # source: statsmodels samplesize_proportions_2indep_onetail(diff, prop2, power, alpha,
    # alternative="two-sided"): the same normal approximation, not rounded up
    expected = samplesize_proportions_2indep_onetail(
        diff, baseline, power, alpha=alpha, alternative="two-sided"
    )
    needed = two_proportion_sample_size(baseline, mde, alpha, power)
    assert needed == math.ceil(expected)
    # and that many visitors reach the power (statsmodels power_proportions_2indep)
    reached = power_proportions_2indep(diff, baseline, needed, alpha=alpha, alternative="two-sided")
    assert reached.power >= power


def test_known_figure() -> None:
    # source: statsmodels samplesize_proportions_2indep_onetail(0.005, 0.05, 0.8) = 31233.4
    assert two_proportion_sample_size(0.05, 0.10, 0.05, 0.8) == 31234


def test_alternative_rate_turns_down_near_one() -> None:
    assert alternative_rate(0.5, 0.1) == pytest.approx(0.55)
    assert alternative_rate(0.95, 0.1) == pytest.approx(0.855)
    assert alternative_rate(1.0, 0.1) == pytest.approx(0.9)
    assert alternative_rate(0.9, 2.0) == 0.0


def test_sample_size_at_full_baseline_is_finite() -> None:
    needed = two_proportion_sample_size(1.0, 0.1, 0.05, 0.8)
    assert 0 < needed < 10_000


def test_plan_progress_capped_and_bonferroni_for_many_arms() -> None:
    two = plan([1000, 1200], 1000, 50, 0.1, 0.05, 0.8)
    assert two == Plan(31234, pytest.approx(1000 / 31234))
    three = plan([1000, 1000, 1000], 1000, 50, 0.1, 0.05, 0.8)
    # alpha / 2 for two treatment arms
    assert three.visitors_needed_per_variant == two_proportion_sample_size(0.05, 0.1, 0.025, 0.8)
    done = plan([50_000, 60_000], 50_000, 2500, 0.1, 0.05, 0.8)
    assert done.progress == 1.0


@pytest.mark.parametrize(("visitors", "conversions"), [(0, 0), (1000, 0)])
def test_plan_undefined_without_baseline(visitors: int, conversions: int) -> None:
    assert plan([visitors, 10], visitors, conversions, 0.1, 0.05, 0.8) == Plan(None, None)


def test_misuse_raises() -> None:
    with pytest.raises(ValueError):
        two_proportion_sample_size(0.0, 0.1, 0.05, 0.8)
    with pytest.raises(ValueError):
        two_proportion_sample_size(0.1, 0.1, 0.05, 1.0)
