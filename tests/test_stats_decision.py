"""Decision rules: winners, no difference, too few visitors, SRM and the hard-goal guardrail."""

from __future__ import annotations

import math
from typing import Any

import pytest

from abconv.stats import analyze

METHODS = ["bayesian", "frequentist", "sequential"]


def goal(
    key: str, conversions: dict[str, int], kind: str = "hard", primary: bool = False
) -> dict[str, Any]:
    counts = {variant: {"conversions": x} for variant, x in conversions.items()}
    return {"key": key, "kind": kind, "primary": primary, "counts": counts}


def value_goal(key: str, counts: dict[str, tuple[int, float, float]]) -> dict[str, Any]:
    return {
        "key": key,
        "kind": "hard",
        "value": True,
        "counts": {
            v: {"conversions": x, "value_sum": s, "value_sum_squares": ss}
            for v, (x, s, ss) in counts.items()
        },
    }


def experiment(visitors: dict[str, int], *goals: dict[str, Any], **settings: Any) -> dict[str, Any]:
    variants = [{"key": key, "visitors": n} for key, n in visitors.items()]
    return {"experiment": "x", "variants": variants, "goals": list(goals), **settings}


def decision(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = analyze(data)["decision"]
    return result


BIG = {"a": 40_000, "b": 40_000}


@pytest.mark.parametrize("method", METHODS)
def test_clear_winner(method: str) -> None:
    data = experiment(BIG, goal("buy", {"a": 2000, "b": 2400}, primary=True), method=method)
    verdict = decision(data)
    assert verdict["status"] == "winner" and verdict["winner"] == "b"
    assert verdict["reason"].startswith("Ship 'b': ")
    assert "buy" in verdict["reason"]


def test_bayesian_reason_names_chance_and_loss() -> None:
    data = experiment(BIG, goal("purchase", {"a": 2000, "b": 2400}, primary=True))
    reason = decision(data)["reason"]
    assert "chance to beat 'a' on purchase; expected loss" in reason


@pytest.mark.parametrize("method", METHODS)
def test_control_wins_when_every_treatment_is_worse(method: str) -> None:
    data = experiment(
        {"a": 40_000, "b": 40_000, "c": 40_000},
        goal("buy", {"a": 2400, "b": 2000, "c": 1950}, primary=True),
        method=method,
    )
    verdict = decision(data)
    assert (verdict["status"], verdict["winner"]) == ("winner", "a")
    assert verdict["reason"].startswith("Keep 'a': ") and verdict["guardrails"] == []


def test_bayesian_multi_arm_winner_uses_prob_best() -> None:
    data = experiment(
        {"a": 40_000, "b": 40_000, "c": 40_000},
        goal("buy", {"a": 2000, "b": 2400, "c": 2050}, primary=True),
    )
    verdict = decision(data)
    assert verdict["winner"] == "b" and "chance to be the best of 3" in verdict["reason"]


def test_bayesian_two_equally_good_treatments_still_name_a_winner() -> None:
    data = experiment(
        {"a": 40_000, "b": 40_000, "c": 40_000},
        goal("buy", {"a": 2000, "b": 2400, "c": 2400}, primary=True),
    )
    document = analyze(data)
    assert [v["prob_best"] < 0.95 for v in document["goals"][0]["variants"]] == [True] * 3
    verdict = document["decision"]
    assert verdict["status"] == "winner" and verdict["winner"] in {"b", "c"}
    assert "chance to beat 'a' on buy, and no other variant is clearly better" in verdict["reason"]


@pytest.mark.parametrize("method", METHODS)
def test_no_difference(method: str) -> None:
    visitors = {"a": 400_000, "b": 400_000}
    data = experiment(
        visitors, goal("buy", {"a": 20_000, "b": 20_050}, primary=True), method=method
    )
    verdict = decision(data)
    assert verdict["status"] == "no_difference" and verdict["winner"] is None
    assert "Keep 'a'" in verdict["reason"]


def test_frequentist_no_difference_at_the_planned_size() -> None:
    data = experiment(BIG, goal("buy", {"a": 2000, "b": 2010}, primary=True), method="frequentist")
    verdict = decision(data)
    assert verdict["status"] == "no_difference"
    assert "planned sample size" in verdict["reason"]


@pytest.mark.parametrize("method", METHODS)
def test_too_few_visitors(method: str) -> None:
    data = experiment(
        {"a": 99, "b": 110}, goal("buy", {"a": 1, "b": 90}, primary=True), method=method
    )
    verdict = decision(data)
    assert verdict["status"] == "keep_running" and verdict["winner"] is None
    assert "'a' has 99 visitors" in verdict["reason"] and "at least 100" in verdict["reason"]


def test_min_visitors_setting_is_used() -> None:
    data = experiment(BIG, goal("buy", {"a": 2000, "b": 2400}, primary=True), min_visitors=50_000)
    assert "at least 50,000" in decision(data)["reason"]


@pytest.mark.parametrize("method", METHODS)
def test_undecided_keeps_running(method: str) -> None:
    data = experiment(
        {"a": 2000, "b": 2000}, goal("buy", {"a": 100, "b": 110}, primary=True), method=method
    )
    verdict = decision(data)
    assert verdict["status"] == "keep_running" and verdict["winner"] is None


def test_frequentist_waits_for_the_plan() -> None:
    data = experiment(
        {"a": 5000, "b": 5000},
        goal("buy", {"a": 250, "b": 400}, primary=True),
        method="frequentist",
    )
    verdict = decision(data)
    assert verdict["status"] == "keep_running" and "planned" in verdict["reason"]
    # the same data is already a sequential winner: always-valid p-values may be read early
    assert decision({**data, "method": "sequential"})["winner"] == "b"


def test_frequentist_cannot_plan_without_control_conversions() -> None:
    data = experiment(BIG, goal("buy", {"a": 0, "b": 50}, primary=True), method="frequentist")
    verdict = decision(data)
    assert verdict["status"] == "keep_running" and "cannot be planned" in verdict["reason"]


@pytest.mark.parametrize("method", METHODS)
def test_sample_ratio_mismatch_is_invalid(method: str) -> None:
    data = experiment(
        {"a": 10_000, "b": 11_000}, goal("buy", {"a": 500, "b": 800}, primary=True), method=method
    )
    document = analyze(data)
    assert document["srm"]["flag"] is True and document["srm"]["p_value"] < 0.001
    assert document["decision"]["status"] == "invalid" and document["decision"]["winner"] is None
    assert "Sample ratio mismatch" in document["decision"]["reason"]


def test_weights_are_respected_by_srm() -> None:
    data = experiment({"a": 10_000, "b": 20_000}, goal("buy", {"a": 500, "b": 1000}, primary=True))
    data["variants"][1]["weight"] = 2
    assert analyze(data)["srm"]["flag"] is False


@pytest.mark.parametrize("method", METHODS)
def test_soft_win_with_hard_loss_names_no_winner(method: str) -> None:
    data = experiment(
        BIG,
        goal("newsletter", {"a": 3000, "b": 4000}, kind="soft", primary=True),
        goal("purchase", {"a": 600, "b": 400}),
        method=method,
    )
    verdict = decision(data)
    assert verdict["status"] == "keep_running" and verdict["winner"] is None
    assert verdict["reason"] == (
        "'b' wins newsletter but is probably worse on purchase (hard goal): keep 'a'."
    )


@pytest.mark.parametrize("method", METHODS)
def test_soft_goal_losses_do_not_block(method: str) -> None:
    data = experiment(
        BIG,
        goal("purchase", {"a": 2000, "b": 2400}, primary=True),
        goal("newsletter", {"a": 4000, "b": 3000}, kind="soft"),
        method=method,
    )
    assert decision(data)["winner"] == "b"


def test_lower_value_per_visitor_blocks_the_winner() -> None:
    data = experiment(
        BIG,
        goal("signup", {"a": 2000, "b": 2400}, primary=True),
        value_goal(
            "revenue", {"a": (800, 160_000.0, 40_000_000.0), "b": (800, 40_000.0, 2_500_000.0)}
        ),
    )
    verdict = decision(data)
    assert verdict["winner"] is None
    assert (
        "'b' wins signup but probably earns less per visitor on revenue (hard goal): keep 'a'."
        in verdict["reason"]
    )


def test_control_winner_blocked_when_a_treatment_is_better_on_a_hard_goal() -> None:
    data = experiment(
        BIG,
        goal("newsletter", {"a": 4000, "b": 3000}, kind="soft", primary=True),
        goal("purchase", {"a": 400, "b": 600}),
    )
    verdict = decision(data)
    assert verdict["winner"] is None and verdict["status"] == "keep_running"
    assert "'b' is probably better on purchase (hard goal): weigh both" in verdict["reason"]


def fleiss_sample_size(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Fleiss, Levin & Paik (2003) eq. (4.14) without continuity correction, via scipy."""
    from scipy import stats

    mean = (p1 + p2) / 2
    spread = (
        stats.norm.ppf(1 - alpha / 2) * (2 * mean * (1 - mean)) ** 0.5
        + stats.norm.ppf(power) * (p1 * (1 - p1) + p2 * (1 - p2)) ** 0.5
    )
    return float(spread**2 / (p2 - p1) ** 2)


def test_bayesian_verdict_waits_for_half_the_plan() -> None:
    needed = fleiss_sample_size(0.03, 0.033)  # about 53,000 per variant
    early = {"a": 20_000, "b": 20_000}  # 38 % of the plan, and 'b' far ahead
    verdict = decision(experiment(early, goal("buy", {"a": 600, "b": 800})))
    assert verdict["status"] == "keep_running"
    assert f"of the planned {math.ceil(needed):,} visitors" in verdict["reason"]
    assert "waits for 50 % of them" in verdict["reason"]
    later = {"a": 28_000, "b": 28_000}  # 53 % of the plan
    verdict = decision(experiment(later, goal("buy", {"a": 840, "b": 1050})))
    assert (verdict["status"], verdict["winner"]) == ("winner", "b")
