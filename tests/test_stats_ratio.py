"""Count and ratio metrics against independent references.

- Events per visitor (count goals): the document's Welch figures equal
  scipy's ``ttest_ind(equal_var=False)`` and statsmodels' ``CompareMeans``
  on the raw per-visitor arrays.
- The delta-method variance of a ratio of means equals its closed forms on
  raw arrays: the sample variance of the linearisation ``m - R d`` over
  ``n d̄²``, and ``s²/n`` when every denominator is 1 (a plain mean).
- Its standard error agrees with a bootstrap over visitors, and its 95 %
  intervals cover a known truth 95 % of the time in a simulation of orders
  with lognormal values (the truth: the ratio of the expectations).

Every test is seeded; run with ``-s`` to see the figures.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from abconv.stats import analyze
from abconv.stats.ratio import RatioMoments, ratio_comparison, ratio_estimate

SEED = 20261130
ALPHA = 0.05
Z_FALSE_FAILURE = 3.29  # one-sided 0.05 % chance that a correct method fails a check


def moments(m: np.ndarray[Any, Any], d: np.ndarray[Any, Any]) -> RatioMoments:
    return RatioMoments(
        len(m), float(m.sum()), float((m * m).sum()), float(d.sum()), float((d * d).sum()),
        float((m * d).sum()),
    )  # fmt: skip


def shop(rng: np.random.Generator, n: int, rate: float, orders: float, mu: float) -> Any:
    """Per-visitor (value, events) of ``n`` visitors: a visitor converts with ``rate``,
    places 1 + Poisson(``orders``) orders, each worth lognormal(``mu``, 1)."""
    converting = rng.random(n) < rate
    events = np.where(converting, 1 + rng.poisson(orders, n), 0)
    per_order = rng.lognormal(mu, 1.0, int(events.sum()))
    owner = np.repeat(np.arange(n), events)
    value = np.bincount(owner, weights=per_order, minlength=n)
    return value, events


def counts_of(value: np.ndarray[Any, Any], events: np.ndarray[Any, Any]) -> dict[str, float]:
    return {
        "conversions": int((events > 0).sum()),
        "value_sum": float(value.sum()),
        "value_sum_squares": float((value * value).sum()),
        "events": int(events.sum()),
        "events_sum_squares": float((events * events).sum()),
        "value_events_sum": float((value * events).sum()),
    }


def analysed(arms: dict[str, Any]) -> dict[str, Any]:
    """The one goal's variants, analysed with count = true and value = true."""
    document = analyze({
        "experiment": "shop", "method": "frequentist",
        "variants": [{"key": k, "visitors": len(v[0])} for k, v in arms.items()],
        "goals": [{"key": "purchase", "value": True, "count": True,
                   "counts": {k: counts_of(*v) for k, v in arms.items()}}],
    })  # fmt: skip
    variants: dict[str, Any] = document["goals"][0]["variants"]
    return {v["key"]: v for v in variants}


def test_events_per_visitor_are_welch_as_scipy_and_statsmodels_on_the_raw_arrays() -> None:
    rng = np.random.default_rng(SEED)
    arms = {"a": shop(rng, 3000, 0.05, 0.8, 3.0), "b": shop(rng, 2500, 0.06, 1.2, 3.0)}
    a, b = analysed(arms)["a"], analysed(arms)["b"]
    events_a, events_b = arms["a"][1].astype(float), arms["b"][1].astype(float)
    assert a["count"]["events"] == events_a.sum()
    assert a["count"]["per_visitor"] == pytest.approx(events_a.mean(), rel=1e-12)
    t_ci = DescrStatsW(events_a).tconfint_mean(ALPHA)
    assert a["count"]["per_visitor_ci"] == pytest.approx(t_ci, rel=1e-9)
    welch = stats.ttest_ind(events_b, events_a, equal_var=False)
    compared = b["vs_control"]["count"]
    assert compared["diff"] == pytest.approx(events_b.mean() - events_a.mean(), rel=1e-9)
    assert compared["p_value"] == pytest.approx(welch.pvalue, rel=1e-7)
    means = CompareMeans(DescrStatsW(events_b), DescrStatsW(events_a))
    expected_ci = means.tconfint_diff(ALPHA, usevar="unequal")
    assert compared["diff_ci"] == pytest.approx(expected_ci, rel=1e-7)


def test_the_delta_variance_equals_its_closed_forms_on_raw_arrays() -> None:
    rng = np.random.default_rng(SEED + 1)
    value, events = shop(rng, 5000, 0.08, 1.0, 3.5)
    got = moments(value, events)
    ratio = value.sum() / events.sum()
    linearised = value - ratio * events  # Deng et al. 2018: Var(m̄/d̄) ≈ Var(m - R d) / (n d̄²)
    expected = np.var(linearised, ddof=1) / (len(value) * events.mean() ** 2)
    assert got.ratio == pytest.approx(ratio, rel=1e-12)
    assert got.variance == pytest.approx(expected, rel=1e-9)
    # A denominator of 1 for every visitor: the ratio is a mean, its variance s²/n.
    ones = np.ones_like(value)
    plain = moments(value, ones)
    assert plain.variance == pytest.approx(np.var(value, ddof=1) / len(value), rel=1e-9)
    assert ratio_estimate(plain, ALPHA).ci == pytest.approx(
        DescrStatsW(value).zconfint_mean(ALPHA), rel=1e-9
    )


def test_undefined_ratios_are_none() -> None:
    nothing = RatioMoments(100, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert nothing.ratio is None and nothing.variance is None
    assert ratio_estimate(nothing, ALPHA).ci is None
    one = RatioMoments(1, 5.0, 25.0, 1.0, 1.0, 5.0)
    assert one.ratio == 5.0 and one.variance is None
    same = RatioMoments(10, 20.0, 40.0, 10.0, 10.0, 20.0)  # every visitor: 2 per 1
    compared = ratio_comparison(same, same, ALPHA)
    assert (compared.diff, compared.diff_ci, compared.p_value) == (0.0, (0.0, 0.0), None)
    assert ratio_comparison(nothing, same, ALPHA).diff is None
    with pytest.raises(ValueError):
        RatioMoments(-1, 0.0, 0.0, 0.0, 0.0, 0.0)


def test_the_delta_standard_error_agrees_with_a_bootstrap_over_visitors() -> None:
    """2,000 resamples of 4,000 visitors per arm; the bootstrap's own error is about
    1/sqrt(2 x 2000) = 1.6 %, so the two standard errors agree within 6 %."""
    rng = np.random.default_rng(SEED + 2)
    arms = [shop(rng, 4000, 0.1, 0.7, 3.0), shop(rng, 4000, 0.1, 0.9, 3.1)]
    boot = {"per_order": [], "per_converting_visitor": [], "lift": []}  # type: ignore[var-annotated]
    for _ in range(2000):
        drawn = []
        for value, events in arms:
            pick = rng.integers(0, len(value), len(value))
            drawn.append((value[pick], events[pick]))
        (va, ea), (vb, eb) = drawn
        boot["per_order"].append(vb.sum() / eb.sum() - va.sum() / ea.sum())
        boot["per_converting_visitor"].append(vb.sum() / (eb > 0).sum() - va.sum() / (ea > 0).sum())
        boot["lift"].append((vb.sum() / eb.sum()) / (va.sum() / ea.sum()) - 1.0)
    (va, ea), (vb, eb) = arms
    per_order = ratio_comparison(moments(vb, eb), moments(va, ea), ALPHA)
    conv_a, conv_b = (ea > 0).astype(float), (eb > 0).astype(float)
    per_visitor = ratio_comparison(moments(vb, conv_b), moments(va, conv_a), ALPHA)
    z = stats.norm.ppf(1 - ALPHA / 2)
    for name, compared, width in (
        ("per_order", per_order, per_order.diff_ci),
        ("per_converting_visitor", per_visitor, per_visitor.diff_ci),
        ("lift", per_order, per_order.rel_lift_ci),
    ):
        assert width is not None
        delta_se = (width[1] - width[0]) / (2 * z)
        boot_se = float(np.std(boot[name], ddof=1))
        print(f"{name}: delta se {delta_se:.4f}, bootstrap se {boot_se:.4f}")
        assert delta_se == pytest.approx(boot_se, rel=0.06), name
        assert compared.diff is not None


def test_delta_method_intervals_cover_the_known_truth() -> None:
    """2,000 experiments of 3,000 visitors per arm (8 % convert, 1 + Poisson(0.6) orders,
    order values lognormal(3, 1), the treatment's 5 % higher). The truth: value per order
    exp(mu + 1/2), per converting visitor 1.6 x that; the lift 5 % on both. Each 95 %
    interval must cover within z = 3.29 binomial errors of 95 %, and the misses split
    on both sides (neither side above 3.5 %)."""
    rng = np.random.default_rng(SEED + 3)
    experiments, visitors, rate, orders = 2000, 3000, 0.08, 0.6
    mu_c, mu_t = 3.0, 3.0 + math.log(1.05)
    truth = {
        "per_order": (math.exp(mu_t + 0.5) - math.exp(mu_c + 0.5), 0.05),
        "per_converting_visitor": (
            (1 + orders) * (math.exp(mu_t + 0.5) - math.exp(mu_c + 0.5)),
            0.05,
        ),
    }
    misses = {(name, what, side): 0 for name in truth for what in ("diff", "lift")
              for side in ("below", "above")}  # fmt: skip
    for _ in range(experiments):
        control = analysed_ratios(shop(rng, visitors, rate, orders, mu_c))
        treatment = analysed_ratios(shop(rng, visitors, rate, orders, mu_t))
        for name, (diff, lift) in truth.items():
            compared = ratio_comparison(treatment[name], control[name], ALPHA)
            for what, interval, true in (
                ("diff", compared.diff_ci, diff), ("lift", compared.rel_lift_ci, lift),
            ):  # fmt: skip
                assert interval is not None
                if true < interval[0]:
                    misses[(name, what, "below")] += 1
                elif true > interval[1]:
                    misses[(name, what, "above")] += 1
    slack = Z_FALSE_FAILURE * math.sqrt(0.95 * 0.05 / experiments)
    for name in truth:
        for what in ("diff", "lift"):
            below, above = misses[(name, what, "below")], misses[(name, what, "above")]
            coverage = 1 - (below + above) / experiments
            print(f"{name} {what}: coverage {coverage:.4f} (below {below}, above {above})")
            assert abs(coverage - 0.95) <= slack, (name, what, coverage)
            assert max(below, above) / experiments <= 0.035, (name, what, below, above)


def analysed_ratios(arm: Any) -> dict[str, RatioMoments]:
    value, events = arm
    return {
        "per_order": moments(value, events),
        "per_converting_visitor": moments(value, (events > 0).astype(float)),
    }


def test_the_document_carries_the_ratios_of_the_raw_arrays() -> None:
    """Through ``analyze``: the ratios, intervals and lift equal the closed forms on the
    raw arrays (the linearisation's variance; the lift's interval on the log scale),
    for both ratio metrics."""
    rng = np.random.default_rng(SEED + 4)
    arms = {"a": shop(rng, 2000, 0.1, 0.8, 3.0), "b": shop(rng, 2000, 0.12, 0.8, 3.2)}
    variants = analysed(arms)
    z = stats.norm.ppf(1 - ALPHA / 2)
    expected: dict[str, dict[str, tuple[float, float]]] = {}
    for key, (value, events) in arms.items():
        for name, d in (("per_order", events.astype(float)),
                        ("per_converting_visitor", (events > 0).astype(float))):  # fmt: skip
            ratio = value.sum() / d.sum()
            variance = np.var(value - ratio * d, ddof=1) / (len(value) * d.mean() ** 2)
            expected.setdefault(key, {})[name] = (ratio, variance)
            shown = variants[key]["value"][name]
            half = z * math.sqrt(variance)
            assert shown["ratio"] == pytest.approx(ratio, rel=1e-9)
            assert shown["ci"] == pytest.approx([ratio - half, ratio + half], rel=1e-9)
    assert variants["a"]["value"]["aov"] == pytest.approx(
        variants["a"]["value"]["per_converting_visitor"]["ratio"], rel=1e-12
    )
    for name in ("per_order", "per_converting_visitor"):
        (r_a, v_a), (r_b, v_b) = expected["a"][name], expected["b"][name]
        compared = variants["b"]["vs_control"]["value"][name]
        se = math.sqrt(v_a + v_b)
        assert compared["diff"] == pytest.approx(r_b - r_a, rel=1e-9)
        assert compared["diff_ci"] == pytest.approx([r_b - r_a - z * se, r_b - r_a + z * se])
        assert compared["p_value"] == pytest.approx(2 * stats.norm.sf(abs(r_b - r_a) / se))
        log_se = math.sqrt(v_b / r_b**2 + v_a / r_a**2)  # log(R_b / R_a), delta method
        assert compared["rel_lift"] == pytest.approx(r_b / r_a - 1, rel=1e-9)
        assert compared["rel_lift_ci"] == pytest.approx(
            [r_b / r_a * math.exp(-z * log_se) - 1, r_b / r_a * math.exp(z * log_se) - 1]
        )


@pytest.mark.parametrize("count", [False, True])
def test_a_primary_count_goal_blocks_a_rate_winner_with_fewer_events_per_visitor(
    count: bool,
) -> None:
    """'b' converts more visitors (6.5 % vs 5 %) but each converter buys once or twice
    where 'a's buy three times: with ``count = true`` its events per visitor (0.07 vs
    0.15) block the win, as value per visitor does on value goals."""
    counts = {
        "a": {"conversions": 2000, "events": 6000, "events_sum_squares": 18000.0},
        "b": {"conversions": 2600, "events": 2800, "events_sum_squares": 3200.0},
    }
    document = analyze({
        "experiment": "shop", "method": "frequentist",
        "variants": [{"key": "a", "visitors": 40000}, {"key": "b", "visitors": 40000}],
        "goals": [{"key": "purchase", "count": count, "counts": counts}],
    })  # fmt: skip
    decision = document["decision"]
    if not count:
        assert (decision["status"], decision["winner"]) == ("winner", "b")
        return
    assert (decision["status"], decision["winner"]) == ("keep_running", None)
    assert "probably has fewer conversions per visitor on purchase" in decision["reason"]
