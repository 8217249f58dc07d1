"""The hard-goal guardrail: a soft-goal winner ships only once every guarding hard goal
shows it is not worse by more than ``guardrail_margin``; winners' lift intervals exclude 0."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import optimize, stats

from abconv.stats import analyze
from tests.test_stats_decision import METHODS, experiment, goal

N = 40_000  # per arm; the plan of a 10 % soft goal (mde 10 %) needs about 14,750


def soft_win(purchase: tuple[int, int], visitors: int = N, **settings: Any) -> dict[str, Any]:
    """Newsletter 10 % -> 12 % (soft, primary) with the given purchases (hard) in a and b."""
    newsletter = {"a": visitors // 10, "b": visitors * 12 // 100}
    return experiment(
        {"a": visitors, "b": visitors},
        goal("newsletter", newsletter, kind="soft", primary=True),
        goal("purchase", {"a": purchase[0], "b": purchase[1]}),
        **settings,
    )


def one_sided_lower_bound(x_t: int, n_t: int, x_c: int, n_c: int, alpha: float = 0.05) -> float:
    """One-sided 1 - alpha lower bound of p_t / p_c - 1: the smallest lift L whose Wald test of
    p_t = (1 + L) p_c (unpooled variances) is not rejected one-sided at alpha (Fieller 1954),
    found by scipy's root finding rather than the quadratic formula."""
    pt, pc = x_t / n_t, x_c / n_c
    var_t, var_c = pt * (1 - pt) / n_t, pc * (1 - pc) / n_c
    critical = stats.norm.ppf(1 - alpha)

    def excess(lift: float) -> float:
        ratio = 1 + lift
        return float((pt - ratio * pc) / math.sqrt(var_t + ratio**2 * var_c) - critical)

    return float(optimize.brentq(excess, -0.99, pt / pc - 1, xtol=1e-14))


@pytest.mark.parametrize("method", METHODS)
def test_unchanged_purchases_let_the_soft_winner_ship(method: str) -> None:
    verdict = analyze(soft_win((1200, 1200), method=method))["decision"]
    assert (verdict["status"], verdict["winner"]) == ("winner", "b")
    [guardrail] = verdict["guardrails"]
    assert guardrail["goal"] == "purchase" and guardrail["status"] == "passed"
    assert guardrail["rel_lift"] == pytest.approx(0.0)
    expected = one_sided_lower_bound(1200, N, 1200, N)  # about -0.064, above -0.125
    assert guardrail["rel_lift_lower"] == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("method", METHODS)
def test_purchases_that_may_be_down_more_than_the_margin_hold_the_winner_back(
    method: str,
) -> None:
    # 1.5 % -> 1.425 %: not significantly worse (z about 0.9), not shown within 12.5 % either
    verdict = analyze(soft_win((600, 570), method=method))["decision"]
    assert verdict["status"] == "keep_running" and verdict["winner"] is None
    [guardrail] = verdict["guardrails"]
    assert guardrail["status"] == "waiting"
    down = -one_sided_lower_bound(570, N, 600, N)  # 0.146 by the closed form
    assert verdict["reason"] == (
        f"More newsletter with 'b', but purchase may be down up to {down * 100:.0f} % "
        "(the guardrail allows 12.5 %): keep running."
    )


def test_bayesian_chance_not_worse_matches_monte_carlo() -> None:
    verdict = analyze(soft_win((1200, 1150)))["decision"]
    chance = verdict["guardrails"][0]["chance_not_worse"]
    rng = np.random.default_rng(14)
    draws = 2_000_000
    control = rng.beta(1 + 1200, 1 + N - 1200, draws)
    treatment = rng.beta(1 + 1150, 1 + N - 1150, draws)
    expected = float(np.mean(treatment > 0.875 * control))
    assert chance == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / draws))
    assert (verdict["status"] == "winner") == (chance >= 0.95)


@pytest.mark.parametrize("method", METHODS)
def test_hard_goals_are_judged_at_the_planned_sample_size(method: str) -> None:
    # 8,000 per arm: the soft goal clearly wins (z about 4), past half the plan (a Bayesian
    # verdict's minimum), but the plan needs about 14,750 (Fleiss): purchases wait.
    verdict = analyze(soft_win((240, 240), visitors=8000, method=method))["decision"]
    if method == "frequentist":  # the fixed-n test itself waits for the plan
        assert verdict["guardrails"] == [] and "planned" in verdict["reason"]
        return
    assert verdict["status"] == "keep_running"
    assert verdict["guardrails"][0]["status"] == "waiting"
    assert "the hard goals (purchase) are judged at the planned sample size" in verdict["reason"]


@pytest.mark.parametrize("method", METHODS)
def test_a_rare_goal_with_guard_false_does_not_hold_the_winner_back(method: str) -> None:
    data = soft_win((1200, 1200), method=method)
    data["goals"].append({**goal("deal", {"a": 200, "b": 190}), "guard": False})
    verdict = analyze(data)["decision"]
    assert (verdict["status"], verdict["winner"]) == ("winner", "b")
    assert [g["status"] for g in verdict["guardrails"]] == ["passed", "not_required"]
    data["goals"][-1]["guard"] = True  # 0.5 %: its lower bound is far below -12.5 %
    blocked = analyze(data)["decision"]
    assert blocked["status"] == "keep_running" and "deal may be down up to" in blocked["reason"]


@pytest.mark.parametrize("method", METHODS)
def test_a_hard_primary_winner_needs_no_non_inferiority(method: str) -> None:
    data = experiment(  # past the plan of a 3 % rate (about 53,000)
        {"a": 60_000, "b": 60_000},
        goal("purchase", {"a": 1800, "b": 2150}, primary=True),
        goal("contact", {"a": 100, "b": 90}),
        method=method,
    )
    verdict = analyze(data)["decision"]
    assert (verdict["status"], verdict["winner"]) == ("winner", "b")
    assert verdict["guardrails"][0]["status"] == "not_required"


def test_the_margin_is_read_from_the_settings() -> None:
    loose = analyze(soft_win((600, 570), guardrail_margin=0.2))["decision"]
    assert loose["winner"] == "b" and loose["guardrails"][0]["status"] == "passed"


@pytest.mark.parametrize("method", METHODS)
def test_every_winner_has_a_lift_interval_that_excludes_zero(method: str) -> None:
    """Random counts near the decision boundary: a named winner's rel_lift_ci never holds 0."""
    rng = np.random.default_rng(1414)
    winners = 0
    for _ in range(300):
        n = int(rng.integers(20_000, 60_000))
        x_c = int(rng.binomial(n, 0.03))
        x_t = int(rng.binomial(n, 0.03 * rng.uniform(0.9, 1.15)))
        data = experiment({"a": n, "b": n}, goal("buy", {"a": x_c, "b": x_t}), method=method)
        document = analyze(data)
        verdict = document["decision"]
        if verdict["status"] != "winner":
            continue
        winners += 1
        low, high = document["goals"][0]["variants"][1]["vs_control"]["rel_lift_ci"]
        assert (low > 0) if verdict["winner"] == "b" else (high < 0)
    assert winners > 10


@pytest.mark.parametrize("method", METHODS)
def test_a_significant_loss_shown_within_the_margin_passes(method: str) -> None:
    # 3 % -> 2.82 %: significantly lower (z about -2.3), but at most about 10 % lower
    # (one-sided 95 % bound), inside the 12.5 % the file accepts.
    n = 100_000
    data = experiment(
        {"a": n, "b": n},
        goal("newsletter", {"a": 10_000, "b": 12_000}, kind="soft", primary=True),
        goal("purchase", {"a": 3000, "b": 2820}),
        method=method,
    )
    assert stats.norm.cdf((0.0282 - 0.03) / math.sqrt(2 * 0.0291 * 0.9709 / n)) * 2 < 0.05
    verdict = analyze(data)["decision"]
    assert (verdict["status"], verdict["winner"]) == ("winner", "b")
    assert verdict["guardrails"][0]["status"] == "passed"
    assert verdict["guardrails"][0]["rel_lift_lower"] == pytest.approx(
        one_sided_lower_bound(2820, n, 3000, n), rel=1e-7
    )
