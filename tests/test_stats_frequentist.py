"""Frequentist procedures against statsmodels, scipy and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from abconv.stats.frequentist import (
    Proportion,
    SampleMoments,
    fieller_lift_interval,
    holm_adjust,
    mean_interval,
    rel_lift,
    rel_lift_interval,
    rel_lift_variance,
    srm_test,
    two_proportion_ztest,
    wald_diff_interval,
    welch_test,
    wilson_interval,
)

SEED = 20240611
CASES = [(0, 10), (10, 10), (1, 10), (50, 1000), (999, 1000), (3, 7), (12_345, 1_000_000)]


@pytest.mark.parametrize(("x", "n"), CASES)
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.01])
def test_wilson_interval_matches_statsmodels(x: int, n: int, alpha: float) -> None:
    low, high = wilson_interval(Proportion(n, x), alpha) or (math.nan, math.nan)
    # source: statsmodels proportion_confint(x, n, alpha, method="wilson")
    expected = proportion_confint(x, n, alpha=alpha, method="wilson")
    assert (low, high) == pytest.approx(expected, abs=1e-12)


def test_wilson_interval_edges() -> None:
    assert wilson_interval(Proportion(0, 0), 0.05) is None
    assert wilson_interval(Proportion(10, 0), 0.05)[0] == 0.0  # type: ignore[index]
    assert wilson_interval(Proportion(10, 10), 0.05)[1] == 1.0  # type: ignore[index]


def test_wilson_interval_random_inputs() -> None:
    rng = np.random.default_rng(SEED)
    for n in rng.integers(1, 100_000, size=50):
        x = int(rng.integers(0, n + 1))
        got = wilson_interval(Proportion(int(n), x), 0.05)
        # source: statsmodels proportion_confint(method="wilson")
        assert got == pytest.approx(proportion_confint(x, int(n), method="wilson"), abs=1e-12)


PAIRS = [
    ((1000, 60), (1000, 50)),
    ((500, 0), (400, 3)),
    ((10, 10), (10, 9)),
    ((20_000, 3), (19_000, 9)),
]


@pytest.mark.parametrize(("treatment", "control"), PAIRS)
def test_wald_diff_interval_closed_form(
    treatment: tuple[int, int], control: tuple[int, int]
) -> None:
    (nt, xt), (nc, xc) = treatment, control
    pt, pc = xt / nt, xc / nc
    z = stats.norm.ppf(0.975)
    # source: closed form d ± z sqrt(pt qt / nt + pc qc / nc) (Agresti & Caffo 2000)
    half = z * math.sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc)
    got = wald_diff_interval(Proportion(nt, xt), Proportion(nc, xc), 0.05)
    assert got == pytest.approx((pt - pc - half, pt - pc + half), abs=1e-12)


def test_wald_diff_interval_collapses_or_is_undefined() -> None:
    assert wald_diff_interval(Proportion(10, 0), Proportion(10, 10), 0.05) == (-1.0, -1.0)
    assert wald_diff_interval(Proportion(0, 0), Proportion(10, 1), 0.05) is None


def fieller_by_root_finding(
    nt: int, xt: int, nc: int, xc: int, critical: float
) -> tuple[float, float]:
    """Reference: the lifts where the Wald statistic of ``p_t = R p_c`` equals ``critical``.

    Found numerically (scipy brentq) on each side of the estimate, independently
    of the quadratic formula the code uses.
    """
    pt, pc = xt / nt, xc / nc
    vt, vc = pt * (1 - pt) / nt, pc * (1 - pc) / nc

    def excess(ratio: float) -> float:
        return (pt - ratio * pc) ** 2 / (vt + ratio**2 * vc) - critical**2

    estimate = pt / pc
    low = optimize.brentq(excess, -10.0, estimate) if excess(-10.0) > 0 else -10.0
    high = optimize.brentq(excess, estimate, 1e6)
    return (max(-1.0, low - 1.0), high - 1.0)


@pytest.mark.parametrize(("treatment", "control"), PAIRS[:1] + PAIRS[2:])
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_rel_lift_interval_is_fieller(
    treatment: tuple[int, int], control: tuple[int, int], alpha: float
) -> None:
    (nt, xt), (nc, xc) = treatment, control
    got = rel_lift_interval(Proportion(nt, xt), Proportion(nc, xc), alpha)
    # source: numerical inversion of the Wald test of p_t = R p_c (Fieller 1954)
    expected = fieller_by_root_finding(nt, xt, nc, xc, stats.norm.ppf(1 - alpha / 2))
    assert rel_lift(Proportion(nt, xt), Proportion(nc, xc)) == pytest.approx(xt / xc * nc / nt - 1)
    assert got == pytest.approx(expected, abs=1e-9)


def test_rel_lift_interval_is_close_to_the_log_ratio_interval_for_large_counts() -> None:
    # source: statsmodels confint_proportions_2indep(compare="ratio", method="log") (Katz);
    # Fieller and Katz agree to first order, so only a loose tolerance.
    low, high = confint_proportions_2indep(
        1650, 50_000, 1500, 50_000, compare="ratio", method="log"
    )
    got = rel_lift_interval(Proportion(50_000, 1650), Proportion(50_000, 1500), 0.05)
    assert got == pytest.approx((low - 1, high - 1), abs=2e-3)


@pytest.mark.parametrize(("treatment", "control"), PAIRS + [((5000, 170), (5000, 150))])
@pytest.mark.parametrize("critical_squared", [1.0, 3.84, 9.2])
def test_lift_interval_excludes_zero_exactly_when_the_difference_does(
    treatment: tuple[int, int], control: tuple[int, int], critical_squared: float
) -> None:
    t, c = Proportion(*treatment), Proportion(*control)
    lift_ci = fieller_lift_interval(t, c, critical_squared)
    if lift_ci is None:
        return
    diff = t.x / t.n - c.x / c.n
    # source: closed form of the unpooled Wald difference interval, d ± c sqrt(v_t + v_c)
    half = math.sqrt(critical_squared * ((t.variance or 0.0) + (c.variance or 0.0)))
    assert (lift_ci[0] > 0 or lift_ci[1] < 0) == (diff - half > 0 or diff + half < 0)


def test_fieller_is_unbounded_when_the_control_is_not_above_zero() -> None:
    # 2 conversions in 1000: p_c² < z² v_c, the set of ratios is unbounded.
    assert rel_lift_interval(Proportion(1000, 5), Proportion(1000, 2), 0.05) is None
    assert rel_lift_interval(Proportion(10, 0), Proportion(10, 9), 0.05) == (-1.0, -1.0)
    with pytest.raises(ValueError):
        fieller_lift_interval(Proportion(10, 1), Proportion(10, 1), 0.0)


@pytest.mark.parametrize(("treatment", "control"), PAIRS)
def test_rel_lift_variance_delta_method(
    treatment: tuple[int, int], control: tuple[int, int]
) -> None:
    (nt, xt), (nc, xc) = treatment, control
    pt, pc = xt / nt, xc / nc
    # source: delta method for pt/pc - 1: Var = vt/pc² + pt² vc/pc⁴ (Casella & Berger 5.5.4)
    expected = pt * (1 - pt) / nt / pc**2 + pt**2 * (pc * (1 - pc) / nc) / pc**4
    assert rel_lift_variance(Proportion(nt, xt), Proportion(nc, xc)) == pytest.approx(expected)


def test_rel_lift_undefined_without_control_conversions() -> None:
    assert rel_lift(Proportion(100, 5), Proportion(100, 0)) is None
    assert rel_lift_variance(Proportion(100, 5), Proportion(100, 0)) is None
    assert rel_lift_interval(Proportion(100, 5), Proportion(100, 0), 0.05) is None
    assert rel_lift_interval(Proportion(0, 0), Proportion(100, 5), 0.05) is None


@pytest.mark.parametrize(("treatment", "control"), PAIRS)
def test_ztest_matches_statsmodels(treatment: tuple[int, int], control: tuple[int, int]) -> None:
    (nt, xt), (nc, xc) = treatment, control
    # source: statsmodels proportions_ztest([xt, xc], [nt, nc]) (pooled variance)
    _, expected = proportions_ztest([xt, xc], [nt, nc])
    assert two_proportion_ztest(Proportion(nt, xt), Proportion(nc, xc)) == pytest.approx(
        expected, rel=1e-10
    )


def test_ztest_random_inputs() -> None:
    rng = np.random.default_rng(SEED)
    for _ in range(50):
        nt, nc = (int(v) for v in rng.integers(50, 50_000, size=2))
        xt, xc = int(rng.binomial(nt, 0.05)) + 1, int(rng.binomial(nc, 0.05)) + 1
        _, expected = proportions_ztest([xt, xc], [nt, nc])  # source: statsmodels
        got = two_proportion_ztest(Proportion(nt, xt), Proportion(nc, xc))
        assert got == pytest.approx(expected, rel=1e-9)


def test_ztest_undefined_cases() -> None:
    assert two_proportion_ztest(Proportion(10, 0), Proportion(10, 0)) is None  # 0/n vs 0/n
    assert two_proportion_ztest(Proportion(10, 10), Proportion(20, 20)) is None  # n/n vs n/n
    assert two_proportion_ztest(Proportion(0, 0), Proportion(20, 2)) is None  # n = 0


@pytest.mark.parametrize(
    "p_values",
    [[0.01, 0.04, 0.03], [0.5], [0.001, 0.2, 0.03, 0.04, 0.9], [0.04, 0.04], [1.0, 0.3]],
)
def test_holm_matches_statsmodels(p_values: list[float]) -> None:
    # source: statsmodels multipletests(method="holm")
    _, expected, _, _ = multipletests(p_values, method="holm")
    assert holm_adjust(p_values) == pytest.approx(list(expected))


def test_holm_random_and_none_entries() -> None:
    rng = np.random.default_rng(SEED)
    for size in range(1, 8):
        p_values = list(rng.uniform(0, 0.2, size=size))
        _, expected, _, _ = multipletests(p_values, method="holm")  # source: statsmodels
        assert holm_adjust(p_values) == pytest.approx(list(expected))
    assert holm_adjust([None, 0.01, None, 0.04]) == [None, 0.02, None, 0.04]
    assert holm_adjust([]) == []


MOMENTS = [
    # (n, sum, sum_squares) per arm: treatment, control
    ((1000, 5200.0, 610_000.0), (1000, 4990.0, 612_000.0)),
    ((50, 300.0, 9000.0), (70, 120.0, 2000.0)),
    ((2, 1.0, 1.0), (3, 0.0, 0.0)),
]


@pytest.mark.parametrize(("treatment", "control"), MOMENTS)
def test_welch_matches_scipy(
    treatment: tuple[int, float, float], control: tuple[int, float, float]
) -> None:
    t, c = SampleMoments(*treatment), SampleMoments(*control)
    result = welch_test(t, c, 0.05)
    assert result is not None
    # source: scipy ttest_ind_from_stats(equal_var=False)
    _, expected_p = stats.ttest_ind_from_stats(
        t.mean, math.sqrt(t.variance), t.n, c.mean, math.sqrt(c.variance), c.n, equal_var=False
    )
    assert result.p_value == pytest.approx(expected_p, rel=1e-9)
    # source: closed form d ± t_{df, 0.975} se with Welch–Satterthwaite df
    vt, vc = t.variance / t.n, c.variance / c.n  # type: ignore[operator]
    df = (vt + vc) ** 2 / (vt**2 / (t.n - 1) + vc**2 / (c.n - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(vt + vc)
    diff = t.mean - c.mean  # type: ignore[operator]
    assert result.ci == pytest.approx((diff - half, diff + half))


def test_welch_against_raw_samples() -> None:
    rng = np.random.default_rng(SEED)
    a = np.where(rng.random(800) < 0.06, rng.gamma(2.0, 50.0, 800), 0.0)
    b = np.where(rng.random(900) < 0.05, rng.gamma(2.0, 50.0, 900), 0.0)
    result = welch_test(
        SampleMoments(800, float(a.sum()), float((a**2).sum())),
        SampleMoments(900, float(b.sum()), float((b**2).sum())),
        0.05,
    )
    expected = stats.ttest_ind(a, b, equal_var=False)  # source: scipy ttest_ind on the raw values
    assert result is not None and result.p_value == pytest.approx(expected.pvalue, rel=1e-7)


def test_welch_degenerate() -> None:
    assert welch_test(SampleMoments(1, 5.0, 25.0), SampleMoments(10, 0.0, 0.0), 0.05) is None
    flat = welch_test(SampleMoments(10, 0.0, 0.0), SampleMoments(10, 0.0, 0.0), 0.05)
    assert flat is not None and flat.p_value is None and flat.ci == (0.0, 0.0)


def test_mean_interval_matches_scipy_t() -> None:
    moments = SampleMoments(40, 200.0, 4000.0)
    sd = math.sqrt(moments.variance)  # type: ignore[arg-type]
    # source: scipy stats.t.interval(0.95, n - 1, mean, sd / sqrt(n))
    expected = stats.t.interval(0.95, 39, loc=5.0, scale=sd / math.sqrt(40))
    assert mean_interval(moments, 0.05) == pytest.approx(expected)
    assert mean_interval(SampleMoments(1, 3.0, 9.0), 0.05) is None
    assert mean_interval(SampleMoments(0, 0.0, 0.0), 0.05) is None


@pytest.mark.parametrize(
    ("visitors", "weights"),
    [
        ([1000, 1000], [1, 1]),
        ([1000, 1100], [1, 1]),
        ([500, 1000, 480], [1, 2, 1]),
        ([0, 7], [3, 1]),
    ],
)
def test_srm_matches_scipy_chisquare(visitors: list[int], weights: list[float]) -> None:
    expected_counts = [sum(visitors) * w / sum(weights) for w in weights]
    # source: scipy chisquare(observed, expected)
    _, expected = stats.chisquare(visitors, expected_counts)
    assert srm_test(visitors, weights) == pytest.approx(expected, rel=1e-10)


def test_srm_undefined_cases() -> None:
    assert srm_test([100], [1]) is None
    assert srm_test([0, 0], [1, 1]) is None
    with pytest.raises(ValueError):
        srm_test([1, 2], [1, 0])


def test_misuse_raises() -> None:
    with pytest.raises(ValueError):
        Proportion(10, 11)
    with pytest.raises(ValueError):
        wilson_interval(Proportion(10, 1), 0.0)
