"""Value per visitor with skewed values: Hall's interval from n, Σv, Σv², Σv³.

References: scipy's sample skewness of the raw values, Hall's transformation
inverted by root finding on the raw data, and a bootstrap-t interval of the
same sample.  Coverage is simulated in tests/test_stats_intervals_simulation.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import optimize, special, stats

from abconv import analyze
from abconv.stats.frequentist import SampleMoments, hall_mean_interval, mean_interval

ALPHA = 0.05


def per_visitor_values(seed: int, visitors: int = 5000, rate: float = 0.03) -> np.ndarray:
    """0 for most visitors, a log-normal order (median 50, sigma 1) for the converting ones."""
    rng = np.random.default_rng(seed)
    values = np.zeros(visitors)
    buyers = rng.random(visitors) < rate
    values[buyers] = rng.lognormal(math.log(50.0), 1.0, int(buyers.sum()))
    return values


def moments(values: np.ndarray, cubes: bool = True) -> SampleMoments:
    return SampleMoments(
        len(values),
        float(values.sum()),
        float((values**2).sum()),
        float((values**3).sum()) if cubes else None,
    )


def test_skewness_from_sums_is_scipys() -> None:
    values = per_visitor_values(1)
    assert moments(values).skewness == pytest.approx(stats.skew(values, bias=True), rel=1e-9)
    assert moments(values, cubes=False).skewness is None
    assert SampleMoments(3, 6.0, 12.0, 24.0).skewness is None  # zero variance


def test_hall_interval_inverts_the_transformation() -> None:
    """Independent: solve g(T) = ±c for T by root finding, with T from the raw data."""
    values = per_visitor_values(2)
    n, mean = len(values), float(values.mean())
    se = float(values.std(ddof=1)) / math.sqrt(n)
    gamma = float(stats.skew(values, bias=True))
    critical = float(special.stdtrit(n - 1, 1 - ALPHA / 2))

    def g(t: float) -> float:
        return (
            t
            + gamma / (3 * math.sqrt(n)) * t**2
            + gamma**2 / (27 * n) * t**3
            + gamma / (6 * math.sqrt(n))
        )

    upper_t = optimize.brentq(lambda t: g(t) - critical, -20, 20)
    lower_t = optimize.brentq(lambda t: g(t) + critical, -20, 20)
    expected = (mean - upper_t * se, mean - lower_t * se)
    assert mean_interval(moments(values), ALPHA) == pytest.approx(expected, rel=1e-9)


def test_hall_interval_is_close_to_a_bootstrap_t_interval() -> None:
    """Both correct the t interval the same way: moved up, longer above the mean."""
    values = per_visitor_values(3)
    n, mean = len(values), float(values.mean())
    se = float(values.std(ddof=1)) / math.sqrt(n)
    rng = np.random.default_rng(4)
    draws = rng.integers(0, n, (4000, n))
    resampled = values[draws]
    t_star = (resampled.mean(axis=1) - mean) / (resampled.std(axis=1, ddof=1) / math.sqrt(n))
    high_t, low_t = np.quantile(t_star, [1 - ALPHA / 2, ALPHA / 2])
    bootstrap = (mean - high_t * se, mean - low_t * se)
    hall = mean_interval(moments(values), ALPHA)
    student = mean_interval(moments(values, cubes=False), ALPHA)
    assert hall is not None and student is not None
    print(f"\nbootstrap-t {bootstrap}, Hall {hall}, t {student}")
    assert hall[1] - mean > mean - hall[0]  # longer above
    assert abs(hall[0] - bootstrap[0]) < 0.1 * (mean - student[0])
    assert abs(hall[1] - bootstrap[1]) < 0.1 * (student[1] - mean)
    assert abs(hall[1] - bootstrap[1]) < abs(student[1] - bootstrap[1])


def test_no_skewness_is_the_t_interval() -> None:
    assert hall_mean_interval(10.0, 2.0, 0.0, 100, 1.98) == pytest.approx((10 - 3.96, 10 + 3.96))


def test_without_cubes_the_t_interval() -> None:
    values = per_visitor_values(5)
    n, mean = len(values), float(values.mean())
    half = float(special.stdtrit(n - 1, 0.975)) * float(values.std(ddof=1)) / math.sqrt(n)
    assert mean_interval(moments(values, cubes=False), ALPHA) == pytest.approx(
        (mean - half, mean + half)
    )


def value_input(cubes: dict[str, Any] | None) -> dict[str, Any]:
    counts = {
        "control": {"conversions": 3, "value_sum": 60.0, "value_sum_squares": 1400.0},
        "B": {"conversions": 2, "value_sum": 50.0, "value_sum_squares": 1300.0},
    }
    for key, cube in (cubes or {}).items():
        counts[key]["value_sum_cubes"] = cube
    return {
        "experiment": "v",
        "variants": [{"key": "control", "visitors": 10}, {"key": "B", "visitors": 10}],
        "goals": [{"key": "purchase", "value": True, "counts": counts}],
    }


def test_analyze_uses_the_cubes_when_given() -> None:
    # control: 10, 20, 30 -> Σ³ 36,000; B: 20, 30 -> 35,000
    plain = analyze(value_input(None))["goals"][0]["variants"][0]["value"]["per_visitor_ci"]
    skewed = analyze(value_input({"control": 36000.0, "B": 35000.0}))
    ci = skewed["goals"][0]["variants"][0]["value"]["per_visitor_ci"]
    values = np.array([10.0, 20.0, 30.0] + [0.0] * 7)
    expected = mean_interval(moments(values), ALPHA)
    assert ci == pytest.approx(list(expected or ()), rel=1e-9)
    assert ci != pytest.approx(plain)


@pytest.mark.parametrize(
    ("cubes", "message"),
    [
        ({"control": 1e6}, "impossible for value_sum_squares"),
        ({"control": 100.0}, "impossible for value_sum_squares"),
        ({"control": -1.0}, "in \\[0, 1e300\\]"),
        ({"control": True}, "must be a number"),
    ],
)
def test_impossible_cubes_are_refused(cubes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        analyze(value_input(cubes))


def test_cubes_without_values_are_refused() -> None:
    data = value_input(None)
    data["goals"][0]["value"] = False
    for counts in data["goals"][0]["counts"].values():
        del counts["value_sum"], counts["value_sum_squares"]
    data["goals"][0]["counts"]["B"]["value_sum_cubes"] = 8.0
    with pytest.raises(ValueError, match="value_sum_cubes: given but the goal"):
        analyze(data)
