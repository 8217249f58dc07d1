"""Group-sequential design (Lan-DeMets spending, Armitage-McPherson-Rowe integration).

References checked: the published Pocock and O'Brien-Fleming constants
(Jennison & Turnbull 2000, tables 2.1 and 2.3), the published Lan-DeMets
boundaries for five equal looks (Jennison & Turnbull 2000, table 7.6 / R
gsDesign and ldbounds), and a Monte Carlo of the Brownian motion the
integration assumes, for the symmetric design and for the asymmetric one the
analysis uses (``UPPER_ALPHA_SHARE`` of ``alpha`` on the upper side); then
the analysis with daily ``looks``.
"""

from __future__ import annotations

import copy
import datetime
import math
from typing import Any

import numpy as np
import pytest
from scipy import optimize, stats

from abconv import analyze
from abconv.stats.group_sequential import (
    UPPER_ALPHA_SHARE,
    exit_probabilities,
    last_look,
    obrien_fleming_spending,
    pocock_spending,
    spending_boundaries,
)

ALPHA = 0.05


def equal(k: int) -> list[float]:
    return [(i + 1) / k for i in range(k)]


def total_exit(fractions: list[float], critical: list[float], drift: float = 0.0) -> float:
    return sum(up + down for up, down in exit_probabilities(fractions, critical, drift))


@pytest.mark.parametrize(("looks", "pocock"), [(2, 2.178), (3, 2.289), (4, 2.361), (5, 2.413)])
def test_pocock_constants(looks: int, pocock: float) -> None:
    """A constant boundary with two-sided level 0.05 over ``looks`` equal looks."""
    found = optimize.brentq(
        lambda c: total_exit(equal(looks), [c] * looks) - ALPHA, 1.5, 4.0, xtol=1e-8
    )
    assert found == pytest.approx(pocock, abs=0.0006)


@pytest.mark.parametrize(("looks", "final"), [(2, 1.977), (3, 2.004), (4, 2.024), (5, 2.040)])
def test_obrien_fleming_constants(looks: int, final: float) -> None:
    """``c_k = C sqrt(K / k)``: the final critical value C."""

    def excess(c: float) -> float:
        return total_exit(equal(looks), [c * math.sqrt(looks / (i + 1)) for i in range(looks)])

    assert optimize.brentq(lambda c: excess(c) - ALPHA, 1.5, 4.0) == pytest.approx(final, abs=6e-4)


def test_lan_demets_boundaries_for_five_equal_looks() -> None:
    pocock = spending_boundaries(equal(5), ALPHA, pocock_spending)
    obf = spending_boundaries(equal(5), ALPHA, obrien_fleming_spending)
    assert pocock == pytest.approx([2.438, 2.427, 2.410, 2.397, 2.386], abs=6e-4)
    assert obf == pytest.approx([4.877, 3.357, 2.680, 2.290, 2.031], abs=6e-4)


def test_each_look_spends_what_the_function_allows() -> None:
    fractions = [0.013, 0.05, 0.051, 0.2, 0.37, 0.5, 0.9, 0.99]
    critical = spending_boundaries(fractions, ALPHA)
    exits = exit_probabilities(fractions, critical)
    spent = np.cumsum([up + down for up, down in exits])
    assert spent == pytest.approx([pocock_spending(t, ALPHA) for t in fractions], abs=1e-8)
    assert all(abs(up - down) < 1e-12 for up, down in exits)  # symmetric


def test_beyond_the_plan_the_first_look_spends_the_rest_and_later_looks_nothing() -> None:
    fractions = [0.3, 0.6, 0.95, 1.07, 1.2, 1.5]
    critical = spending_boundaries(fractions, ALPHA)
    assert math.isfinite(critical[3]) and critical[4:] == [math.inf, math.inf]
    assert total_exit(fractions, critical) == pytest.approx(ALPHA, abs=1e-9)


def brownian_looks(fractions: list[float], paths: int, drift: float, seed: int) -> np.ndarray:
    """Z at each look of ``paths`` Brownian motions with drift, (paths, looks)."""
    rng = np.random.default_rng(seed)
    steps = np.diff([0.0, *fractions])
    increments = rng.normal(drift * steps, np.sqrt(steps), (paths, len(fractions)))
    result: np.ndarray = np.cumsum(increments, axis=1) / np.sqrt(fractions)
    return result


@pytest.mark.parametrize("drift", [0.0, 2.8])
def test_daily_looks_match_a_monte_carlo(drift: float) -> None:
    """30 daily looks of a 53-day plan: crossing chances by integration and by simulation."""
    fractions = [(day + 1) / 53.0 for day in range(30)]
    critical = np.array(spending_boundaries(fractions, ALPHA))
    z = brownian_looks(fractions, 200_000, drift, seed=14)
    crossed = np.abs(z) >= critical
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    upper = float(np.mean((first >= 0) & (z[np.arange(len(z)), first] > 0)))
    exits = exit_probabilities(fractions, list(critical), drift)
    expected = sum(up for up, _ in exits)
    error = math.sqrt(expected * (1 - expected) / len(z))
    print(f"\ndrift {drift}: upper crossing {upper:.4f} simulated, {expected:.4f} integrated")
    assert abs(upper - expected) < 4 * error
    if drift == 0.0:
        assert 2 * expected == pytest.approx(pocock_spending(30 / 53, ALPHA), rel=1e-6)


def test_stagewise_p_value() -> None:
    fractions = [0.1, 0.25, 0.4, 0.62]
    result = last_look(fractions, ALPHA, 2.9)
    crossed = last_look(fractions, ALPHA, result.boundary + 1e-6)
    short = last_look(fractions, ALPHA, result.boundary - 1e-6)
    spent = pocock_spending(fractions[-1], ALPHA)
    assert crossed.p_value <= spent < short.p_value
    assert crossed.p_value == pytest.approx(spent, abs=1e-7)
    assert short.p_value > pocock_spending(fractions[-2], ALPHA)
    single = last_look([0.4], ALPHA, 1.7)
    assert single.p_value == pytest.approx(2 * stats.norm.sf(1.7), rel=1e-9)


def test_the_equal_split_is_the_symmetric_design() -> None:
    fractions = [0.013, 0.05, 0.2, 0.37, 0.5, 0.9, 1.2]
    result = last_look(fractions, ALPHA, 0.0, upper_share=0.5)
    assert result.boundaries == pytest.approx(result.lower, rel=1e-9)
    assert result.boundaries == spending_boundaries(fractions, ALPHA)


@pytest.mark.parametrize("share", [0.6, UPPER_ALPHA_SHARE, 0.9])
def test_each_side_spends_its_share(share: float) -> None:
    """Upper exits add up to ``share`` of the spending, lower ones to the rest, look by look."""
    fractions = [0.013, 0.05, 0.051, 0.2, 0.37, 0.5, 0.9, 0.99, 1.04, 1.3]
    result = last_look(fractions, ALPHA, 0.0, upper_share=share)
    assert all(u < c for u, c in zip(result.boundaries[:9], result.lower[:9], strict=True))
    exits = exit_probabilities(fractions, result.boundaries, lower=result.lower)
    spent = [pocock_spending(t, ALPHA) for t in fractions]
    assert np.cumsum([up for up, _ in exits]) == pytest.approx([share * a for a in spent], abs=1e-8)
    lower = np.cumsum([down for _, down in exits])
    assert lower == pytest.approx([(1 - share) * a for a in spent], abs=1e-8)
    assert sum(up + down for up, down in exits) == pytest.approx(ALPHA, abs=1e-9)


@pytest.mark.parametrize("drift", [0.0, 2.8, -2.8])
def test_asymmetric_daily_looks_match_a_monte_carlo(drift: float) -> None:
    """The design of the analysis, 30 daily looks of a 53-day plan: each side's crossing
    chance by integration and by simulation; with no effect, each side's spending."""
    fractions = [(day + 1) / 53.0 for day in range(30)]
    result = last_look(fractions, ALPHA, 0.0, upper_share=UPPER_ALPHA_SHARE)
    upper, lower = np.array(result.boundaries), np.array(result.lower)
    z = brownian_looks(fractions, 200_000, drift, seed=15)
    crossed = (z >= upper) | (z <= -lower)
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    at_first = z[np.arange(len(z)), first]
    simulated = (
        float(np.mean((first >= 0) & (at_first > 0))),
        float(np.mean((first >= 0) & (at_first < 0))),
    )
    exits = exit_probabilities(fractions, list(upper), drift, list(lower))
    integrated = (sum(up for up, _ in exits), sum(down for _, down in exits))
    print(f"\ndrift {drift}: simulated {simulated}, integrated {integrated}")
    for found, expected in zip(simulated, integrated, strict=True):
        assert abs(found - expected) < 4 * math.sqrt(expected * (1 - expected) / len(z))
    if drift == 0.0:
        spent = pocock_spending(30 / 53, ALPHA)
        assert integrated[0] == pytest.approx(UPPER_ALPHA_SHARE * spent, rel=1e-6)
        assert integrated[1] == pytest.approx((1 - UPPER_ALPHA_SHARE) * spent, rel=1e-6)
        assert sum(simulated) <= ALPHA  # an A/A crosses either side at most alpha


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_asymmetric_stagewise_p_value(side: float) -> None:
    """One-sided on the side of z over that side's share: at most the level spent so far
    exactly when z crosses that side's boundary."""
    fractions = [0.1, 0.25, 0.4, 0.62]
    design = last_look(fractions, ALPHA, 0.0, upper_share=UPPER_ALPHA_SHARE)
    bound = design.boundary if side > 0 else design.lower_boundary
    crossed = last_look(fractions, ALPHA, side * (bound + 1e-6), upper_share=UPPER_ALPHA_SHARE)
    short = last_look(fractions, ALPHA, side * (bound - 1e-6), upper_share=UPPER_ALPHA_SHARE)
    spent = pocock_spending(fractions[-1], ALPHA)
    assert crossed.p_value <= spent < short.p_value
    assert crossed.p_value == pytest.approx(spent, abs=1e-7)
    single = last_look([0.4], ALPHA, side * 1.7, upper_share=UPPER_ALPHA_SHARE)
    share = UPPER_ALPHA_SHARE if side > 0 else 1 - UPPER_ALPHA_SHARE
    assert single.p_value == pytest.approx(stats.norm.sf(1.7) / share, rel=1e-9)


@pytest.mark.parametrize("share", [0.0, 1.0, -0.2, math.nan])
def test_bad_splits_are_refused(share: float) -> None:
    with pytest.raises(ValueError, match="upper_share"):
        last_look([0.5], ALPHA, 0.0, upper_share=share)


@pytest.mark.parametrize(
    "fractions", [[], [0.0, 0.5], [0.5, 0.5], [0.6, 0.4], [0.1, math.nan], [math.inf]]
)
def test_bad_fractions_are_refused(fractions: list[float]) -> None:
    with pytest.raises(ValueError):
        spending_boundaries(fractions, ALPHA)


# --- the analysis with daily looks ---------------------------------------------------------


def daily_input(days: int, rates: tuple[float, float], per_day: int = 1000) -> dict[str, Any]:
    """Counts growing exactly at ``rates``: ``per_day`` visitors per arm per day."""
    looks = [
        {
            "day": (datetime.date(2026, 10, 1) + datetime.timedelta(days=day - 1)).isoformat(),
            "visitors": {"control": per_day * day, "B": per_day * day},
            "conversions": {
                "purchase": {
                    "control": round(rates[0] * per_day * day),
                    "B": round(rates[1] * per_day * day),
                }
            },
        }
        for day in range(1, days + 1)
    ]
    last = looks[-1]
    return {
        "experiment": "gs",
        "method": "sequential",
        "variants": [{"key": key, "visitors": n} for key, n in last["visitors"].items()],
        "goals": [
            {
                "key": "purchase",
                "counts": {
                    key: {"conversions": x} for key, x in last["conversions"]["purchase"].items()
                },
            }
        ],
        "looks": looks,
    }


def test_without_looks_sequential_keeps_the_confidence_sequence() -> None:
    data = daily_input(10, (0.03, 0.033))
    del data["looks"]
    document = analyze(data)
    assert document["sequential"] == {
        "design": "confidence_sequence",
        "spending": None,
        "upper_alpha_share": None,
        "looks": [],
    }
    assert analyze({**data, "method": "frequentist"})["sequential"] is None


def test_a_group_sequential_winner_and_its_intervals() -> None:
    document = analyze(daily_input(20, (0.03, 0.036)))
    design = document["sequential"]
    assert design["design"] == "group_sequential" and design["spending"] == "pocock"
    assert design["upper_alpha_share"] == UPPER_ALPHA_SHARE
    (look,) = design["looks"]
    assert look["variant"] == "B" and look["looks"] == 20 and look["day"] == "2026-10-20"
    assert look["z"] >= look["boundary"] and not look["closed"]
    assert look["lower_boundary"] > look["boundary"]  # less alpha on "the control wins"
    assert document["decision"]["status"] == "winner" and document["decision"]["winner"] == "B"
    versus = document["goals"][0]["variants"][1]["vs_control"]
    assert versus["rel_lift_ci"][0] > 0 and versus["abs_diff_ci"][0] > 0
    # The intervals are the repeated confidence intervals at the look's boundaries.
    se = math.sqrt(0.03 * 0.97 / 20000 + 0.036 * 0.964 / 20000)
    assert versus["abs_diff"] - versus["abs_diff_ci"][0] == pytest.approx(look["boundary"] * se)
    high = versus["abs_diff_ci"][1] - versus["abs_diff"]
    assert high == pytest.approx(look["lower_boundary"] * se)
    assert versus["p_value"] <= pocock_spending(look["information_fraction"], ALPHA)
    assert "beyond the boundary" in document["decision"]["reason"]


def test_the_same_counts_short_of_the_boundary_keep_running() -> None:
    document = analyze(daily_input(10, (0.03, 0.0345)))
    (look,) = document["sequential"]["looks"]
    assert -look["lower_boundary"] < look["z"] < look["boundary"]
    assert document["decision"]["status"] == "keep_running"
    assert "group-sequential boundary" in document["decision"]["reason"]
    versus = document["goals"][0]["variants"][1]["vs_control"]
    assert versus["rel_lift_ci"][0] < 0 < versus["rel_lift_ci"][1]


def test_reading_within_the_day_adds_no_look() -> None:
    """Counts after the last end of day do not move the boundary nor the statistic."""
    data = daily_input(10, (0.03, 0.0345))
    later = copy.deepcopy(data)
    for variant in later["variants"]:
        variant["visitors"] += 400
    before, after = analyze(data)["sequential"], analyze(later)["sequential"]
    assert before == after


def test_once_the_plan_is_reached_without_crossing_the_design_is_over() -> None:
    data = daily_input(60, (0.03, 0.0303))
    document = analyze(data)
    (look,) = document["sequential"]["looks"]
    assert look["closed"] and look["information_fraction"] >= 1.0
    assert look["looks"] < 60  # the look that reached the plan
    assert document["decision"]["status"] == "no_difference"
    assert "planned sample size" in document["decision"]["reason"]


def test_several_treatments_split_alpha() -> None:
    data = daily_input(10, (0.03, 0.033))
    for look in data["looks"]:
        look["visitors"]["C"] = look["visitors"]["B"]
        look["conversions"]["purchase"]["C"] = look["conversions"]["purchase"]["B"]
    data["variants"].append({"key": "C", "visitors": data["variants"][1]["visitors"]})
    data["goals"][0]["counts"]["C"] = dict(data["goals"][0]["counts"]["B"])
    looks = analyze(data)["sequential"]["looks"]
    fractions = [look["information_fraction"] for look in looks]
    assert [look["variant"] for look in looks] == ["B", "C"]
    # Bonferroni: the boundaries of alpha / 2 on these fractions (the plan is for alpha / 2 too).
    expected = last_look(
        [fractions[0] * day / 10 for day in range(1, 11)], ALPHA / 2, 0.0, upper_share=0.7
    )
    assert looks[0]["boundary"] == pytest.approx(expected.boundary, rel=1e-6)
    assert looks[0]["lower_boundary"] == pytest.approx(expected.lower_boundary, rel=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["looks"].__setitem__(1, d["looks"][0]), "is not after"),
        (lambda d: d["looks"][2].__setitem__("day", "2026-13-01"), "YYYY-MM-DD"),
        (lambda d: d["looks"][3]["visitors"].__setitem__("control", 2999), "cannot fall"),
        (lambda d: d["looks"][0]["visitors"].__setitem__("D", 10), "unknown field 'D'"),
        (lambda d: d["looks"][0]["conversions"].__setitem__("x", {}), "unknown field 'x'"),
        (lambda d: d["looks"][0]["conversions"]["purchase"].__setitem__("B", 5000), "exceeds"),
        (lambda d: d.__setitem__("looks", {}), "must be a list"),
        (lambda d: d["looks"][0].__setitem__("when", 1), "unknown field 'when'"),
    ],
)
def test_bad_looks_are_refused(change: Any, message: str) -> None:
    data = daily_input(5, (0.03, 0.033))
    change(data)
    with pytest.raises(ValueError, match=message):
        analyze(data)


def test_no_common_spending_function_reaches_40_percent_by_day_30() -> None:
    """Why the issue's 0.40 is out of reach of a symmetric level-5 % design (README).

    3 % -> 3.3 %, 1,000 visitors per arm per day: E[z] = 2.10 at day 30, a plan
    of 53,211 per arm; the power to cross above by day 30 over 30 daily looks.
    """
    fractions = [1000 * (day + 1) / 53_211 for day in range(30)]
    expected_z = 0.003 / math.sqrt((0.03 * 0.97 + 0.033 * 0.967) / 30_000)
    drift = expected_z / math.sqrt(fractions[-1])
    families = {
        "pocock": pocock_spending,
        "obrien_fleming": obrien_fleming_spending,
        "linear": lambda t, a: a * min(t, 1.0),
        **{
            f"hwang_shih_decani {g}": (
                lambda t, a, g=g: a * (1 - math.exp(-g * min(t, 1.0))) / (1 - math.exp(-g))
            )
            for g in (0.5, 1.0, 2.0, 3.0, 4.0)
        },
    }
    power = {}
    for name, spending in families.items():
        critical = spending_boundaries(fractions, ALPHA, spending)
        power[name] = sum(up for up, _ in exit_probabilities(fractions, critical, drift))
        print(f"\n{name}: {power[name]:.4f}")
    assert power["pocock"] == pytest.approx(0.384, abs=0.001)
    assert max(power.values()) < 0.40
    assert max(power.values()) - power["pocock"] < 0.01


def test_a_crossing_at_the_look_that_reached_the_plan_stands() -> None:
    """Days after the plan was reached change nothing: that look's verdict is the decision."""
    data = daily_input(75, (0.03, 0.033))
    document = analyze(data)
    (look,) = document["sequential"]["looks"]
    assert look["closed"] and look["z"] >= look["boundary"] and look["looks"] == 54
    assert document["decision"]["status"] == "winner"
    data["looks"][-1]["conversions"]["purchase"]["B"] = data["looks"][-2]["conversions"][
        "purchase"
    ]["B"]  # a bad last day, long after the plan: the verdict stands
    assert analyze(data)["sequential"]["looks"] == [look]


def test_the_asymmetric_design_reaches_40_percent_by_day_30() -> None:
    """The issue's scenario (above) with ``UPPER_ALPHA_SHARE`` of alpha on the upper side:
    power by day 30, the A/A crossings of each side, and a true -10 % (README)."""
    fractions = [1000 * (day + 1) / 53_211 for day in range(30)]
    expected_z = 0.003 / math.sqrt((0.03 * 0.97 + 0.033 * 0.967) / 30_000)
    drift = expected_z / math.sqrt(fractions[-1])
    design = last_look(fractions, ALPHA, 0.0, upper_share=UPPER_ALPHA_SHARE)
    power = sum(
        up for up, _ in exit_probabilities(fractions, design.boundaries, drift, design.lower)
    )
    null = exit_probabilities(fractions, design.boundaries, 0.0, design.lower)
    loss = exit_probabilities(fractions, design.boundaries, -drift, design.lower)
    print(f"\npower {power:.4f}, A/A {sum(u for u, _ in null):.4f} + {sum(d for _, d in null):.4f}")
    print(f"a loss of the same size found by day 30: {sum(d for _, d in loss):.4f}")
    assert power >= 0.43
    assert sum(u + d for u, d in null) <= ALPHA
