"""The results document: shape, figures wired to the right procedures, degenerate inputs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scipy import stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from abconv.analysis_settings import AnalysisSettings
from abconv.stats import analyze
from abconv.vocabulary import DecisionStatus
from tests.test_stats_bayesian import beta_quadrature
from tests.test_stats_frequentist import fieller_by_root_finding

METHODS = ["bayesian", "frequentist", "sequential"]


def shop(method: str = "bayesian") -> dict[str, Any]:
    return {
        "experiment": "homepage-cta",
        "method": method,
        "variants": [
            {"key": "trial", "weight": 1, "visitors": 5000},
            {"key": "guide", "weight": 1, "visitors": 5020},
            {"key": "video", "weight": 1, "visitors": 4990},
        ],
        "goals": [
            {
                "key": "purchase",
                "kind": "hard",
                "primary": True,
                "value": True,
                "counts": {
                    "trial": {
                        "conversions": 250,
                        "value_sum": 24950.0,
                        "value_sum_squares": 3.06e6,
                    },
                    "guide": {"conversions": 310, "value_sum": 30100.0, "value_sum_squares": 3.5e6},
                    "video": {"conversions": 240, "value_sum": 25000.0, "value_sum_squares": 3.1e6},
                },
            },
            {
                "key": "newsletter",
                "kind": "soft",
                "counts": {
                    "trial": {"conversions": 400},
                    "guide": {"conversions": 380},
                    "video": {"conversions": 450},
                },
            },
        ],
    }


def assert_plain_json(node: Any, where: str = "$") -> None:
    """Only JSON types (exactly: no numpy scalars, no bool posing as a number), no NaN."""
    if isinstance(node, dict):
        for key, value in node.items():
            assert type(key) is str
            assert_plain_json(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            assert_plain_json(value, f"{where}[{index}]")
    else:
        assert type(node) in (str, int, float, bool, type(None)), f"{where}: {type(node)}"
        if type(node) is float:
            assert math.isfinite(node), where


def check_document(document: dict[str, Any]) -> None:
    assert_plain_json(document)
    json.dumps(document, allow_nan=False)
    assert list(document) == [
        "experiment", "method", "alpha", "srm", "goals", "decision", "plan", "sequential",
    ]  # fmt: skip
    for goal in document["goals"]:
        assert list(goal) == ["key", "kind", "primary", "count", "variants"]
        for variant in goal["variants"]:
            assert list(variant) == [
                "key", "control", "visitors", "conversions", "rate", "rate_ci",
                "prob_best", "expected_loss", "value", "count", "vs_control",
            ]  # fmt: skip
            assert (variant["vs_control"] is None) == variant["control"]
            if variant["vs_control"] is not None:
                assert list(variant["vs_control"]) == [
                    "abs_diff", "abs_diff_ci", "rel_lift", "rel_lift_ci", "p_value",
                    "p_value_adjusted", "chance_to_beat_control", "value", "count",
                ]  # fmt: skip
    assert set(document["decision"]) == {"status", "winner", "reason", "guardrails"}
    for guardrail in document["decision"]["guardrails"]:
        assert list(guardrail) == [
            "goal", "status", "rel_lift", "rel_lift_lower", "chance_not_worse",
        ]  # fmt: skip
    assert set(document["plan"]) == {"visitors_needed_per_variant", "progress"}


@pytest.mark.parametrize("method", METHODS)
def test_document_shape(method: str) -> None:
    document = analyze(shop(method))
    check_document(document)
    assert document["method"] == method and document["alpha"] == 0.05
    purchase = document["goals"][0]
    assert purchase["primary"] and purchase["kind"] == "hard"
    assert [v["key"] for v in purchase["variants"]] == ["trial", "guide", "video"]
    assert document["goals"][1]["variants"][0]["value"] is None
    assert document["goals"][1]["variants"][1]["vs_control"]["value"] is None


def test_figures_come_from_the_documented_procedures() -> None:
    document = analyze(shop("frequentist"))
    trial, guide, video = document["goals"][0]["variants"]
    # source: statsmodels proportion_confint(method="wilson")
    assert guide["rate_ci"] == pytest.approx(list(proportion_confint(310, 5020, method="wilson")))
    assert guide["rate"] == pytest.approx(310 / 5020)
    # source: statsmodels proportions_ztest, then Holm by hand over the two treatments
    _, p_guide = proportions_ztest([310, 250], [5020, 5000])
    _, p_video = proportions_ztest([240, 250], [4990, 5000])
    low, high = sorted([p_guide, p_video])
    assert guide["vs_control"]["p_value"] == pytest.approx(p_guide)
    assert guide["vs_control"]["p_value_adjusted"] == pytest.approx(min(1, 2 * low))
    assert video["vs_control"]["p_value_adjusted"] == pytest.approx(max(2 * low, high))
    assert guide["vs_control"]["rel_lift"] == pytest.approx((310 / 5020) / (250 / 5000) - 1)
    # source: Fieller's interval by root finding of the Wald statistic of p_t = R p_c
    assert guide["vs_control"]["rel_lift_ci"] == pytest.approx(
        list(fieller_by_root_finding(5020, 310, 5000, 250, stats.norm.ppf(0.975))), abs=1e-9
    )
    # value: sum / n, sum / conversions, Welch from scipy
    assert trial["value"]["per_visitor"] == pytest.approx(24950 / 5000)
    assert trial["value"]["aov"] == pytest.approx(24950 / 250)
    sd = [
        math.sqrt((ss - s * s / n) / (n - 1))
        for n, s, ss in [(5020, 30100, 3.5e6), (5000, 24950, 3.06e6)]
    ]
    _, p_value = stats.ttest_ind_from_stats(
        30100 / 5020, sd[0], 5020, 24950 / 5000, sd[1], 5000, equal_var=False
    )
    assert guide["vs_control"]["value"]["p_value"] == pytest.approx(p_value)
    assert guide["vs_control"]["value"]["diff"] == pytest.approx(30100 / 5020 - 24950 / 5000)
    se = math.hypot(sd[0] / math.sqrt(5020), sd[1] / math.sqrt(5000))
    chance = stats.norm.cdf((30100 / 5020 - 24950 / 5000) / se)  # source: normal approx, flat prior
    assert guide["vs_control"]["value"]["chance_to_beat_control"] == pytest.approx(chance)
    assert sum(v["prob_best"] for v in document["goals"][0]["variants"]) == pytest.approx(1.0)
    assert min(v["expected_loss"] for v in document["goals"][0]["variants"]) >= 0.0
    # source: scipy chisquare against equal weights
    _, srm_p = stats.chisquare([5000, 5020, 4990])
    assert document["srm"] == {"p_value": pytest.approx(srm_p), "flag": False}


def test_control_named_explicitly() -> None:
    data = shop()
    data["control"] = "guide"
    variants = analyze(data)["goals"][0]["variants"]
    assert [v["control"] for v in variants] == [False, True, False]
    assert variants[0]["vs_control"]["abs_diff"] == pytest.approx(250 / 5000 - 310 / 5020)


def two_arms(visitors: tuple[int, int], goals: list[dict[str, Any]], method: str) -> dict[str, Any]:
    return {
        "experiment": "edge",
        "method": method,
        "variants": [{"key": "a", "visitors": visitors[0]}, {"key": "b", "visitors": visitors[1]}],
        "goals": goals,
    }


def binary(a: int, b: int) -> dict[str, Any]:
    return {"key": "g", "counts": {"a": {"conversions": a}, "b": {"conversions": b}}}


def valued(a: tuple[int, float, float], b: tuple[int, float, float]) -> dict[str, Any]:
    def counts(c: tuple[int, float, float]) -> dict[str, Any]:
        return {"conversions": c[0], "value_sum": c[1], "value_sum_squares": c[2]}

    return {"key": "v", "value": True, "counts": {"a": counts(a), "b": counts(b)}}


@pytest.mark.parametrize("method", METHODS)
def test_zero_visitors(method: str) -> None:
    document = analyze(two_arms((0, 0), [valued((0, 0.0, 0.0), (0, 0.0, 0.0))], method))
    check_document(document)
    a, b = document["goals"][0]["variants"]
    assert a["rate"] is None and a["rate_ci"] is None
    assert b["vs_control"]["abs_diff"] is None and b["vs_control"]["p_value"] is None
    assert a["value"] == {
        "sum": 0.0, "per_visitor": None, "per_visitor_ci": None, "aov": None,
        "per_converting_visitor": {"ratio": None, "ci": None}, "per_order": None,
    }  # fmt: skip
    nothing = dict.fromkeys(("diff", "diff_ci", "rel_lift", "rel_lift_ci", "p_value"))
    assert b["vs_control"]["value"] == {
        "diff": None, "diff_ci": None, "p_value": None, "chance_to_beat_control": None,
        "per_converting_visitor": nothing, "per_order": None,
    }  # fmt: skip
    assert b["vs_control"]["chance_to_beat_control"] == pytest.approx(0.5, abs=1e-6)
    assert document["srm"] == {"p_value": None, "flag": False}
    assert document["plan"] == {"visitors_needed_per_variant": None, "progress": None}
    assert document["decision"]["status"] == "keep_running"


@pytest.mark.parametrize("method", METHODS)
def test_no_conversions_at_all(method: str) -> None:
    document = analyze(two_arms((500, 500), [binary(0, 0)], method))
    check_document(document)
    a, b = document["goals"][0]["variants"]
    assert a["rate"] == 0.0 and a["rate_ci"][0] == 0.0
    assert b["vs_control"]["rel_lift"] is None and b["vs_control"]["rel_lift_ci"] is None
    assert b["vs_control"]["p_value"] is None and b["vs_control"]["p_value_adjusted"] is None
    assert b["vs_control"]["abs_diff_ci"] == [0.0, 0.0]
    assert document["plan"]["visitors_needed_per_variant"] is None
    assert document["decision"]["winner"] is None


@pytest.mark.parametrize("method", METHODS)
def test_everyone_converts(method: str) -> None:
    document = analyze(two_arms((300, 300), [binary(300, 300)], method))
    check_document(document)
    a, b = document["goals"][0]["variants"]
    assert a["rate"] == 1.0 and a["rate_ci"][1] == 1.0
    assert b["vs_control"]["rel_lift"] == 0.0
    assert document["plan"]["visitors_needed_per_variant"] is not None


@pytest.mark.parametrize("method", METHODS)
def test_one_variant(method: str) -> None:
    data = {
        "experiment": "solo",
        "method": method,
        "variants": [{"key": "a", "visitors": 1000}],
        "goals": [{"key": "g", "counts": {"a": {"conversions": 30}}}],
    }
    document = analyze(data)
    check_document(document)
    only = document["goals"][0]["variants"][0]
    assert only["prob_best"] == 1.0 and only["expected_loss"] == 0.0
    assert document["srm"]["p_value"] is None
    assert document["decision"]["status"] == "keep_running"


@pytest.mark.parametrize("method", METHODS)
def test_value_goal_without_orders_and_zero_variance(method: str) -> None:
    no_orders = analyze(two_arms((400, 400), [valued((0, 0.0, 0.0), (0, 0.0, 0.0))], method))
    check_document(no_orders)
    comparison = no_orders["goals"][0]["variants"][1]["vs_control"]["value"]
    assert comparison["diff"] == 0.0 and comparison["p_value"] is None
    assert comparison["chance_to_beat_control"] is None
    # every visitor converts with the same value: zero variance in both arms
    flat = analyze(two_arms((10, 10), [valued((10, 50.0, 250.0), (10, 50.0, 250.0))], method))
    check_document(flat)
    variant = flat["goals"][0]["variants"][1]
    assert variant["value"]["per_visitor_ci"] == [5.0, 5.0]
    assert variant["vs_control"]["value"]["p_value"] is None


EXTREME = [
    ((10**12, 1), (10**11, 1)),  # a trillion visitors against one
    ((10**12, 10**12), (10**11, 10**11 + 10**6)),  # a lift of 1e-6 in a trillion each
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("visitors", "conversions"), EXTREME, ids=["1e12-vs-1", "1e12-each"])
def test_extreme_but_valid_counts(
    method: str, visitors: tuple[int, int], conversions: tuple[int, int]
) -> None:
    document = analyze(two_arms(visitors, [binary(*conversions)], method))
    check_document(document)
    a, b = document["goals"][0]["variants"]
    (na, nb), (xa, xb) = visitors, conversions
    for variant, n, x in ((a, na, xa), (b, nb, xb)):
        assert variant["rate"] == pytest.approx(x / n, rel=1e-12)
        # source: statsmodels proportion_confint(method="wilson")
        assert variant["rate_ci"] == pytest.approx(proportion_confint(x, n, method="wilson"))
    versus = b["vs_control"]
    assert versus["abs_diff"] == pytest.approx(xb / nb - xa / na, rel=1e-9)
    assert versus["rel_lift"] == pytest.approx((xb / nb) / (xa / na) - 1, rel=1e-6)
    # source: statsmodels proportions_ztest (pooled) and the unpooled Wald interval
    _, p_value = proportions_ztest([xb, xa], [nb, na])
    wald = confint_proportions_2indep(xb, nb, xa, na, method="wald", compare="diff")
    if method != "sequential":
        assert versus["p_value"] == pytest.approx(p_value, rel=1e-6)
        assert versus["abs_diff_ci"] == pytest.approx(list(wald), rel=1e-6)
    elif nb > 1:  # an always-valid test pays for peeking: never more certain
        # (Not with one visitor who converted: the unpooled variance is then 0 and the
        # always-valid p-value says 0.0 where the pooled z-test says 0.0027.)
        assert versus["p_value"] >= p_value
        assert versus["abs_diff_ci"][0] <= wald[0] and versus["abs_diff_ci"][1] >= wald[1]
    if nb == 1:
        # source: closed form; a's Beta posterior is a point mass at 0.1 (sd 3e-7) and
        # b's is Beta(2, 1) (density 2t): P(p_b > 0.1) = 1 - 0.1², the loss of choosing b
        # is ∫_0^0.1 (0.1 - t) 2t dt = 1/3000, of choosing a ∫_0.1^1 (t - 0.1) 2t dt = 0.567.
        # Tolerance: the quadrature's documented 1e-4 in probability; about 1e-5 in loss.
        assert versus["chance_to_beat_control"] == pytest.approx(0.99, abs=1e-4)
        assert [a["prob_best"], b["prob_best"]] == pytest.approx([0.01, 0.99], abs=1e-4)
        assert a["expected_loss"] == pytest.approx(0.567, rel=1e-4)
        assert b["expected_loss"] == pytest.approx(1 / 3000, abs=1e-5)
    else:
        # source: both Beta posteriors are normal to within 1e-6 at a trillion visitors:
        # P(p_b > p_a) = Φ(diff / sqrt(var_a + var_b)); Beta(α, β) has var αβ/((α+β)²(α+β+1))
        spread = math.sqrt(
            sum(beta_variance(1 + x, 1 + n - x) for n, x in zip(visitors, conversions, strict=True))
        )
        chance = stats.norm.cdf((xb / nb - xa / na) / spread)
        assert versus["chance_to_beat_control"] == pytest.approx(chance, abs=1e-4)
        assert b["prob_best"] == pytest.approx(chance, abs=1e-4)


def beta_variance(a: float, b: float) -> float:
    return a * b / ((a + b) ** 2 * (a + b + 1))


def test_bayesian_figures_of_the_document_match_scipy_quadrature() -> None:
    """Counts reach the Beta posteriors Beta(1 + x, 1 + n - x) of the right arms:
    checked with scipy's adaptive quadrature, independent of the package's grid."""
    document = analyze(shop("bayesian"))
    variants = document["goals"][0]["variants"]
    arms = [(v["visitors"], v["conversions"]) for v in variants]
    beat, best, loss = beta_quadrature(arms)
    for variant, chance, prob_best, expected_loss in zip(variants, beat, best, loss, strict=True):
        if variant["vs_control"] is not None:
            assert variant["vs_control"]["chance_to_beat_control"] == pytest.approx(
                chance, abs=1e-4
            )  # the package's documented accuracy
        assert variant["prob_best"] == pytest.approx(prob_best, abs=1e-4)
        assert variant["expected_loss"] == pytest.approx(expected_loss, abs=1e-4)


def test_stats_package_loads_no_framework() -> None:
    script = (
        "import sys\n"
        "import abconv.stats\n"
        "from abconv.stats import analysis, bayesian, decision, frequentist, inputs, planning\n"
        "from abconv.stats import results, sequential\n"
        "abconv.stats.analyze({'experiment': 'x', 'variants': [{'key': 'a', 'visitors': 1}],\n"
        "    'goals': [{'key': 'g', 'counts': {'a': {'conversions': 1}}}]})\n"
        "print(sorted(m for m in ('flask', 'sqlmodel', 'sqlalchemy') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def field_names(node: Any, prefix: str = "") -> set[str]:
    """Every key of a document, dotted below ``value`` and ``vs_control`` to tell them apart."""
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            names.add(key)
            names |= field_names(value, key)
    elif isinstance(node, list):
        for item in node:
            names |= field_names(item, prefix)
    return names


def test_docs_name_every_field_and_setting() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    docs = readme.split("\n## Analysis\n")[1].split("\n## ")[0]
    document = analyze(shop())
    for name in field_names(document) | set(AnalysisSettings.__dataclass_fields__):
        spellings = (f"`{name}`", f".{name}`", f"`{name}.", f"`{name}[].", f".{name}.")
        assert any(spelling in docs for spelling in spellings), name
    for status in DecisionStatus:
        assert f"`{status}`" in docs, status
